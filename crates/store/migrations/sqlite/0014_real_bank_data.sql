-- Real bank data moves. A row the aggregator stops returning is kept, marked removed, and hidden
-- from the list. A round-up belongs to one posted amount of one present purchase: when the
-- purchase is removed, amended or goes back to pending, its round-up is retired (voided while it
-- waits; taken back by a correction once collected) and a posted, present purchase is rounded up
-- again from its new amount. A correction is offset against the user's next collection.
ALTER TABLE transactions ADD COLUMN removed_at TEXT;
CREATE INDEX transactions_account_date ON transactions (account_id, date);

-- Round-ups: one active (not retired) round-up per purchase, instead of one ever.
CREATE TABLE roundups_new (
    id               INTEGER PRIMARY KEY,
    user_id          BIGINT NOT NULL,
    account_id       BIGINT NOT NULL,
    transaction_id   BIGINT NOT NULL,
    amount           BIGINT NOT NULL CHECK (amount >= 0),
    collection_id    BIGINT,
    created_at       TEXT NOT NULL,
    -- The purchase amount the round-up was computed from (NULL for round-ups made before).
    purchase_amount  BIGINT,
    -- When the purchase it came from was removed, amended or went back to pending.
    retired_at       TEXT,
    -- When it was retired while waiting: given up, never collected.
    voided_at        TEXT
);
INSERT INTO roundups_new (id, user_id, account_id, transaction_id, amount, collection_id, created_at, purchase_amount)
    SELECT r.id, r.user_id, r.account_id, r.transaction_id, r.amount, r.collection_id, r.created_at,
           (SELECT t.amount FROM transactions t WHERE t.id = r.transaction_id)
    FROM roundups r;
DROP TABLE roundups;
ALTER TABLE roundups_new RENAME TO roundups;
CREATE UNIQUE INDEX roundups_active ON roundups (transaction_id) WHERE retired_at IS NULL;
CREATE INDEX roundups_waiting ON roundups (user_id, id) WHERE collection_id IS NULL AND amount > 0 AND voided_at IS NULL;
CREATE INDEX roundups_collection ON roundups (collection_id);

-- What a collection took back for round-ups retired after they were collected.
ALTER TABLE collections ADD COLUMN offset_amount BIGINT NOT NULL DEFAULT 0;

-- A collected round-up taken back: offset against the user's next collection.
CREATE TABLE corrections (
    id              INTEGER PRIMARY KEY,
    user_id         BIGINT NOT NULL,
    roundup_id      BIGINT NOT NULL UNIQUE,
    amount          BIGINT NOT NULL CHECK (amount > 0),
    reason          TEXT NOT NULL CHECK (reason IN ('removed', 'amended', 'pending')),
    collection_id   BIGINT,
    created_at      TEXT NOT NULL
);
CREATE INDEX corrections_open ON corrections (user_id) WHERE collection_id IS NULL;
CREATE INDEX corrections_collection ON corrections (collection_id);

-- One sync of a member at a time, across processes: the sync holding the lease.
ALTER TABLE members ADD COLUMN sync_token TEXT;
ALTER TABLE members ADD COLUMN sync_until TEXT;

-- A keyed digest of the account number the aggregator gives, to recognise a re-linked account,
-- and the debt share the account had when its bank was unlinked, which it gets back then.
ALTER TABLE accounts ADD COLUMN number_digest TEXT;
ALTER TABLE accounts ADD COLUMN share_when_unlinked INTEGER;

-- Real bank data moves. A row the aggregator stops returning is kept, marked removed, and hidden
-- from the list. A round-up belongs to one posted amount of one present purchase: when the
-- purchase is removed, amended or goes back to pending, its round-up is retired (voided while it
-- waits; taken back by a correction once collected) and a posted, present purchase is rounded up
-- again from its new amount. A correction is offset against the user's next collection.
ALTER TABLE transactions ADD COLUMN removed_at TIMESTAMPTZ;
CREATE INDEX transactions_account_date ON transactions (account_id, date);

-- Round-ups: one active (not retired) round-up per purchase, instead of one ever.
ALTER TABLE roundups ADD COLUMN purchase_amount BIGINT;
ALTER TABLE roundups ADD COLUMN retired_at TIMESTAMPTZ;
ALTER TABLE roundups ADD COLUMN voided_at TIMESTAMPTZ;
DROP INDEX roundups_waiting;
CREATE INDEX roundups_waiting ON roundups (user_id, id) WHERE collection_id IS NULL AND amount > 0 AND voided_at IS NULL;
UPDATE roundups r SET purchase_amount = t.amount FROM transactions t WHERE t.id = r.transaction_id;
ALTER TABLE roundups DROP CONSTRAINT roundups_transaction_id_key;
CREATE UNIQUE INDEX roundups_active ON roundups (transaction_id) WHERE retired_at IS NULL;

-- What a collection took back for round-ups retired after they were collected.
ALTER TABLE collections ADD COLUMN offset_amount BIGINT NOT NULL DEFAULT 0;

-- A collected round-up taken back: offset against the user's next collection.
CREATE TABLE corrections (
    id              BIGINT PRIMARY KEY,
    user_id         BIGINT NOT NULL,
    roundup_id      BIGINT NOT NULL UNIQUE,
    amount          BIGINT NOT NULL CHECK (amount > 0),
    reason          TEXT NOT NULL CHECK (reason IN ('removed', 'amended', 'pending')),
    collection_id   BIGINT,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX corrections_open ON corrections (user_id) WHERE collection_id IS NULL;
CREATE INDEX corrections_collection ON corrections (collection_id);

-- One sync of a member at a time, across processes: the sync holding the lease.
ALTER TABLE members ADD COLUMN sync_token TEXT;
ALTER TABLE members ADD COLUMN sync_until TIMESTAMPTZ;

-- A keyed digest of the account number the aggregator gives, to recognise a re-linked account,
-- and the debt share the account had when its bank was unlinked, which it gets back then.
ALTER TABLE accounts ADD COLUMN number_digest TEXT;
ALTER TABLE accounts ADD COLUMN share_when_unlinked INTEGER;

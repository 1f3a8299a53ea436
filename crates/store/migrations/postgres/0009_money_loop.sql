-- The money loop: round-ups gathered from transactions, one-time contributions, collections to
-- the Donkies account, payouts split across debt accounts. Money is in cents. Rows that record
-- money keep no foreign key to users or accounts: a record of money outlives what it names.

-- Round-up rules beyond the original (see donkies_domain::RoundUpRules).
ALTER TABLE users ADD COLUMN roundups_paused BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN roundup_multiplier BIGINT NOT NULL DEFAULT 1;
-- Whole dollars; null: no cap.
ALTER TABLE users ADD COLUMN daily_cap BIGINT;
ALTER TABLE users ADD COLUMN monthly_cap BIGINT;

-- One row per purchase that was gathered, once: its round-up under the user's rules then (zero
-- while round-ups were paused). `collection_id` is the collection that took it; null while it
-- waits in the user's bank (and again after that collection failed).
CREATE TABLE roundups (
    id              BIGINT PRIMARY KEY,
    user_id         BIGINT NOT NULL,
    account_id      BIGINT NOT NULL,
    transaction_id  BIGINT NOT NULL UNIQUE,
    amount          BIGINT NOT NULL CHECK (amount >= 0),
    collection_id   BIGINT,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX roundups_waiting ON roundups (user_id, id) WHERE collection_id IS NULL AND amount > 0;
CREATE INDEX roundups_collection ON roundups (collection_id);

-- One-time extra contributions, collected with the next collection.
CREATE TABLE contributions (
    id             BIGINT PRIMARY KEY,
    user_id        BIGINT NOT NULL,
    amount         BIGINT NOT NULL CHECK (amount > 0),
    collection_id  BIGINT,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX contributions_user ON contributions (user_id, id);

-- Collections: one transfer from the user's round-up source to the Donkies account
-- (transfers_donkies).
CREATE TABLE collections (
    id              BIGINT PRIMARY KEY,
    user_id         BIGINT NOT NULL,
    account_id      BIGINT NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount > 0),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'processed', 'failed', 'cancelled')),
    transfer_id     BIGINT NOT NULL UNIQUE,
    failure_code    TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX collections_user ON collections (user_id, created_at);
CREATE INDEX collections_open ON collections (status) WHERE status = 'pending';

-- What one collection gathered from each debit account (transfers_prepare).
CREATE TABLE collection_parts (
    id             BIGINT PRIMARY KEY,
    collection_id  BIGINT NOT NULL REFERENCES collections (id),
    user_id        BIGINT NOT NULL,
    account_id     BIGINT NOT NULL,
    amount         BIGINT NOT NULL CHECK (amount > 0),
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX collection_parts_user ON collection_parts (user_id, created_at);

-- Payouts of held money to the user's debts (transfers_user); one scheduled payout per user and
-- payout day, any number of final ones (closing the account).
CREATE TABLE payouts (
    id          BIGINT PRIMARY KEY,
    user_id     BIGINT NOT NULL,
    amount      BIGINT NOT NULL CHECK (amount > 0),
    period      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (user_id, period)
);

-- Each payout's part per debt account (transfers_debt), or a refund to the user's own bank.
-- `method`: 'dwolla' (a transfer to the debt account's funding source), 'manual' (paid by an
-- operator, who records a reference) or 'refund' (a transfer back to the round-up source).
CREATE TABLE payout_parts (
    id                BIGINT PRIMARY KEY,
    payout_id         BIGINT NOT NULL REFERENCES payouts (id),
    user_id           BIGINT NOT NULL,
    account_id        BIGINT NOT NULL,
    amount            BIGINT NOT NULL CHECK (amount > 0),
    share             BIGINT NOT NULL,
    method            TEXT NOT NULL CHECK (method IN ('dwolla', 'manual', 'refund')),
    status            TEXT NOT NULL CHECK (status IN ('pending', 'processed', 'failed')),
    transfer_id       BIGINT UNIQUE,
    manual_reference  TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    processed_at      TIMESTAMPTZ
);
CREATE INDEX payout_parts_user ON payout_parts (user_id, created_at);
CREATE INDEX payout_parts_open ON payout_parts (status) WHERE status = 'pending';

-- Workers say they are alive, so operator commands know whether anyone will run their work.
CREATE TABLE workers (
    id          TEXT PRIMARY KEY,
    started_at  TIMESTAMPTZ NOT NULL,
    seen_at     TIMESTAMPTZ NOT NULL
);

-- Payments through Dwolla: a user's customer, the funding sources (banks) behind their accounts,
-- the transfers Donkies asks for, and the webhook events already handled. Money is in cents.
CREATE TABLE customers (
    id             BIGINT PRIMARY KEY,
    user_id        BIGINT NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    dwolla_id      TEXT UNIQUE,
    -- Null until Dwolla has answered.
    status         TEXT,
    first_name     TEXT NOT NULL,
    last_name      TEXT NOT NULL,
    email          TEXT NOT NULL,
    address1       TEXT,
    address2       TEXT,
    city           TEXT,
    state          TEXT,
    postal_code    TEXT,
    date_of_birth  DATE,
    ssn_encrypted  TEXT,
    ssn_last4      TEXT,
    phone          TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE funding_sources (
    id                        BIGINT PRIMARY KEY,
    user_id                   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    account_id                BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    customer_id               BIGINT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    dwolla_id                 TEXT UNIQUE,
    account_number_encrypted  TEXT,
    account_number_last4      TEXT,
    routing_number            TEXT,
    status                    TEXT NOT NULL,
    bank_account_type         TEXT NOT NULL,
    source_type               TEXT NOT NULL,
    name                      TEXT NOT NULL,
    verification_type         TEXT NOT NULL,
    md_status                 TEXT,
    md_attempts               BIGINT NOT NULL DEFAULT 0,
    is_removed                BOOLEAN NOT NULL DEFAULT FALSE,
    created_at                TIMESTAMPTZ NOT NULL,
    updated_at                TIMESTAMPTZ NOT NULL
);
-- One live funding source per account; a removed one stays for the record.
CREATE UNIQUE INDEX funding_sources_account_id ON funding_sources (account_id) WHERE is_removed = FALSE;
CREATE INDEX funding_sources_user_id ON funding_sources (user_id);

CREATE TABLE transfers (
    id                     BIGINT PRIMARY KEY,
    -- A transfer outlives its user: it is a record of money that moved.
    user_id                BIGINT REFERENCES users (id) ON DELETE SET NULL,
    -- The caller's own record of the movement (e.g. `collection:123`): one transfer each.
    reference              TEXT NOT NULL UNIQUE,
    idempotency_key        TEXT NOT NULL UNIQUE,
    source_funding_source  TEXT NOT NULL,
    destination            TEXT NOT NULL,
    amount                 BIGINT NOT NULL,
    status                 TEXT NOT NULL,
    dwolla_id              TEXT UNIQUE,
    failure_code           TEXT,
    failure_description    TEXT,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL,
    processed_at           TIMESTAMPTZ
);
CREATE INDEX transfers_status ON transfers (status);

-- Webhook deliveries already handled: Dwolla may deliver an event more than once.
CREATE TABLE dwolla_events (
    event_id     TEXT PRIMARY KEY,
    topic        TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL
);

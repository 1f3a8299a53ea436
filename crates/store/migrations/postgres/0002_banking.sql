-- Bank linking: the aggregator's institution catalog, members (a user's login at one
-- institution), their challenges, accounts and transactions. Money is integer cents.
CREATE TABLE institutions (
    id          TEXT PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    url         TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE institution_credentials (
    institution_id  TEXT NOT NULL REFERENCES institutions (id) ON DELETE CASCADE,
    guid            TEXT NOT NULL,
    field_name      TEXT NOT NULL,
    label           TEXT NOT NULL,
    kind            TEXT NOT NULL,
    display_order   BIGINT NOT NULL,
    PRIMARY KEY (institution_id, guid)
);

CREATE TABLE members (
    id                          TEXT PRIMARY KEY,
    user_id                     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    institution_id              TEXT NOT NULL REFERENCES institutions (id),
    identifier                  TEXT NOT NULL UNIQUE,
    guid                        TEXT,
    name                        TEXT NOT NULL,
    status                      TEXT NOT NULL,
    aggregated_at               TIMESTAMPTZ,
    successfully_aggregated_at  TIMESTAMPTZ,
    metadata                    TEXT,
    poll_generation             BIGINT NOT NULL DEFAULT 0,
    polls                       BIGINT NOT NULL DEFAULT 0,
    halted_retries              BIGINT NOT NULL DEFAULT 0,
    gave_up                     BOOLEAN NOT NULL DEFAULT FALSE,
    is_deleted                  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at                  TIMESTAMPTZ NOT NULL,
    updated_at                  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX members_user_institution ON members (user_id, institution_id) WHERE is_deleted = FALSE;
CREATE INDEX members_status ON members (status);

CREATE TABLE challenges (
    member_id   TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    guid        TEXT NOT NULL,
    position    BIGINT NOT NULL,
    field_name  TEXT,
    label       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    options     TEXT NOT NULL,
    image_data  TEXT,
    PRIMARY KEY (member_id, guid)
);

CREATE TABLE accounts (
    id                              TEXT PRIMARY KEY,
    user_id                         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    member_id                       TEXT NOT NULL REFERENCES members (id) ON DELETE CASCADE,
    guid                            TEXT NOT NULL,
    uid                             TEXT NOT NULL UNIQUE,
    name                            TEXT NOT NULL,
    kind                            TEXT NOT NULL,
    type_ds                         TEXT NOT NULL,
    subtype                         TEXT,
    balance                         BIGINT,
    available_balance               BIGINT,
    available_credit                BIGINT,
    credit_limit                    BIGINT,
    apr                             DOUBLE PRECISION,
    apy                             DOUBLE PRECISION,
    interest_rate                   DOUBLE PRECISION,
    minimum_balance                 BIGINT,
    minimum_payment                 BIGINT,
    original_balance                BIGINT,
    payoff_balance                  BIGINT,
    last_payment                    BIGINT,
    last_payment_at                 TIMESTAMPTZ,
    payment_due_at                  TIMESTAMPTZ,
    day_payment_is_due              BIGINT,
    matures_on                      DATE,
    started_on                      DATE,
    total_account_value             BIGINT,
    is_closed                       BOOLEAN NOT NULL DEFAULT FALSE,
    is_active                       BOOLEAN NOT NULL DEFAULT TRUE,
    transfer_share                  BIGINT NOT NULL DEFAULT 0,
    is_funding_source_for_transfer  BOOLEAN NOT NULL DEFAULT FALSE,
    is_dwolla_created               BOOLEAN NOT NULL DEFAULT FALSE,
    account_number_encrypted        TEXT,
    account_number_last4            TEXT,
    is_deleted                      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at                      TIMESTAMPTZ NOT NULL,
    updated_at                      TIMESTAMPTZ NOT NULL,
    UNIQUE (user_id, guid)
);
CREATE INDEX accounts_member ON accounts (member_id);

-- user_id repeats the account's owner so that every read is scoped by user; the account's
-- foreign key already ties the row to that user (and cascades), so it needs no check of its own
-- on each of the many rows a sync writes.
CREATE TABLE transactions (
    id                      TEXT PRIMARY KEY,
    user_id                 TEXT NOT NULL,
    account_id              TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    guid                    TEXT NOT NULL,
    uid                     TEXT NOT NULL,
    amount                  BIGINT NOT NULL,
    kind                    TEXT NOT NULL,
    status                  TEXT,
    category                TEXT,
    top_level_category      TEXT,
    description             TEXT,
    original_description    TEXT,
    memo                    TEXT,
    date                    DATE NOT NULL,
    transacted_at           TIMESTAMPTZ,
    posted_at               TIMESTAMPTZ,
    check_number            BIGINT,
    merchant_category_code  BIGINT,
    latitude                DOUBLE PRECISION,
    longitude               DOUBLE PRECISION,
    is_bill_pay             BOOLEAN NOT NULL DEFAULT FALSE,
    is_direct_deposit       BOOLEAN NOT NULL DEFAULT FALSE,
    is_expense              BOOLEAN NOT NULL DEFAULT FALSE,
    is_fee                  BOOLEAN NOT NULL DEFAULT FALSE,
    is_income               BOOLEAN NOT NULL DEFAULT FALSE,
    is_overdraft_fee        BOOLEAN NOT NULL DEFAULT FALSE,
    is_payroll_advance      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at              TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL,
    UNIQUE (user_id, guid)
);
CREATE INDEX transactions_user_date ON transactions (user_id, date, transacted_at);
CREATE INDEX transactions_account ON transactions (account_id);

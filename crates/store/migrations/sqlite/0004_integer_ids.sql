-- Integer ids: every id, and every column that refers to one, becomes an INTEGER. Existing text
-- ids are numbered per table in the order the rows were made (ROW_NUMBER over created_at, id);
-- these are far below the ids the program makes from now on (milliseconds since 2025 << 13), so
-- old and new never meet. References follow through one map, and a reference to a missing row
-- fails the migration (NOT NULL) rather than being dropped. Job payloads that name a row are
-- rewritten too.
--
-- SQLite cannot change a column's type, so every affected table is rebuilt: create its new form
-- (named *_new, referring to the other *_new tables), copy through the map, drop the old tables
-- children first, and rename the new ones into place (which also rewrites the references). The
-- migration runs in one transaction, where `PRAGMA foreign_keys` cannot be switched off; dropping
-- children before parents means no ON DELETE action ever fires on the old rows, and the checks at
-- commit see only the new tables.
CREATE TEMPORARY TABLE id_map (
    tbl  TEXT NOT NULL,
    old  TEXT NOT NULL,
    new  INTEGER NOT NULL,
    PRIMARY KEY (tbl, old)
);
INSERT INTO id_map SELECT 'users', id, ROW_NUMBER() OVER (ORDER BY created_at, id) FROM users;
INSERT INTO id_map SELECT 'outbox', id, ROW_NUMBER() OVER (ORDER BY created_at, id) FROM outbox;
INSERT INTO id_map SELECT 'jobs', id, ROW_NUMBER() OVER (ORDER BY created_at, id) FROM jobs;
INSERT INTO id_map SELECT 'institutions', id, ROW_NUMBER() OVER (ORDER BY created_at, id) FROM institutions;
INSERT INTO id_map SELECT 'members', id, ROW_NUMBER() OVER (ORDER BY created_at, id) FROM members;
INSERT INTO id_map SELECT 'accounts', id, ROW_NUMBER() OVER (ORDER BY created_at, id) FROM accounts;
INSERT INTO id_map SELECT 'transactions', id, ROW_NUMBER() OVER (ORDER BY created_at, id) FROM transactions;
INSERT INTO id_map SELECT 'social_identities', id, ROW_NUMBER() OVER (ORDER BY created_at, id) FROM social_identities;

UPDATE jobs SET payload = json_set(payload, '$.user_id', (SELECT new FROM id_map WHERE tbl = 'users' AND old = json_extract(payload, '$.user_id')))
    WHERE json_type(payload, '$.user_id') = 'text';
UPDATE jobs SET payload = json_set(payload, '$.member_id', (SELECT new FROM id_map WHERE tbl = 'members' AND old = json_extract(payload, '$.member_id')))
    WHERE json_type(payload, '$.member_id') = 'text';
UPDATE jobs SET payload = json_set(payload, '$.account_id', (SELECT new FROM id_map WHERE tbl = 'accounts' AND old = json_extract(payload, '$.account_id')))
    WHERE json_type(payload, '$.account_id') = 'text';
UPDATE jobs SET payload = json_set(payload, '$.outbox_id', (SELECT new FROM id_map WHERE tbl = 'outbox' AND old = json_extract(payload, '$.outbox_id')))
    WHERE json_type(payload, '$.outbox_id') = 'text';

CREATE TABLE users_new (
    id                       INTEGER PRIMARY KEY,
    email                    TEXT NOT NULL UNIQUE,
    password_hash            TEXT NOT NULL,
    first_name               TEXT NOT NULL,
    last_name                TEXT NOT NULL,
    identifier               TEXT NOT NULL UNIQUE,
    encrypted_id             TEXT NOT NULL UNIQUE,
    is_confirmed             BOOLEAN NOT NULL DEFAULT FALSE,
    confirmation_token_hash  TEXT,
    guid                     TEXT,
    address1                 TEXT,
    address2                 TEXT,
    city                     TEXT,
    state                    TEXT,
    postal_code              TEXT,
    date_of_birth            TEXT,
    ssn_encrypted            TEXT,
    ssn_last4                TEXT,
    phone                    TEXT,
    is_profile_completed     BOOLEAN NOT NULL DEFAULT FALSE,
    minimum_transfer_amount  BIGINT NOT NULL DEFAULT 5,
    is_even_roundup          BOOLEAN NOT NULL DEFAULT FALSE,
    is_closed_account        BOOLEAN NOT NULL DEFAULT FALSE,
    closed_at                TEXT,
    profile_image_url        TEXT,
    created_at               TEXT NOT NULL,
    updated_at               TEXT NOT NULL
);
INSERT INTO users_new (id, email, password_hash, first_name, last_name, identifier, encrypted_id, is_confirmed, confirmation_token_hash, guid, address1, address2, city, state, postal_code, date_of_birth, ssn_encrypted, ssn_last4, phone, is_profile_completed, minimum_transfer_amount, is_even_roundup, is_closed_account, closed_at, profile_image_url, created_at, updated_at)
    SELECT (SELECT new FROM id_map WHERE tbl = 'users' AND old = id),
        email,
        password_hash,
        first_name,
        last_name,
        identifier,
        encrypted_id,
        is_confirmed,
        confirmation_token_hash,
        guid,
        address1,
        address2,
        city,
        state,
        postal_code,
        date_of_birth,
        ssn_encrypted,
        ssn_last4,
        phone,
        is_profile_completed,
        minimum_transfer_amount,
        is_even_roundup,
        is_closed_account,
        closed_at,
        profile_image_url,
        created_at,
        updated_at
    FROM users;

CREATE TABLE auth_tokens_new (
    token_hash  TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users_new (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
INSERT INTO auth_tokens_new (token_hash, user_id, created_at, expires_at)
    SELECT token_hash,
        (SELECT new FROM id_map WHERE tbl = 'users' AND old = user_id),
        created_at,
        expires_at
    FROM auth_tokens;

CREATE TABLE action_tokens_new (
    token_hash  TEXT PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users_new (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    new_email   TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);
INSERT INTO action_tokens_new (token_hash, user_id, purpose, new_email, created_at, expires_at, used_at)
    SELECT token_hash,
        (SELECT new FROM id_map WHERE tbl = 'users' AND old = user_id),
        purpose,
        new_email,
        created_at,
        expires_at,
        used_at
    FROM action_tokens;

CREATE TABLE outbox_new (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER REFERENCES users_new (id) ON DELETE SET NULL,
    template    TEXT NOT NULL,
    to_address  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    text_body   TEXT NOT NULL,
    html_body   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    sent_at     TEXT
);
INSERT INTO outbox_new (id, user_id, template, to_address, subject, text_body, html_body, created_at, sent_at)
    SELECT (SELECT new FROM id_map WHERE tbl = 'outbox' AND old = id),
        (SELECT new FROM id_map WHERE tbl = 'users' AND old = user_id),
        template,
        to_address,
        subject,
        text_body,
        html_body,
        created_at,
        sent_at
    FROM outbox;

CREATE TABLE jobs_new (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    payload       TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    max_attempts  BIGINT NOT NULL,
    run_at        TEXT NOT NULL,
    locked_by     TEXT,
    locked_until  TEXT,
    last_error    TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
INSERT INTO jobs_new (id, kind, payload, status, attempts, max_attempts, run_at, locked_by, locked_until, last_error, created_at, updated_at)
    SELECT (SELECT new FROM id_map WHERE tbl = 'jobs' AND old = id),
        kind,
        payload,
        status,
        attempts,
        max_attempts,
        run_at,
        locked_by,
        locked_until,
        last_error,
        created_at,
        updated_at
    FROM jobs;

CREATE TABLE institutions_new (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    url         TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
INSERT INTO institutions_new (id, code, name, url, created_at, updated_at)
    SELECT (SELECT new FROM id_map WHERE tbl = 'institutions' AND old = id),
        code,
        name,
        url,
        created_at,
        updated_at
    FROM institutions;

CREATE TABLE institution_credentials_new (
    institution_id  INTEGER NOT NULL REFERENCES institutions_new (id) ON DELETE CASCADE,
    guid            TEXT NOT NULL,
    field_name      TEXT NOT NULL,
    label           TEXT NOT NULL,
    kind            TEXT NOT NULL,
    display_order   BIGINT NOT NULL,
    PRIMARY KEY (institution_id, guid)
);
INSERT INTO institution_credentials_new (institution_id, guid, field_name, label, kind, display_order)
    SELECT (SELECT new FROM id_map WHERE tbl = 'institutions' AND old = institution_id),
        guid,
        field_name,
        label,
        kind,
        display_order
    FROM institution_credentials;

CREATE TABLE members_new (
    id                          INTEGER PRIMARY KEY,
    user_id                     INTEGER NOT NULL REFERENCES users_new (id) ON DELETE CASCADE,
    institution_id              INTEGER NOT NULL REFERENCES institutions_new (id),
    identifier                  TEXT NOT NULL UNIQUE,
    guid                        TEXT,
    name                        TEXT NOT NULL,
    status                      TEXT NOT NULL,
    aggregated_at               TEXT,
    successfully_aggregated_at  TEXT,
    metadata                    TEXT,
    poll_generation             BIGINT NOT NULL DEFAULT 0,
    polls                       BIGINT NOT NULL DEFAULT 0,
    halted_retries              BIGINT NOT NULL DEFAULT 0,
    gave_up                     BOOLEAN NOT NULL DEFAULT FALSE,
    is_deleted                  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at                  TEXT NOT NULL,
    updated_at                  TEXT NOT NULL
);
INSERT INTO members_new (id, user_id, institution_id, identifier, guid, name, status, aggregated_at, successfully_aggregated_at, metadata, poll_generation, polls, halted_retries, gave_up, is_deleted, created_at, updated_at)
    SELECT (SELECT new FROM id_map WHERE tbl = 'members' AND old = id),
        (SELECT new FROM id_map WHERE tbl = 'users' AND old = user_id),
        (SELECT new FROM id_map WHERE tbl = 'institutions' AND old = institution_id),
        identifier,
        guid,
        name,
        status,
        aggregated_at,
        successfully_aggregated_at,
        metadata,
        poll_generation,
        polls,
        halted_retries,
        gave_up,
        is_deleted,
        created_at,
        updated_at
    FROM members;

CREATE TABLE challenges_new (
    member_id   INTEGER NOT NULL REFERENCES members_new (id) ON DELETE CASCADE,
    guid        TEXT NOT NULL,
    position    BIGINT NOT NULL,
    field_name  TEXT,
    label       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    options     TEXT NOT NULL,
    image_data  TEXT,
    PRIMARY KEY (member_id, guid)
);
INSERT INTO challenges_new (member_id, guid, position, field_name, label, kind, options, image_data)
    SELECT (SELECT new FROM id_map WHERE tbl = 'members' AND old = member_id),
        guid,
        position,
        field_name,
        label,
        kind,
        options,
        image_data
    FROM challenges;

CREATE TABLE accounts_new (
    id                              INTEGER PRIMARY KEY,
    user_id                         INTEGER NOT NULL REFERENCES users_new (id) ON DELETE CASCADE,
    member_id                       INTEGER NOT NULL REFERENCES members_new (id) ON DELETE CASCADE,
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
    last_payment_at                 TEXT,
    payment_due_at                  TEXT,
    day_payment_is_due              BIGINT,
    matures_on                      TEXT,
    started_on                      TEXT,
    total_account_value             BIGINT,
    is_closed                       BOOLEAN NOT NULL DEFAULT FALSE,
    is_active                       BOOLEAN NOT NULL DEFAULT TRUE,
    transfer_share                  BIGINT NOT NULL DEFAULT 0,
    is_funding_source_for_transfer  BOOLEAN NOT NULL DEFAULT FALSE,
    is_dwolla_created               BOOLEAN NOT NULL DEFAULT FALSE,
    account_number_encrypted        TEXT,
    account_number_last4            TEXT,
    is_deleted                      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at                      TEXT NOT NULL,
    updated_at                      TEXT NOT NULL,
    UNIQUE (user_id, guid)
);
INSERT INTO accounts_new (id, user_id, member_id, guid, uid, name, kind, type_ds, subtype, balance, available_balance, available_credit, credit_limit, apr, apy, interest_rate, minimum_balance, minimum_payment, original_balance, payoff_balance, last_payment, last_payment_at, payment_due_at, day_payment_is_due, matures_on, started_on, total_account_value, is_closed, is_active, transfer_share, is_funding_source_for_transfer, is_dwolla_created, account_number_encrypted, account_number_last4, is_deleted, created_at, updated_at)
    SELECT (SELECT new FROM id_map WHERE tbl = 'accounts' AND old = id),
        (SELECT new FROM id_map WHERE tbl = 'users' AND old = user_id),
        (SELECT new FROM id_map WHERE tbl = 'members' AND old = member_id),
        guid,
        uid,
        name,
        kind,
        type_ds,
        subtype,
        balance,
        available_balance,
        available_credit,
        credit_limit,
        apr,
        apy,
        interest_rate,
        minimum_balance,
        minimum_payment,
        original_balance,
        payoff_balance,
        last_payment,
        last_payment_at,
        payment_due_at,
        day_payment_is_due,
        matures_on,
        started_on,
        total_account_value,
        is_closed,
        is_active,
        transfer_share,
        is_funding_source_for_transfer,
        is_dwolla_created,
        account_number_encrypted,
        account_number_last4,
        is_deleted,
        created_at,
        updated_at
    FROM accounts;

CREATE TABLE transactions_new (
    id                      INTEGER PRIMARY KEY,
    user_id                 INTEGER NOT NULL,
    account_id              INTEGER NOT NULL REFERENCES accounts_new (id) ON DELETE CASCADE,
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
    date                    TEXT NOT NULL,
    transacted_at           TEXT,
    posted_at               TEXT,
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
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    UNIQUE (user_id, guid)
);
INSERT INTO transactions_new (id, user_id, account_id, guid, uid, amount, kind, status, category, top_level_category, description, original_description, memo, date, transacted_at, posted_at, check_number, merchant_category_code, latitude, longitude, is_bill_pay, is_direct_deposit, is_expense, is_fee, is_income, is_overdraft_fee, is_payroll_advance, created_at, updated_at)
    SELECT (SELECT new FROM id_map WHERE tbl = 'transactions' AND old = id),
        (SELECT new FROM id_map WHERE tbl = 'users' AND old = user_id),
        (SELECT new FROM id_map WHERE tbl = 'accounts' AND old = account_id),
        guid,
        uid,
        amount,
        kind,
        status,
        category,
        top_level_category,
        description,
        original_description,
        memo,
        date,
        transacted_at,
        posted_at,
        check_number,
        merchant_category_code,
        latitude,
        longitude,
        is_bill_pay,
        is_direct_deposit,
        is_expense,
        is_fee,
        is_income,
        is_overdraft_fee,
        is_payroll_advance,
        created_at,
        updated_at
    FROM transactions;

CREATE TABLE social_identities_new (
    id                INTEGER PRIMARY KEY,
    provider          TEXT NOT NULL,
    provider_user_id  TEXT NOT NULL,
    user_id           INTEGER NOT NULL REFERENCES users_new (id) ON DELETE CASCADE,
    email             TEXT,
    profile           TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (provider, provider_user_id)
);
INSERT INTO social_identities_new (id, provider, provider_user_id, user_id, email, profile, created_at, updated_at)
    SELECT (SELECT new FROM id_map WHERE tbl = 'social_identities' AND old = id),
        provider,
        provider_user_id,
        (SELECT new FROM id_map WHERE tbl = 'users' AND old = user_id),
        email,
        profile,
        created_at,
        updated_at
    FROM social_identities;

DROP TABLE social_identities;
DROP TABLE transactions;
DROP TABLE accounts;
DROP TABLE challenges;
DROP TABLE members;
DROP TABLE institution_credentials;
DROP TABLE institutions;
DROP TABLE jobs;
DROP TABLE outbox;
DROP TABLE action_tokens;
DROP TABLE auth_tokens;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
ALTER TABLE auth_tokens_new RENAME TO auth_tokens;
ALTER TABLE action_tokens_new RENAME TO action_tokens;
ALTER TABLE outbox_new RENAME TO outbox;
ALTER TABLE jobs_new RENAME TO jobs;
ALTER TABLE institutions_new RENAME TO institutions;
ALTER TABLE institution_credentials_new RENAME TO institution_credentials;
ALTER TABLE members_new RENAME TO members;
ALTER TABLE challenges_new RENAME TO challenges;
ALTER TABLE accounts_new RENAME TO accounts;
ALTER TABLE transactions_new RENAME TO transactions;
ALTER TABLE social_identities_new RENAME TO social_identities;

CREATE INDEX auth_tokens_user ON auth_tokens (user_id);
CREATE INDEX action_tokens_user ON action_tokens (user_id, purpose);
CREATE INDEX jobs_ready ON jobs (status, run_at);
CREATE UNIQUE INDEX members_user_institution ON members (user_id, institution_id) WHERE is_deleted = FALSE;
CREATE INDEX members_status ON members (status);
CREATE INDEX accounts_member ON accounts (member_id);
CREATE INDEX transactions_user_date ON transactions (user_id, date, transacted_at);
CREATE INDEX transactions_account ON transactions (account_id);
CREATE INDEX social_identities_user ON social_identities (user_id);

DROP TABLE id_map;

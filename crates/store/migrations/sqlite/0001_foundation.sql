-- Timestamps are RFC 3339 text in UTC, booleans are 0/1, ids are program-generated text.
CREATE TABLE users (
    id                       TEXT PRIMARY KEY,
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

CREATE TABLE auth_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX auth_tokens_user ON auth_tokens (user_id);

CREATE TABLE action_tokens (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    new_email   TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);
CREATE INDEX action_tokens_user ON action_tokens (user_id, purpose);

CREATE TABLE outbox (
    id          TEXT PRIMARY KEY,
    user_id     TEXT REFERENCES users (id) ON DELETE SET NULL,
    template    TEXT NOT NULL,
    to_address  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    text_body   TEXT NOT NULL,
    html_body   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    sent_at     TEXT
);

CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
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
CREATE INDEX jobs_ready ON jobs (status, run_at);

CREATE TABLE job_slots (
    name        TEXT NOT NULL,
    slot        BIGINT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (name, slot)
);

-- Sign-in with Facebook, Google and Twitter: which provider account belongs to which user, and
-- the short-lived server-side state of the Twitter (OAuth 1.0a) flow.
CREATE TABLE social_identities (
    id                TEXT PRIMARY KEY,
    provider          TEXT NOT NULL,
    provider_user_id  TEXT NOT NULL,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email             TEXT,
    profile           TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (provider, provider_user_id)
);
CREATE INDEX social_identities_user ON social_identities (user_id);

CREATE TABLE oauth_requests (
    token         TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);

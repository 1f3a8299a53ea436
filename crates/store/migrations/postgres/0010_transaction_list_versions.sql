-- A counter per user that every change to what the user's transaction list shows (its rows,
-- or the accounts they belong to) raises in the same database transaction: a process that
-- keeps a rendered list asks this one row whether the list is still current instead of
-- rendering it again.
CREATE TABLE transaction_list_versions (
    user_id  BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    version  BIGINT NOT NULL
);

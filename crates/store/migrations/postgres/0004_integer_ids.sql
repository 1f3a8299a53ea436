-- Integer ids: every id, and every column that refers to one, becomes a BIGINT. Existing text ids
-- are numbered per table in the order the rows were made (ROW_NUMBER over created_at, id); these
-- are far below the ids the program makes from now on (milliseconds since 2025 << 13), so old and
-- new never meet. References follow through one map, and a reference to a missing row fails the
-- migration rather than being dropped. Job payloads that name a row are rewritten too.
CREATE TEMPORARY TABLE id_map (
    tbl  TEXT NOT NULL,
    old  TEXT NOT NULL,
    new  BIGINT NOT NULL,
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

-- A function may query a table inside ALTER COLUMN ... USING, where a subquery may not stand.
CREATE FUNCTION pg_temp.mapped(t TEXT, old_id TEXT) RETURNS BIGINT
    LANGUAGE sql STABLE AS $$ SELECT new FROM id_map WHERE tbl = t AND old = old_id $$;

UPDATE jobs SET payload = (payload::jsonb || jsonb_build_object('user_id', pg_temp.mapped('users', payload::jsonb ->> 'user_id')))::text
    WHERE jsonb_typeof(payload::jsonb -> 'user_id') = 'string';
UPDATE jobs SET payload = (payload::jsonb || jsonb_build_object('member_id', pg_temp.mapped('members', payload::jsonb ->> 'member_id')))::text
    WHERE jsonb_typeof(payload::jsonb -> 'member_id') = 'string';
UPDATE jobs SET payload = (payload::jsonb || jsonb_build_object('account_id', pg_temp.mapped('accounts', payload::jsonb ->> 'account_id')))::text
    WHERE jsonb_typeof(payload::jsonb -> 'account_id') = 'string';
UPDATE jobs SET payload = (payload::jsonb || jsonb_build_object('outbox_id', pg_temp.mapped('outbox', payload::jsonb ->> 'outbox_id')))::text
    WHERE jsonb_typeof(payload::jsonb -> 'outbox_id') = 'string';

-- Foreign keys cannot span a text and a bigint column: drop them all, convert, add them back.
DO $$
DECLARE fk RECORD;
BEGIN
    FOR fk IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
              WHERE contype = 'f' AND connamespace = current_schema()::regnamespace LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.tbl, fk.conname);
    END LOOP;
END $$;

ALTER TABLE users ALTER COLUMN id TYPE BIGINT USING pg_temp.mapped('users', id);
ALTER TABLE auth_tokens ALTER COLUMN user_id TYPE BIGINT USING pg_temp.mapped('users', user_id);
ALTER TABLE action_tokens ALTER COLUMN user_id TYPE BIGINT USING pg_temp.mapped('users', user_id);
ALTER TABLE outbox
    ALTER COLUMN id TYPE BIGINT USING pg_temp.mapped('outbox', id),
    ALTER COLUMN user_id TYPE BIGINT USING pg_temp.mapped('users', user_id);
ALTER TABLE jobs ALTER COLUMN id TYPE BIGINT USING pg_temp.mapped('jobs', id);
ALTER TABLE institutions ALTER COLUMN id TYPE BIGINT USING pg_temp.mapped('institutions', id);
ALTER TABLE institution_credentials
    ALTER COLUMN institution_id TYPE BIGINT USING pg_temp.mapped('institutions', institution_id);
ALTER TABLE members
    ALTER COLUMN id TYPE BIGINT USING pg_temp.mapped('members', id),
    ALTER COLUMN user_id TYPE BIGINT USING pg_temp.mapped('users', user_id),
    ALTER COLUMN institution_id TYPE BIGINT USING pg_temp.mapped('institutions', institution_id);
ALTER TABLE challenges ALTER COLUMN member_id TYPE BIGINT USING pg_temp.mapped('members', member_id);
ALTER TABLE accounts
    ALTER COLUMN id TYPE BIGINT USING pg_temp.mapped('accounts', id),
    ALTER COLUMN user_id TYPE BIGINT USING pg_temp.mapped('users', user_id),
    ALTER COLUMN member_id TYPE BIGINT USING pg_temp.mapped('members', member_id);
ALTER TABLE transactions
    ALTER COLUMN id TYPE BIGINT USING pg_temp.mapped('transactions', id),
    ALTER COLUMN user_id TYPE BIGINT USING pg_temp.mapped('users', user_id),
    ALTER COLUMN account_id TYPE BIGINT USING pg_temp.mapped('accounts', account_id);
ALTER TABLE social_identities
    ALTER COLUMN id TYPE BIGINT USING pg_temp.mapped('social_identities', id),
    ALTER COLUMN user_id TYPE BIGINT USING pg_temp.mapped('users', user_id);

-- An outbox row may outlive its user (ON DELETE SET NULL); every other reference must resolve.
ALTER TABLE auth_tokens ADD CONSTRAINT auth_tokens_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE action_tokens ADD CONSTRAINT action_tokens_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE outbox ADD CONSTRAINT outbox_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE institution_credentials ADD CONSTRAINT institution_credentials_institution_id_fkey
    FOREIGN KEY (institution_id) REFERENCES institutions (id) ON DELETE CASCADE;
ALTER TABLE members ADD CONSTRAINT members_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE members ADD CONSTRAINT members_institution_id_fkey
    FOREIGN KEY (institution_id) REFERENCES institutions (id);
ALTER TABLE challenges ADD CONSTRAINT challenges_member_id_fkey
    FOREIGN KEY (member_id) REFERENCES members (id) ON DELETE CASCADE;
ALTER TABLE accounts ADD CONSTRAINT accounts_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE accounts ADD CONSTRAINT accounts_member_id_fkey
    FOREIGN KEY (member_id) REFERENCES members (id) ON DELETE CASCADE;
ALTER TABLE transactions ADD CONSTRAINT transactions_account_id_fkey
    FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE;
ALTER TABLE social_identities ADD CONSTRAINT social_identities_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;

DROP FUNCTION pg_temp.mapped(TEXT, TEXT);
DROP TABLE id_map;

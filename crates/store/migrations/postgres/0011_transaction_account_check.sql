-- Every transaction belongs to an existing account of its own user, and goes when the account
-- goes. A sync writes up to hundreds of thousands of transactions in one statement; the foreign
-- key transactions.account_id → accounts checked them one row at a time (a lookup and a row lock
-- per row, about a third of an ingest's time). These triggers keep that guarantee with one
-- set-wise check per statement, and add what the key never checked: the transaction's user is
-- the account's user.
ALTER TABLE transactions DROP CONSTRAINT transactions_account_id_fkey;

-- After each statement that writes transactions: lock the accounts written for as the key did
-- (FOR KEY SHARE, so none of them can be deleted until this database transaction ends), then
-- refuse the statement if any row names an account that does not exist or is another user's.
CREATE FUNCTION transactions_check_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM accounts WHERE id IN (SELECT account_id FROM written) ORDER BY id FOR KEY SHARE;
    IF EXISTS (
        SELECT 1 FROM written w
        WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = w.account_id AND a.user_id = w.user_id)
    ) THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'a transaction names an account that does not exist or is not its user''s',
            CONSTRAINT = 'transactions_account_id_fkey',
            TABLE = 'transactions';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER transactions_inserted_check_accounts AFTER INSERT ON transactions
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION transactions_check_accounts();
CREATE TRIGGER transactions_updated_check_accounts AFTER UPDATE ON transactions
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION transactions_check_accounts();

-- Deleting accounts deletes their transactions (the key's ON DELETE CASCADE), in the same
-- statement; a cascade from a user or a member deleting accounts runs it too.
CREATE FUNCTION accounts_delete_transactions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM transactions WHERE account_id IN (SELECT id FROM gone);
    RETURN NULL;
END;
$$;
CREATE TRIGGER accounts_deleted_delete_transactions AFTER DELETE ON accounts
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION accounts_delete_transactions();

-- An account with transactions keeps its id and its user; truncating accounts while any
-- transaction remains is refused.
CREATE FUNCTION accounts_keep_transactions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    referred BOOLEAN;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        referred := EXISTS (SELECT 1 FROM transactions);
    ELSE
        referred := EXISTS (SELECT 1 FROM transactions WHERE account_id = OLD.id);
    END IF;
    IF referred THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('%s on accounts refused: transactions refer to the account', TG_OP),
            CONSTRAINT = 'transactions_account_id_fkey',
            TABLE = 'accounts';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER accounts_updated_keep_transactions AFTER UPDATE OF id, user_id ON accounts
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION accounts_keep_transactions();
CREATE TRIGGER accounts_truncated_keep_transactions AFTER TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_keep_transactions();

-- Every transaction belongs to an existing account of its own user. The foreign key
-- transactions.account_id → accounts (kept: SQLite checks it in the same row lookup) ties a
-- transaction to an account; these triggers add that the account is the transaction's user's.
CREATE TRIGGER transactions_inserted_check_account_user BEFORE INSERT ON transactions
WHEN NOT EXISTS (SELECT 1 FROM accounts WHERE id = NEW.account_id AND user_id = NEW.user_id)
BEGIN
    SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: a transaction names an account that is not its user''s');
END;
CREATE TRIGGER transactions_updated_check_account_user BEFORE UPDATE OF account_id, user_id ON transactions
WHEN NOT EXISTS (SELECT 1 FROM accounts WHERE id = NEW.account_id AND user_id = NEW.user_id)
BEGIN
    SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: a transaction names an account that is not its user''s');
END;
-- An account with transactions keeps its user.
CREATE TRIGGER accounts_updated_keep_transactions BEFORE UPDATE OF user_id ON accounts
WHEN NEW.user_id IS NOT OLD.user_id AND EXISTS (SELECT 1 FROM transactions WHERE account_id = OLD.id)
BEGIN
    SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: transactions refer to the account');
END;

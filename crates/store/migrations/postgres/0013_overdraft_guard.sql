-- The overdraft guard: a collection never takes the round-up source below the user's floor,
-- judged on a fresh balance.

-- Whole dollars the source account's available balance must keep after a collection.
ALTER TABLE users ADD COLUMN overdraft_floor BIGINT NOT NULL DEFAULT 100;
-- When a sync last stored the account's balances. Empty until the first sync after this
-- migration: a balance of unknown age counts as stale.
ALTER TABLE accounts ADD COLUMN balance_at TIMESTAMPTZ;

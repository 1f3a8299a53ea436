-- The double-entry ledger (see donkies_domain::ledger for the chart of accounts). Entries are
-- immutable: triggers refuse to change or delete them. Money is in cents.

-- Two-phase entries: reserved when a transfer is created, then posted or voided exactly once.
CREATE TABLE ledger_pending (
    id              INTEGER PRIMARY KEY,
    -- Derived from what caused the entry (`collect:<collection id>`): one pending entry each.
    key             TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    debit_account   TEXT NOT NULL,
    credit_account  TEXT NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount > 0),
    user_id         BIGINT,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'posted', 'voided')),
    created_at      TEXT NOT NULL,
    resolved_at     TEXT,
    CHECK (debit_account <> credit_account),
    CHECK ((state = 'pending') = (resolved_at IS NULL))
);
CREATE INDEX ledger_pending_user_id ON ledger_pending (user_id, id);
CREATE INDEX ledger_pending_open ON ledger_pending (state) WHERE state = 'pending';

CREATE TABLE ledger_entries (
    id              INTEGER PRIMARY KEY,
    -- Derived from what caused the entry (`roundup:<transaction id>`): recording it twice is a no-op.
    key             TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    debit_account   TEXT NOT NULL,
    credit_account  TEXT NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount > 0),
    -- No reference to users: the ledger outlives a user, and never changes.
    user_id         BIGINT,
    -- The pending entry this entry posted; one entry per posted pending entry.
    pending_id      BIGINT UNIQUE REFERENCES ledger_pending (id),
    created_at      TEXT NOT NULL,
    CHECK (debit_account <> credit_account)
);
CREATE INDEX ledger_entries_user_id ON ledger_entries (user_id, id);

-- Kept in the same transaction as the entries; `donkies ledger check` recomputes them.
CREATE TABLE ledger_balances (
    account          TEXT PRIMARY KEY,
    posted           BIGINT NOT NULL DEFAULT 0,
    pending_debits   BIGINT NOT NULL DEFAULT 0 CHECK (pending_debits >= 0),
    pending_credits  BIGINT NOT NULL DEFAULT 0 CHECK (pending_credits >= 0)
);

CREATE TRIGGER ledger_entries_are_immutable BEFORE UPDATE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are immutable');
END;
CREATE TRIGGER ledger_entries_are_never_deleted BEFORE DELETE ON ledger_entries
BEGIN
    SELECT RAISE(ABORT, 'ledger entries are never deleted');
END;
-- A pending entry changes once: from pending to posted or voided, nothing else about it.
CREATE TRIGGER ledger_pending_resolves_once BEFORE UPDATE ON ledger_pending
WHEN OLD.state <> 'pending' OR NEW.state = 'pending' OR NEW.key <> OLD.key OR NEW.kind <> OLD.kind
    OR NEW.debit_account <> OLD.debit_account OR NEW.credit_account <> OLD.credit_account
    OR NEW.amount <> OLD.amount OR NEW.user_id IS NOT OLD.user_id OR NEW.id <> OLD.id
    OR NEW.created_at <> OLD.created_at
BEGIN
    SELECT RAISE(ABORT, 'a pending ledger entry resolves once');
END;
CREATE TRIGGER ledger_pending_is_never_deleted BEFORE DELETE ON ledger_pending
BEGIN
    SELECT RAISE(ABORT, 'pending ledger entries are never deleted');
END;

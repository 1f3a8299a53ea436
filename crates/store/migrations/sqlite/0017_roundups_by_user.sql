-- A user's round-ups still in force, found by user: checking a batch's (or one sync's) users for
-- round-ups whose purchase moved read every active round-up of every user without it.
CREATE INDEX roundups_user_active ON roundups (user_id) WHERE retired_at IS NULL;

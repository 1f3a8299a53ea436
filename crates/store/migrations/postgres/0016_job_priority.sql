-- What a person waits for (linking, polls, mail) runs before batch work: a job's priority is
-- set at enqueue (1 interactive, 0 batch) and the worker claims the highest priority due job
-- first, then the oldest.
ALTER TABLE jobs ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
CREATE INDEX jobs_due ON jobs (status, priority DESC, run_at);

-- A job may carry a dedupe key: while one job with the key is queued or running, enqueuing
-- another is a no-op. A parked (failed) job gives its key up, so the work can be asked again.
ALTER TABLE jobs ADD COLUMN dedupe_key TEXT;
CREATE UNIQUE INDEX jobs_dedupe_key ON jobs (dedupe_key) WHERE dedupe_key IS NOT NULL;

-- Since when a job has been waiting out an unavailable provider (an outage, a rate limit,
-- refused credentials). Such waits do not use up the job's attempts; the worker parks the job
-- once it has waited longer than its limit. Empty while the job is not failing.
ALTER TABLE jobs ADD COLUMN waiting_since TIMESTAMPTZ;

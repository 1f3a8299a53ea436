-- Attempts counted against a rate limit (sign-ins, password-reset requests) per key and fixed
-- time window, so that every process on the database sees one count. A window's row is of no
-- use once the window has ended; the cleanup job removes it.
CREATE TABLE rate_limit_windows (
    key           TEXT NOT NULL,
    window_start  TEXT NOT NULL,
    window_end    TEXT NOT NULL,
    hits          BIGINT NOT NULL,
    PRIMARY KEY (key, window_start)
);
CREATE INDEX rate_limit_windows_end ON rate_limit_windows (window_end);

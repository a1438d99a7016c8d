-- One table is both the dedup set and the queue, keyed by event id.
-- Times are milliseconds since the Unix epoch.
CREATE TABLE ricloud_inbox (
    event_id      TEXT PRIMARY KEY,
    slug          TEXT NOT NULL,
    body          BYTEA NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'dead')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    run_at        BIGINT NOT NULL,
    lease_owner   TEXT,
    lease_expires BIGINT,
    last_error    TEXT,
    received_at   BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    done_at       BIGINT
);

-- What workers look for: pending rows that are due, running rows whose
-- lease ran out.
CREATE INDEX ricloud_inbox_due ON ricloud_inbox (state, run_at);

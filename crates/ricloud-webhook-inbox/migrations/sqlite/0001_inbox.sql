-- One table is both the dedup set and the queue, keyed by event id.
-- Times are milliseconds since the Unix epoch.
CREATE TABLE ricloud_inbox (
    event_id      TEXT PRIMARY KEY NOT NULL,
    slug          TEXT NOT NULL,
    body          BLOB NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'dead')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    run_at        INTEGER NOT NULL,
    lease_owner   TEXT,
    lease_expires INTEGER,
    last_error    TEXT,
    received_at   INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    done_at       INTEGER
);

-- What workers look for: pending rows that are due, running rows whose
-- lease ran out.
CREATE INDEX ricloud_inbox_due ON ricloud_inbox (state, run_at);

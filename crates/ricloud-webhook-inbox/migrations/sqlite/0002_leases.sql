-- A counter raised by every take of a row: the lease token. Renewing and
-- settling are fenced on it, so only the latest take of a row can change it.
ALTER TABLE ricloud_inbox ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;

-- The database's clock, in milliseconds since the epoch (the same view as
-- on PostgreSQL, so the inbox's SQL reads the same on both).
CREATE VIEW ricloud_inbox_clock AS
    SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) AS now_ms;

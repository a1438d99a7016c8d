-- A counter raised by every take of a row: the lease token. Renewing and
-- settling are fenced on it, so only the latest take of a row can change
-- it, whichever process made the earlier ones.
ALTER TABLE ricloud_inbox ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0;

-- The database's clock, in milliseconds since the epoch: leases and due
-- times are computed from it, so the replicas' own clocks do not matter.
CREATE VIEW ricloud_inbox_clock AS
    SELECT (extract(epoch FROM now()) * 1000)::BIGINT AS now_ms;

-- The Ricloud-Signature header value that verified each event, as
-- received, so that a forwarder can pass it on for the consumer to verify
-- again; NULL for events fetched from the API.
ALTER TABLE ricloud_inbox ADD COLUMN signature TEXT;

-- The name of the webhook config that delivered each event, when the
-- receiver serves several (its path segment); NULL for one config and for
-- events fetched from the API.
ALTER TABLE ricloud_inbox ADD COLUMN config TEXT;

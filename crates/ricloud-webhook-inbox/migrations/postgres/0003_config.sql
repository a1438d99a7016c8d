-- The name of the webhook config that delivered each event, when the
-- receiver serves several (its path segment); NULL for one config and for
-- events fetched from the API.
ALTER TABLE ricloud_inbox ADD COLUMN config TEXT;
-- Which of the receiver's secrets verified it: 0 the current one, 1.. a
-- previous one; NULL for events fetched from the API.
ALTER TABLE ricloud_inbox ADD COLUMN matched_secret INTEGER;

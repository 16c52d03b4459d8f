-- SMS delivery reports: the carrier's status of a message the provider accepted, moved
-- forward only (queued -> sending -> sent -> delivered; delivered, undelivered and failed
-- are final), and the provider's error code (Twilio 30003-30008, 21211, 21610...).

ALTER TABLE outbox ADD COLUMN delivery_status TEXT;
ALTER TABLE outbox ADD COLUMN delivery_rank INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN error_code TEXT;
CREATE INDEX outbox_provider ON outbox (channel, provider_id) WHERE provider_id IS NOT NULL;

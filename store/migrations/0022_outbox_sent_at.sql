-- A sender that takes over a channel (another process on PostgreSQL, or a restart after a
-- crash) seeds its rate limits from what the channel sent in the last minute
-- (`outbox.recent_sends`): this index finds those rows without reading the whole outbox.
CREATE INDEX outbox_sent ON outbox (channel, sent_at) WHERE sent_at IS NOT NULL;

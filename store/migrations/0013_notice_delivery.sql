-- The console's notices (issue 14): an English text beside the Chinese one, and each
-- outbox row of a notice (or of its reminder) tagged with the notice, so that its
-- delivery (queued, sent, failed) can be counted.
ALTER TABLE notices ADD COLUMN body_en TEXT;
ALTER TABLE outbox ADD COLUMN notice_id INTEGER REFERENCES notices (id);
CREATE INDEX outbox_notice ON outbox (notice_id, status) WHERE notice_id IS NOT NULL;

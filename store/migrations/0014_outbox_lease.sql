-- Several processes on one PostgreSQL (issue 16): a claimed outbox row carries a lease; a
-- message whose lease has passed while still 'sending' (its process died) is queued
-- again. SQLite, one process, requeues everything 'sending' at start instead.

ALTER TABLE outbox ADD COLUMN lease_until TEXT;
CREATE INDEX outbox_in_flight ON outbox (lease_until) WHERE status = 'sending';

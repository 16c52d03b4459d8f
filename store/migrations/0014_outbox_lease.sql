-- Several processes on one PostgreSQL (issue 16): a claimed outbox row carries a lease; a
-- message whose lease has passed while still 'sending' (its process died) is queued
-- again. SQLite, one process, requeues everything 'sending' at start instead.

ALTER TABLE outbox ADD COLUMN lease_until TEXT;
-- Messages in flight per address: the claim on PostgreSQL leaves an address alone while an
-- earlier message to it is in flight anywhere (a dead process's, until its lease passes),
-- so one chat's messages still arrive in order after a takeover.
CREATE INDEX outbox_in_flight ON outbox (channel, address, id) WHERE status = 'sending';

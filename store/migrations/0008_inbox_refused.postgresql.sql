-- PostgreSQL's form of 0008_inbox_refused.sql: it changes a CHECK constraint in place
-- (SQLite has to rebuild the table for that).

ALTER TABLE inbox DROP CONSTRAINT inbox_status_check;
ALTER TABLE inbox ADD CONSTRAINT inbox_status_check
    CHECK (status IN ('received', 'processed', 'failed', 'ignored', 'refused'));

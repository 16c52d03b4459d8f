-- A B-tree entry holding a whole description fails past PostgreSQL's limit for one entry:
-- a case described in a long Telegram message (up to 4,096 characters, 12 kB of UTF-8)
-- could not be filed. 0010's open-case index by deadline held the description and the
-- address so that SQLite's text search and counts read the index alone; on PostgreSQL
-- the trigram GIN indexes of 0017 serve the text search, so the index keeps its first two
-- columns only.
DROP INDEX cases_open_deadline;
CREATE INDEX cases_open_deadline ON cases (deadline, state)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');

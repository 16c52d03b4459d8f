-- PostgreSQL's form of 0017_case_text.sql: trigram GIN indexes (pg_trgm, part of Debian's
-- postgresql) on the description and the address. The list's `LIKE '%…%'` uses them as
-- it stands (a bitmap index scan on each, OR-ed), and PostgreSQL keeps them in step
-- itself: no triggers, no second table, nothing for the query to add. Nor SQLite's
-- cases_open_text: a B-tree entry holding a whole description can pass PostgreSQL's
-- limit (2,704 bytes: a long Telegram message), and the GIN indexes serve those counts.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX cases_description_trgm ON cases USING gin (description gin_trgm_ops);
CREATE INDEX cases_address_trgm ON cases USING gin (address gin_trgm_ops);

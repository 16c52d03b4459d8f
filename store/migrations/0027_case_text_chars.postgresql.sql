-- The console's search for a text of 1 or 2 characters on PostgreSQL (issue 13). pg_trgm
-- finds no trigram in it, so its GIN indexes (0017) returned every case to be checked:
-- 1-3 s a page at 1,000,000 cases for a character no case holds. This index holds each
-- case's characters (of the description and the address, lower-cased as ILIKE folds
-- them): the cases holding all of a short text's characters are those that may contain
-- it, and the same ILIKE then checks each (store/caselist.py, `text_chars`: used for a
-- text in fewer than one of a hundred of the newest cases; a commoner one is met soon in
-- the list's order). 5 s to build and 22 MB at 1,000,000 cases of the benchmark's short
-- descriptions.
CREATE INDEX cases_text_chars ON cases USING gin (
    string_to_array(lower(coalesce(description, '') || coalesce(address, '')), NULL));
-- Its expression's statistics (how common each character is) come with ANALYZE, which
-- autovacuum would run only later (0.9 s at 1,000,000 cases).
ANALYZE cases;

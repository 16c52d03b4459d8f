-- The console's text search (store/caselist.py): a trigram full-text index of the cases'
-- description and address, so that a search over every status finds its cases from the
-- index instead of reading a million rows with LIKE '%…%'. Chinese has no spaces between
-- words: trigrams (every 3 characters in a row) make any substring of 3 or more findable.
--
-- Contentless (content=''): the index keeps no copy of the text (the cases table has it,
-- and the query checks its matches with LIKE against it). It is not external content
-- because what it indexes is not the column as it stands: each value ends with two
-- sentinel characters (char(31), the unit separator), so that every 1 or 2 characters of
-- a text, its last ones too, begin some trigram; a 1- or 2-character search looks those
-- trigrams up in the vocabulary (cases_text_terms). columnsize=0: no ranking, no sizes.
-- The triggers keep it in step: a contentless index forgets a row by being told the very
-- values it was given ('delete'), which the old row still holds.
CREATE VIRTUAL TABLE cases_text USING fts5(description, address, content='', columnsize=0,
    tokenize='trigram');
CREATE VIRTUAL TABLE cases_text_terms USING fts5vocab(cases_text, row);
INSERT INTO cases_text (rowid, description, address)
    SELECT id, description || char(31, 31), coalesce(address, '') || char(31, 31) FROM cases;
CREATE TRIGGER cases_text_insert AFTER INSERT ON cases BEGIN
    INSERT INTO cases_text (rowid, description, address)
        VALUES (new.id, new.description || char(31, 31),
                coalesce(new.address, '') || char(31, 31));
END;
CREATE TRIGGER cases_text_update AFTER UPDATE OF description, address ON cases BEGIN
    INSERT INTO cases_text (cases_text, rowid, description, address)
        VALUES ('delete', old.id, old.description || char(31, 31),
                coalesce(old.address, '') || char(31, 31));
    INSERT INTO cases_text (rowid, description, address)
        VALUES (new.id, new.description || char(31, 31),
                coalesce(new.address, '') || char(31, 31));
END;
CREATE TRIGGER cases_text_delete AFTER DELETE ON cases BEGIN
    INSERT INTO cases_text (cases_text, rowid, description, address)
        VALUES ('delete', old.id, old.description || char(31, 31),
                coalesce(old.address, '') || char(31, 31));
END;
-- The counts per status of the open cases for a common text (one the index finds in more
-- cases than is worth reading one by one): LIKE over this index alone, 30,000 entries,
-- instead of 30,000 rows, with the scopes' columns and the list's simple filters beside
-- the text. Its WHERE is store.caselist.OPEN_SQL word for word.
CREATE INDEX cases_open_text ON cases (state, description, address, street_code,
    community_code, grid_code, department, category, urgency, source_channel)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');
-- Measured now, where the planner has measured the others (a database that ANALYZE has
-- seen): unmeasured, it looks selective and the page's query sorts its 30,000 instead of
-- reading the deadline's index in order.
ANALYZE cases_open_text;

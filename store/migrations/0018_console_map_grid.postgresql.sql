-- PostgreSQL's form of 0018_console_map_grid.sql: the same grid-led index for the map's
-- counts, without the description and the address. A B-tree entry holding a whole
-- description fails past PostgreSQL's limit for one entry (a long Telegram message is
-- 12 kB of UTF-8), and there the text search reads the trigram GIN indexes of 0017
-- instead. The street-led index of 0016 stays as it is.
CREATE INDEX cases_open_map_grid ON cases (grid_code, deadline, street_code, community_code,
    department, category, urgency, source_channel, created_at, state, number, lat, lon)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');

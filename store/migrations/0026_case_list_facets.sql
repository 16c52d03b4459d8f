-- The counts per status of the list when two or more of its simple filters (or a scope and
-- a filter) meet over the finished cases, e.g. closed, U1 and from Open311: each filter's
-- own (column, state) index holds a hundred thousand closed cases, and the count read each
-- one's row to check the other filter (300 to 1,700 ms under load). Here the filters are
-- in the index: the count seeks urgency, channel and state and checks the rest in the
-- index, reading no row; a page of few matches is read by it and sorted
-- (store/caselist.py, FEW_MATCHES). Urgency first, not the state: with the state first,
-- its measured 200,000 rows a state changed the planner's guess for every open-case page
-- (it sorted the 30,000 open cases instead of reading the deadline's index).
-- No text columns: this B-tree serves PostgreSQL too (0025).
CREATE INDEX cases_facets ON cases (urgency, source_channel, state, category, street_code,
    community_code, grid_code, department);
-- Measured now, as 0017's index: unmeasured, the planner takes it for very selective.
ANALYZE cases_facets;

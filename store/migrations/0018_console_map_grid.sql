-- The console's map (store/casemap.py): its counts per grid (past POINTS_AT_ONCE open
-- cases it sends counts, not points) read from one covering partial index in grid order,
-- with every column the list's filters ask (text search included), so that no filter
-- sends the planner to the table or to a temporary B-tree for the grouping: over the
-- district's 30,000 open cases every filter of the benchmark then counts in 3-20 ms; the
-- state-led index of 0016 took 15-90 ms, and through the (grid, deadline) index the
-- planner read the table for each case (90-170 ms for one community's). Its WHERE is
-- store.caselist.OPEN_SQL word for word, or the planner would not use it.
CREATE INDEX cases_open_map_grid ON cases (grid_code, deadline, street_code, community_code,
    department, category, urgency, source_channel, created_at, state, number, lat, lon,
    description, address)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');
-- A street dispatcher's map with a text search: the street-led covering index of 0016
-- with the description and the address at its end (the street's 6,000 open cases were
-- read from the table for the search: 90-140 ms).
DROP INDEX cases_open_map_street;
CREATE INDEX cases_open_map_street ON cases (street_code, deadline, grid_code, community_code,
    department, category, urgency, source_channel, created_at, state, number, lat, lon,
    description, address)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');

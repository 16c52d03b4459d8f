-- The console's map (store/casemap.py, benchmarks/bench_console_map.py): the open cases'
-- points and counts per grid read from the index alone (covering partial indexes), in
-- deadline order, for everyone and for a street's dispatcher. Their WHERE is
-- store.caselist.OPEN_SQL word for word, or the planner would not use them.
CREATE INDEX cases_open_map ON cases (deadline, grid_code, street_code, community_code,
    department, category, urgency, source_channel, created_at, state, number, lat, lon)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');
CREATE INDEX cases_open_map_street ON cases (street_code, deadline, grid_code, community_code,
    department, category, urgency, source_channel, created_at, state, number, lat, lon)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');
-- One open state (the status filter's "registered", say).
CREATE INDEX cases_open_map_state ON cases (state, deadline, grid_code, street_code,
    community_code, department, category, urgency, source_channel, created_at, number, lat, lon)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');

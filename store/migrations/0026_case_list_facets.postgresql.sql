-- As 0026_case_list_facets.sql (the counts of finished cases over two or more filters);
-- PostgreSQL's ANALYZE takes a table, and its autovacuum measures new indexes itself.
CREATE INDEX cases_facets ON cases (urgency, source_channel, state, category, street_code,
    community_code, grid_code, department);

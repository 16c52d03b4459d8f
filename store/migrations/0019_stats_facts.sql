-- The month's indicators (store/stats.py) at 1,000,000 cases (issue 14, item 7).
--
-- 1. What they need of each case, in a narrow table of its own that store.cases writes
--    with the case: its areas, when it arrived, was registered, falls due and closed,
--    the level that closed it, who is in charge, its urgency, category and channel, and
--    whether staff found it on patrol. An area's month is ranges on this table's
--    indexes, one per area level and moment; reading ~100 bytes a case, where the cases
--    table (its workflow JSON, its words) takes a page for every few (and the case
--    list's planner keeps its own indexes on cases, untouched).
CREATE TABLE case_facts (
    case_id         INTEGER PRIMARY KEY REFERENCES cases (id),
    street_code     TEXT,
    community_code  TEXT,
    grid_code       TEXT,
    created_at      TEXT NOT NULL,
    registered_at   TEXT,
    deadline        TEXT,
    closed_at       TEXT,
    closed_by_level TEXT,
    assignee_id     INTEGER,
    urgency         TEXT NOT NULL,
    category        TEXT,
    source_channel  TEXT,
    found_on_patrol INTEGER NOT NULL DEFAULT 0,
    -- the audit line id the change of these facts came with (the newest then, plus
    -- one): set when the case is stored and when a change alters them, not otherwise
    changed_seq     INTEGER NOT NULL DEFAULT 0
);
INSERT INTO case_facts (case_id, street_code, community_code, grid_code, created_at,
    registered_at, deadline, closed_at, closed_by_level, assignee_id, urgency, category,
    source_channel, found_on_patrol)
SELECT id, street_code, community_code, grid_code, created_at,
    json_extract(workflow, '$.registered_at'), deadline, closed_at,
    json_extract(workflow, '$.closed_by_level'), assignee_id, urgency, category,
    source_channel, CASE WHEN json_extract(workflow, '$.found_on_patrol') THEN 1 ELSE 0 END
FROM cases;
CREATE INDEX case_facts_changed ON case_facts (changed_seq);
CREATE INDEX case_facts_created ON case_facts (created_at);
CREATE INDEX case_facts_deadline ON case_facts (deadline);
CREATE INDEX case_facts_closed ON case_facts (closed_at);
CREATE INDEX case_facts_street_created ON case_facts (street_code, created_at);
CREATE INDEX case_facts_street_deadline ON case_facts (street_code, deadline);
CREATE INDEX case_facts_street_closed ON case_facts (street_code, closed_at);
CREATE INDEX case_facts_community_created ON case_facts (community_code, created_at);
CREATE INDEX case_facts_community_deadline ON case_facts (community_code, deadline);
CREATE INDEX case_facts_community_closed ON case_facts (community_code, closed_at);
CREATE INDEX case_facts_grid_created ON case_facts (grid_code, created_at);
CREATE INDEX case_facts_grid_deadline ON case_facts (grid_code, deadline);
CREATE INDEX case_facts_grid_closed ON case_facts (grid_code, closed_at);

-- 2. Finished months, kept (bot/services/stats.py, kept_month_report): the figures that
--    come from the cases of one area (scope '' for the whole district) in one month, as
--    of the audit line `basis` (the newest then). Kept while no case that could count
--    in the month has changed its facts since, and no newer audit line is dated in
--    the month or just after (store.stats.changed_since).
CREATE TABLE stats_months (
    scope       TEXT NOT NULL,
    month       TEXT NOT NULL,              -- YYYY-MM, local
    basis       INTEGER NOT NULL,           -- case_events.id: the newest when computed
    figures     TEXT NOT NULL,              -- bot.domain.stats.case_figures as JSON
    computed_at TEXT NOT NULL,
    PRIMARY KEY (scope, month)
);

-- The street command center's console: one-time sign-in links, sessions, and the indexes
-- its case list filters and sorts on (bot/services/caselist.py, benchmarks/bench_console.py).

CREATE TABLE console_links (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,      -- sha256 of the link's secret; the secret is never stored
    person_id   INTEGER NOT NULL REFERENCES people (id),
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
);
CREATE INDEX console_links_person ON console_links (person_id, created_at);

CREATE TABLE console_sessions (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,      -- sha256 of the cookie's session secret
    person_id   INTEGER NOT NULL REFERENCES people (id),
    csrf        TEXT NOT NULL,             -- the token every state-changing request carries
    created_at  TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    ended_at    TEXT                        -- signed out
);
CREATE INDEX console_sessions_person ON console_sessions (person_id);

-- When a case last changed (its newest audit line), for the list's "last change" order;
-- store.cases.add_events keeps it.
ALTER TABLE cases ADD COLUMN changed_at TEXT;
UPDATE cases SET changed_at = COALESCE(
    (SELECT max(e.at) FROM case_events e WHERE e.case_id = cases.id), created_at);

-- What staff write on a case in the console besides actions: internal notes (never shown
-- to residents, nor in Open311) and messages sent to the resident.
CREATE TABLE case_notes (
    id          INTEGER PRIMARY KEY,
    case_id     INTEGER NOT NULL REFERENCES cases (id),
    person_id   INTEGER NOT NULL REFERENCES people (id),
    kind        TEXT NOT NULL CHECK (kind IN ('internal', 'message')),
    body        TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX case_notes_case ON case_notes (case_id, id);

-- The case list (store/caselist.py). Open cases (a few percent of all) have partial
-- indexes, one per filter the page offers, each in deadline order; their WHERE is
-- store.caselist.OPEN_SQL word for word, or the planner would not use them.
-- (The first also holds the state and the words, so that a text search and the counts
-- of the open cases read the index, not the rows.)
CREATE INDEX cases_open_deadline ON cases (deadline, state, description, address)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');
CREATE INDEX cases_open_created ON cases (created_at)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');
CREATE INDEX cases_open_changed ON cases (changed_at)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');
CREATE INDEX cases_open_street ON cases (street_code, deadline)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');
CREATE INDEX cases_open_community ON cases (community_code, deadline)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');
CREATE INDEX cases_open_grid ON cases (grid_code, deadline)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');
CREATE INDEX cases_open_category ON cases (category, deadline)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');
CREATE INDEX cases_open_urgency ON cases (urgency, deadline)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');
CREATE INDEX cases_open_channel ON cases (source_channel, deadline)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');
CREATE INDEX cases_open_department ON cases (department, deadline)
    WHERE state IN ('submitted', 'registered', 'dispatched', 'in_progress', 'resolved', 'suspended');
-- The finished cases (closed, evaluated, rejected, merged: most of them) in each order,
-- again on store.caselist.FINISHED_SQL word for word. There is no index on deadline or
-- changed_at over all cases: the planner would walk it, filtering, instead of the partial
-- ones; "any status" is read as the open and the finished cases, merged.
CREATE INDEX cases_done_deadline ON cases (deadline)
    WHERE state IN ('closed', 'evaluated', 'rejected', 'merged');
CREATE INDEX cases_done_created ON cases (created_at)
    WHERE state IN ('closed', 'evaluated', 'rejected', 'merged');
CREATE INDEX cases_done_changed ON cases (changed_at)
    WHERE state IN ('closed', 'evaluated', 'rejected', 'merged');
-- One state, and the counts per state, with each area and filter.
CREATE INDEX cases_state_deadline ON cases (state, deadline);
CREATE INDEX cases_state_created ON cases (state, created_at);
CREATE INDEX cases_state_changed ON cases (state, changed_at);
CREATE INDEX cases_street_state ON cases (street_code, state, created_at);
CREATE INDEX cases_community_state ON cases (community_code, state, created_at);
CREATE INDEX cases_department_state ON cases (department, state);
CREATE INDEX cases_urgency_state ON cases (urgency, state);
CREATE INDEX cases_channel_state ON cases (source_channel, state);

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

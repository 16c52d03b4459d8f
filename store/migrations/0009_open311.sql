-- Open311 GeoReport v2 (issue 15): API keys, what Open311 filings carry besides the case,
-- the queue of cases POSTed to departments' own Open311 systems, and what was pulled back.

CREATE TABLE api_keys (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,     -- sha256 of the key; the key itself is not kept
    prefix      TEXT NOT NULL,            -- its first characters, to tell keys apart in lists
    services    TEXT,                     -- JSON list of category or service codes; NULL: all
    department  TEXT,                     -- the department this key speaks for, if any
    person_id   INTEGER NOT NULL REFERENCES people (id),  -- files when no reporter is named
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

CREATE TABLE open311_requests (
    case_id     INTEGER PRIMARY KEY REFERENCES cases (id),
    api_key_id  INTEGER NOT NULL REFERENCES api_keys (id),
    email       TEXT,
    device_id   TEXT,
    account_id  TEXT,
    media_url   TEXT,                     -- stored as a link, not fetched
    attributes  TEXT NOT NULL DEFAULT '{}'
);

-- GET requests: a date window in creation order, open or closed (the expression must stay
-- written exactly as store/open311.py's CLOSED_SQL for SQLite to use this index).
CREATE INDEX cases_open311_window ON cases (
    (state IN ('closed', 'evaluated', 'rejected', 'merged')), created_at);
CREATE INDEX cases_created ON cases (created_at);
-- GET servicerequestupdates: the audit trail by time.
CREATE INDEX case_events_at ON case_events (at);

CREATE TABLE open311_outbound (
    id              INTEGER PRIMARY KEY,
    case_id         INTEGER NOT NULL REFERENCES cases (id),
    department      TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    external_id     TEXT,                 -- the department's service_request_id
    error           TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    closed_at       TEXT                  -- the department finished with it (done, returned)
);
CREATE INDEX open311_outbound_queue ON open311_outbound (status, next_attempt_at)
    WHERE status = 'queued';
CREATE INDEX open311_outbound_case ON open311_outbound (case_id);

-- Updates already applied from a department's system, so none is applied twice.
CREATE TABLE open311_pulled (
    department  TEXT NOT NULL,
    update_id   TEXT NOT NULL,
    case_id     INTEGER REFERENCES cases (id),
    applied_at  TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    PRIMARY KEY (department, update_id)
);

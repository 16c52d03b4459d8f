-- gridbot schema, version 1. Timestamps are ISO 8601 UTC text; JSON columns are text.

CREATE TABLE areas (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    name_en     TEXT,
    level       TEXT NOT NULL CHECK (level IN ('district', 'street', 'community', 'grid')),
    parent      TEXT REFERENCES areas (code),
    geometry    TEXT NOT NULL,            -- GeoJSON geometry, WGS84
    updated_at  TEXT NOT NULL
);
CREATE INDEX areas_parent ON areas (parent);

CREATE TABLE buildings (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    address     TEXT NOT NULL,
    grid_code   TEXT NOT NULL REFERENCES areas (code),
    lat         REAL,
    lon         REAL,
    UNIQUE (grid_code, name)
);

CREATE TABLE people (
    id              INTEGER PRIMARY KEY,
    name            TEXT,
    phone           TEXT,                 -- E.164 when known
    locale          TEXT,
    grid_code       TEXT REFERENCES areas (code),   -- the grid this person is known in
    duties          TEXT,
    phone_visible   INTEGER NOT NULL DEFAULT 0,     -- resident agreed to show the number to staff
    created_at      TEXT NOT NULL
);

CREATE TABLE contacts (
    id          INTEGER PRIMARY KEY,
    person_id   INTEGER NOT NULL REFERENCES people (id),
    channel     TEXT NOT NULL,
    address     TEXT NOT NULL,
    opted_out   INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    last_seen_at TEXT,
    UNIQUE (channel, address)
);
CREATE INDEX contacts_person ON contacts (person_id);

CREATE TABLE roles (
    id          INTEGER PRIMARY KEY,
    person_id   INTEGER NOT NULL REFERENCES people (id),
    role        TEXT NOT NULL,
    scope       TEXT,                     -- an area code or a department code
    granted_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX roles_scope ON roles (role, scope);
CREATE INDEX roles_person ON roles (person_id);

CREATE TABLE conversations (
    contact_id  INTEGER PRIMARY KEY REFERENCES contacts (id),
    flow        TEXT,
    step        TEXT,
    data        TEXT NOT NULL DEFAULT '{}',
    version     INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT NOT NULL
);

CREATE TABLE counters (
    name        TEXT PRIMARY KEY,
    value       INTEGER NOT NULL
);

CREATE TABLE cases (
    id              INTEGER PRIMARY KEY,
    number          TEXT NOT NULL UNIQUE,
    state           TEXT NOT NULL,
    category        TEXT NOT NULL,
    subcategory     TEXT,
    urgency         TEXT NOT NULL,
    procedure       TEXT NOT NULL,
    level           TEXT NOT NULL,
    grid_code       TEXT,
    community_code  TEXT,
    street_code     TEXT,
    department      TEXT,
    assignee_id     INTEGER REFERENCES people (id),
    reporter_id     INTEGER REFERENCES people (id),
    description     TEXT NOT NULL,
    address         TEXT,
    building_id     INTEGER REFERENCES buildings (id),
    lat             REAL,
    lon             REAL,
    location_note   TEXT,
    source_channel  TEXT,
    created_at      TEXT NOT NULL,
    deadline        TEXT,
    closed_at       TEXT,
    workflow        TEXT NOT NULL,        -- the full workflow.Case as JSON (the pure model's state)
    version         INTEGER NOT NULL
);
CREATE INDEX cases_open_by_category ON cases (category, state, created_at);
CREATE INDEX cases_reporter ON cases (reporter_id);
CREATE INDEX cases_grid ON cases (grid_code, state);
CREATE INDEX cases_assignee ON cases (assignee_id, state);

CREATE TABLE case_events (
    id              INTEGER PRIMARY KEY,
    case_id         INTEGER NOT NULL REFERENCES cases (id),
    event           TEXT NOT NULL,
    actor_id        INTEGER REFERENCES people (id),
    actor_role      TEXT NOT NULL,
    from_state      TEXT NOT NULL,
    to_state        TEXT NOT NULL,
    at              TEXT NOT NULL,
    note            TEXT NOT NULL DEFAULT ''
);
CREATE INDEX case_events_case ON case_events (case_id, id);

CREATE TABLE case_followers (
    case_id     INTEGER NOT NULL REFERENCES cases (id),
    person_id   INTEGER NOT NULL REFERENCES people (id),
    since       TEXT NOT NULL,
    PRIMARY KEY (case_id, person_id)
);
CREATE INDEX case_followers_person ON case_followers (person_id);

CREATE TABLE media (
    id              INTEGER PRIMARY KEY,
    case_id         INTEGER REFERENCES cases (id),
    kind            TEXT NOT NULL DEFAULT 'photo',
    channel         TEXT NOT NULL,
    provider_ref    TEXT,                 -- e.g. a Telegram file_id
    path            TEXT,                 -- below the media folder
    sha256          TEXT,
    content_type    TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX media_case ON media (case_id);

CREATE TABLE inbox (
    id              INTEGER PRIMARY KEY,
    channel         TEXT NOT NULL,
    provider_id     TEXT NOT NULL,
    address         TEXT NOT NULL,
    payload         TEXT NOT NULL,        -- the raw inbound, as received
    received_at     TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'received'
                    CHECK (status IN ('received', 'processed', 'failed', 'ignored')),
    processed_at    TEXT,
    error           TEXT,
    UNIQUE (channel, provider_id)
);
CREATE INDEX inbox_pending ON inbox (status) WHERE status = 'received';

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    channel         TEXT NOT NULL,
    address         TEXT NOT NULL,
    person_id       INTEGER REFERENCES people (id),
    priority        INTEGER NOT NULL DEFAULT 0,   -- 0 replies and assignments, 10 bulk
    body            TEXT NOT NULL,
    payload         TEXT NOT NULL DEFAULT '{}',   -- buttons, location request, photo
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'expired')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    expires_at      TEXT,
    provider_id     TEXT,
    error           TEXT,
    inbox_id        INTEGER REFERENCES inbox (id),
    created_at      TEXT NOT NULL,
    sent_at         TEXT
);
CREATE INDEX outbox_queue ON outbox (channel, status, priority, id) WHERE status = 'queued';
CREATE INDEX outbox_address ON outbox (channel, address, id);

-- Staff: one-time invitations, the chief's visit log and public-opinion reports,
-- a photo on the contact card.

CREATE TABLE invites (
    id          INTEGER PRIMARY KEY,
    code_hash   TEXT NOT NULL UNIQUE,     -- sha256 of the code; the code itself is not kept
    role        TEXT NOT NULL,
    scope       TEXT,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    used_by     INTEGER REFERENCES people (id)
);

CREATE TABLE visits (
    id          INTEGER PRIMARY KEY,
    person_id   INTEGER NOT NULL REFERENCES people (id),
    grid_code   TEXT,
    building    TEXT NOT NULL,
    household   TEXT NOT NULL,
    raised      TEXT NOT NULL,
    at          TEXT NOT NULL
);

CREATE TABLE opinions (
    id          INTEGER PRIMARY KEY,
    person_id   INTEGER NOT NULL REFERENCES people (id),
    grid_code   TEXT,
    body        TEXT NOT NULL,
    at          TEXT NOT NULL
);

ALTER TABLE people ADD COLUMN photo_media_id INTEGER REFERENCES media (id);

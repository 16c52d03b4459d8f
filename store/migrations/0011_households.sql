-- Households under buildings (issue 17): the household archive, who read it, what was
-- deleted (no personal data), visits against a household, cases phoned in for a caller
-- and cases linked to a household.

CREATE TABLE households (
    id          INTEGER PRIMARY KEY,
    building_id INTEGER NOT NULL REFERENCES buildings (id),
    grid_code   TEXT NOT NULL REFERENCES areas (code),   -- the building's grid, for scope
    unit        TEXT NOT NULL DEFAULT '',                 -- 单元, '' when the building has none
    room        TEXT NOT NULL,                            -- 室
    head_name   TEXT NOT NULL,
    phone       TEXT,                                     -- E.164
    people      INTEGER NOT NULL DEFAULT 1,
    tags        TEXT NOT NULL DEFAULT '[]',               -- JSON list of tag codes
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (building_id, unit, room)
);
CREATE INDEX households_grid ON households (grid_code);
CREATE INDEX households_phone ON households (phone);

-- Every staff read of a household record (a card, a list, a due-visit list).
CREATE TABLE household_reads (
    id           INTEGER PRIMARY KEY,
    household_id INTEGER NOT NULL,          -- kept after a deletion: no foreign key
    person_id    INTEGER NOT NULL REFERENCES people (id),
    role         TEXT NOT NULL,
    what         TEXT NOT NULL,             -- card, list, due, visit, link, mydata
    at           TEXT NOT NULL
);
CREATE INDEX household_reads_household ON household_reads (household_id, at);

-- Changes to the archive that must be accounted for; never names, phones or tags.
CREATE TABLE household_audit (
    id           INTEGER PRIMARY KEY,
    household_id INTEGER NOT NULL,
    grid_code    TEXT NOT NULL,
    action       TEXT NOT NULL,             -- delete
    person_id    INTEGER REFERENCES people (id),
    role         TEXT,
    at           TEXT NOT NULL
);

ALTER TABLE visits ADD COLUMN household_id INTEGER REFERENCES households (id);
ALTER TABLE visits ADD COLUMN building_id INTEGER REFERENCES buildings (id);
ALTER TABLE visits ADD COLUMN follow_up TEXT;
CREATE INDEX visits_household ON visits (household_id, at);
CREATE INDEX visits_at ON visits (at);

-- A case a staff member filed for a caller on the phone (电话代报).
CREATE TABLE phoneins (
    case_id     INTEGER PRIMARY KEY REFERENCES cases (id),
    filed_by    INTEGER NOT NULL REFERENCES people (id),
    filed_role  TEXT NOT NULL,
    caller_id   INTEGER NOT NULL REFERENCES people (id),
    sms         INTEGER NOT NULL,           -- 1: the caller hears by SMS; 0: the filer relays
    answered_by INTEGER REFERENCES people (id),  -- who recorded the caller's answer by phone
    answered_at TEXT
);

CREATE TABLE case_households (
    case_id      INTEGER PRIMARY KEY REFERENCES cases (id),
    household_id INTEGER NOT NULL REFERENCES households (id),
    linked_by    INTEGER REFERENCES people (id),
    linked_at    TEXT NOT NULL
);
CREATE INDEX case_households_household ON case_households (household_id);

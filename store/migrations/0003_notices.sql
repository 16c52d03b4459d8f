-- Notices, meetings, residents' choices and the scheduler's bookkeeping (issue 6).

-- Residents choose: the building they live in (/home) and whether notices reach them (/mute).
ALTER TABLE people ADD COLUMN building_id INTEGER REFERENCES buildings (id);
ALTER TABLE people ADD COLUMN muted INTEGER NOT NULL DEFAULT 0;
-- Set by /home: a grid chosen by the person is not moved by where they report problems.
ALTER TABLE people ADD COLUMN home_at TEXT;
CREATE INDEX people_grid ON people (grid_code);

-- Deadline timers of running cases. breach_at is the deadline while the clock runs; warn_at
-- is when to look at the 80% warning (first the moment the deadline was set, then the
-- exact moment the sweep computed). The sweep clears a column once it has acted on it, so
-- a sweep with nothing due reads nothing but the ends of these two small indexes.
ALTER TABLE cases ADD COLUMN warn_at TEXT;
ALTER TABLE cases ADD COLUMN breach_at TEXT;
CREATE INDEX cases_warn_due ON cases (warn_at) WHERE warn_at IS NOT NULL;
CREATE INDEX cases_breach_due ON cases (breach_at) WHERE breach_at IS NOT NULL;
-- Closed and not rated: the rating reminder looks at a window of closing times.
CREATE INDEX cases_closed_unrated ON cases (closed_at) WHERE state = 'closed';

CREATE TABLE notices (
    id              INTEGER PRIMARY KEY,
    -- notice; weekly (the grid meeting notice); reminder (of notice `reminds`, to those
    -- who have not acknowledged it)
    kind            TEXT NOT NULL DEFAULT 'notice'
                    CHECK (kind IN ('notice', 'weekly', 'reminder')),
    reminds         INTEGER REFERENCES notices (id),
    sender_id       INTEGER REFERENCES people (id),   -- NULL: command line or the system
    issuer          TEXT,                             -- the area it comes from (its name signs it)
    scope           TEXT NOT NULL,                    -- area code, or 'building:ID'
    audience        TEXT NOT NULL CHECK (audience IN ('residents', 'chiefs', 'staff')),
    body            TEXT NOT NULL,
    photo_id        INTEGER REFERENCES media (id),
    send_at         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'scheduled'
                    CHECK (status IN ('scheduled', 'sent', 'cancelled')),
    recipients      INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    sent_at         TEXT
);
CREATE INDEX notices_due ON notices (send_at) WHERE status = 'scheduled';
CREATE INDEX notices_sender ON notices (sender_id, id);

CREATE TABLE notice_recipients (
    notice_id       INTEGER NOT NULL REFERENCES notices (id),
    person_id       INTEGER NOT NULL REFERENCES people (id),
    grid_code       TEXT,                 -- for the acknowledgement count per grid
    acked_at        TEXT,
    reminded_at     TEXT,
    PRIMARY KEY (notice_id, person_id)
) WITHOUT ROWID;
CREATE INDEX notice_recipients_person ON notice_recipients (person_id, notice_id);

CREATE TABLE meetings (
    id              INTEGER PRIMARY KEY,
    organizer_id    INTEGER REFERENCES people (id),
    title           TEXT NOT NULL,
    place           TEXT NOT NULL,
    starts_at       TEXT NOT NULL,
    scope           TEXT NOT NULL,
    audience        TEXT NOT NULL CHECK (audience IN ('residents', 'chiefs', 'staff')),
    -- pending: invitations not sent yet (the scheduler sends them); active; cancelled
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'active', 'cancelled')),
    invited         INTEGER NOT NULL DEFAULT 0,
    day_reminder_at  TEXT,                -- when the reminder a day before was queued
    hour_reminder_at TEXT,                -- when the reminder an hour before was queued
    created_at      TEXT NOT NULL
);
CREATE INDEX meetings_upcoming ON meetings (starts_at) WHERE status = 'active';
CREATE INDEX meetings_pending ON meetings (id) WHERE status = 'pending';
CREATE INDEX meetings_organizer ON meetings (organizer_id, id);

CREATE TABLE meeting_invitees (
    meeting_id      INTEGER NOT NULL REFERENCES meetings (id),
    person_id       INTEGER NOT NULL REFERENCES people (id),
    grid_code       TEXT,
    answer          TEXT CHECK (answer IN ('yes', 'no')),
    answered_at     TEXT,
    invited_at      TEXT NOT NULL,
    PRIMARY KEY (meeting_id, person_id)
) WITHOUT ROWID;
CREATE INDEX meeting_invitees_person ON meeting_invitees (person_id, meeting_id);

-- Which occurrence of each scheduled job ran ("digest_morning" for 2026-11-23), and
-- watermarks (the rating reminder's "closed up to"). A restart reads them back.
CREATE TABLE schedule_runs (
    job             TEXT NOT NULL,
    period          TEXT NOT NULL,
    done_at         TEXT NOT NULL,
    PRIMARY KEY (job, period)
) WITHOUT ROWID;

CREATE TABLE schedule_marks (
    name            TEXT PRIMARY KEY,
    value           TEXT NOT NULL
);

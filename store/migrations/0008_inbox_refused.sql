-- An inbound payload can be 'refused': stored as it came, but not a message to act on (a
-- Telegram update that breaks the Bot API, an SMS from something that is not a phone
-- number); `error` says why. SQLite cannot change a CHECK constraint in place, so the table
-- is rebuilt (sqlite.org/lang_altertable.html, "other kinds of table schema changes";
-- store/db.py migrates with foreign keys off and checks them before the commit). The ids
-- stay, so the outbox rows that point at inbox rows still do.

CREATE TABLE inbox_rebuilt (
    id              INTEGER PRIMARY KEY,
    channel         TEXT NOT NULL,
    provider_id     TEXT NOT NULL,
    address         TEXT NOT NULL,
    payload         TEXT NOT NULL,        -- the raw inbound, as received
    received_at     TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'received'
                    CHECK (status IN ('received', 'processed', 'failed', 'ignored', 'refused')),
    processed_at    TEXT,
    error           TEXT,
    UNIQUE (channel, provider_id)
);
INSERT INTO inbox_rebuilt (id, channel, provider_id, address, payload, received_at, status,
                           processed_at, error)
    SELECT id, channel, provider_id, address, payload, received_at, status, processed_at, error
    FROM inbox;
DROP TABLE inbox;
ALTER TABLE inbox_rebuilt RENAME TO inbox;
CREATE INDEX inbox_pending ON inbox (status) WHERE status = 'received';

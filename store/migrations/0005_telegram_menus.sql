-- The command menu each staff member's Telegram chat was last given (setMyCommands with
-- a chat scope), so that a restart sets again only what changed.

CREATE TABLE telegram_menus (
    address     TEXT PRIMARY KEY,         -- the private chat's id
    menu        TEXT NOT NULL,            -- locale and commands, e.g. "zh_CN:tasks,case,help"
    set_at      TEXT NOT NULL,
    error       TEXT                      -- Telegram's answer when setting it failed
);

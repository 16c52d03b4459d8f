"""The one aiosqlite connection of a process: WAL, busy timeout, migrations, transactions.

SQLite allows one writer at a time and aiosqlite runs every statement of a connection on
one thread, so statements of two coroutines would interleave inside each other's
transactions. `Database.transaction()` therefore serializes transactions with an asyncio
lock: a transaction is short (no network awaits inside), and one inbound message is one
transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

# The connection and row types every store function takes. Today these are aiosqlite's;
# code above the store names them from here so that another backend can stand behind them.
Connection = aiosqlite.Connection
Row = aiosqlite.Row

# Errors worth waiting out: SQLite's "database is locked"/"busy", "disk is full", "unable
# to open": another process holds the file, or the disk is back soon. Workers back off and
# try again (bot/runtime/supervisor.py); a per-row "skip what is broken" must not swallow
# them, or a lock would pass for a broken row.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)

BUSY_TIMEOUT_MS = 5000


class Database:
    """An open SQLite database with its schema migrated."""

    def __init__(self, conn: Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> Database:
        """Open (creating if needed) the database file, in WAL mode, and migrate it."""
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        # "IMMEDIATE": a transaction that starts with a write begins implicitly, inside that
        # write's own call (see `transaction(starts_with_write=True)`); an explicit BEGIN
        # is used otherwise. Every write goes through `transaction()`.
        conn = await aiosqlite.connect(path, isolation_level="IMMEDIATE")
        conn.row_factory = aiosqlite.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable against a process crash in WAL mode; only a power loss can
        # lose the last transactions. The README states this.
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        db = cls(conn, path)
        await db.migrate()
        return db

    async def close(self) -> None:
        """Close the connection."""
        await self.conn.close()

    async def migrate(self) -> list[str]:
        """Apply the numbered migrations not applied yet; return their names."""
        await self.conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT)"
        )
        done = {row[0] for row in await self.conn.execute_fetchall(
            "SELECT name FROM schema_migrations")}
        applied = []
        # Foreign keys are off while migrating (outside any transaction: the pragma does
        # nothing inside one) so that a migration can rebuild a table others refer to,
        # SQLite's documented way to change a constraint; each migration is checked
        # before its commit instead.
        await self.conn.execute("PRAGMA foreign_keys = OFF")
        try:
            for name, sql in _migrations():
                if name in done:
                    continue
                async with self.transaction():
                    for statement in _statements(sql):
                        await self.conn.execute(statement)
                    broken = await fetch(self.conn, "PRAGMA foreign_key_check")
                    if broken:
                        raise RuntimeError(f"migration {name} breaks foreign keys: "
                                           f"{[tuple(row) for row in broken[:5]]}")
                    await self.conn.execute(
                        "INSERT INTO schema_migrations (name, applied_at)"
                        " VALUES (?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))", (name,))
                applied.append(name)
        finally:
            await self.conn.execute("PRAGMA foreign_keys = ON")
        return applied

    @asynccontextmanager
    async def transaction(
        self, starts_with_write: bool = False
    ) -> AsyncIterator[Connection]:
        """Run the block as one write transaction; commit on success, roll back on error.

        A block whose first statement is an INSERT, UPDATE or DELETE may say so with
        `starts_with_write`: SQLite then begins the transaction within that statement,
        which saves a round trip to the database thread on the hot path.
        """
        async with self._write_lock:
            try:
                if not starts_with_write:
                    await self.conn.execute("BEGIN IMMEDIATE")
                yield self.conn
            except BaseException:
                # A cancel can land while a statement (BEGIN too) still waits for the
                # database thread, which runs it anyway: one round trip lets it finish
                # before deciding, so no transaction is left open behind the lock.
                await self.conn.execute("SELECT 1")
                if self.conn.in_transaction:
                    await self.conn.execute("ROLLBACK")
                raise
            else:
                if self.conn.in_transaction:
                    await self.conn.execute("COMMIT")

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Run a read outside any explicit transaction."""
        return list(await self.conn.execute_fetchall(sql, tuple(params)))

    async def ping(self) -> bool:
        """Say whether the database answers a trivial query."""
        rows = await fetch(self.conn, "SELECT 1")
        return bool(rows) and rows[0][0] == 1


async def fetch(conn: Connection, sql: str,
                params: Iterable[Any] = ()) -> list[Row]:
    """Run a query and return all its rows as a list."""
    return list(await conn.execute_fetchall(sql, tuple(params)))


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files("store") / "migrations"
    files = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return files


def _statements(sql: str) -> list[str]:
    # Migrations are plain DDL with no semicolons inside strings or triggers.
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


@asynccontextmanager
async def savepoint(conn: Connection, name: str) -> AsyncIterator[None]:
    """A transaction inside the current one: when the block raises, what it wrote is
    undone and the exception goes on, and the outer transaction carries on if caught."""
    await conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        await conn.execute(f"ROLLBACK TO {name}")
        await conn.execute(f"RELEASE {name}")
        raise
    await conn.execute(f"RELEASE {name}")

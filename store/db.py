"""The one database connection of a process: SQLite (aiosqlite) or PostgreSQL (psycopg).

`GRIDBOT_DATABASE` is a SQLite file (the default) or a `postgresql://` URL
(store/pg.py); the store's functions take either connection as `Connection`. SQLite's
path is aiosqlite's own connection with nothing in between (its benchmarks did not move);
PostgreSQL's is a small wrapper that translates the portable SQL (store/dialect.py).

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import psycopg

from store.migrate import migration_files, statements
from store.pg import MIGRATION_LOCK, PgConnection, display_url, is_postgres_url

# The connection and row types every store function takes: aiosqlite's connection, or the
# PostgreSQL wrapper that offers the same calls (execute, executemany, execute_fetchall).
Connection = aiosqlite.Connection | PgConnection
Row = aiosqlite.Row | tuple[Any, ...]

# Errors worth waiting out: SQLite's "database is locked"/"busy", "disk is full", "unable
# to open": another process holds the file, or the disk is back soon; PostgreSQL's server
# unreachable, a dropped connection, a serialization failure or deadlock. Workers back off
# and try again (bot/runtime/supervisor.py); a per-row "skip what is broken" must not
# swallow them, or a lock would pass for a broken row.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (sqlite3.OperationalError,
                                                     psycopg.OperationalError)

# The database server cannot be reached (PostgreSQL down, a wrong host): the command line
# says so in one line.
UNREACHABLE: tuple[type[BaseException], ...] = (psycopg.OperationalError,)

CACHE_KIB = 65_536
MMAP_BYTES = 2_147_418_112  # SQLite's usual ceiling (SQLITE_MAX_MMAP_SIZE)
BUSY_TIMEOUT_MS = 5000


def is_postgres(conn: Connection) -> bool:
    """Whether a connection is PostgreSQL's (for the few statements with a variant)."""
    return isinstance(conn, PgConnection)


class Database:
    """An open database (a SQLite file or a PostgreSQL database) with its schema migrated."""

    def __init__(self, conn: Connection, path: Path | str) -> None:
        self.conn = conn
        self.path = path  # the file, or the URL
        self._write_lock = asyncio.Lock()

    @property
    def postgres(self) -> bool:
        """Whether this is PostgreSQL."""
        return isinstance(self.conn, PgConnection)

    @property
    def name(self) -> str:
        """The file, or the URL without its password, for messages."""
        return display_url(self.path) if isinstance(self.path, str) else str(self.path)

    @classmethod
    async def open(cls, path: Path | str) -> Database:
        """Open (creating if needed) the database file, in WAL mode, and migrate it; or
        connect to the PostgreSQL database a `postgresql://` URL names, and migrate it."""
        if is_postgres_url(path):
            assert isinstance(path, str)
            db = cls(await PgConnection.connect(path), path)
            try:
                await db.migrate()
            except BaseException:
                await db.close()
                raise
            return db
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
        # 64 MB of pages kept in the process (SQLite's default is 2 MB): the console reads
        # the same indexes and rows of a large district again and again (a street's month
        # of statistics: 20 % quicker at 1,000,000 cases). And the file read through a
        # memory map, not a system call a page: the first such read after a start, before
        # the cache holds anything, takes half as long (75-107 ms against 150-250 ms).
        await conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        await conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        db = cls(conn, path)
        await db.migrate()
        return db

    async def close(self) -> None:
        """Close the connection."""
        await self.conn.close()

    async def migrate(self) -> list[str]:
        """Apply the numbered migrations not applied yet; return their names."""
        if isinstance(self.conn, PgConnection):
            return await self._migrate_postgres(self.conn)
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
            for name, sql in migration_files("sqlite"):
                if name in done:
                    continue
                async with self.transaction():
                    for statement in statements(sql):
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

    async def _migrate_postgres(self, conn: PgConnection) -> list[str]:
        """The same numbered migrations, under an advisory lock (processes starting
        together), each in its own transaction; a `.postgresql.sql` variant replaces a
        file whose SQL only SQLite runs."""
        await conn.execute_raw("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations"
                               " (name TEXT PRIMARY KEY, applied_at TEXT)")
            done = {row[0] for row in await conn.execute_fetchall(
                "SELECT name FROM schema_migrations")}
            applied = []
            for name, sql in migration_files("postgresql"):
                if name in done:
                    continue
                async with self.transaction():
                    for statement in statements(sql):
                        await conn.execute(statement)
                    await conn.execute(
                        "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                        (name, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
                applied.append(name)
            return applied
        finally:
            if not conn.raw or not conn.raw.broken:
                await conn.execute_raw("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))

    @asynccontextmanager
    async def transaction(
        self, starts_with_write: bool = False
    ) -> AsyncIterator[Connection]:
        """Run the block as one write transaction; commit on success, roll back on error.

        A block whose first statement is an INSERT, UPDATE or DELETE may say so with
        `starts_with_write`: SQLite then begins the transaction within that statement,
        which saves a round trip to the database thread on the hot path.
        """
        if isinstance(self.conn, PgConnection):
            async with self._write_lock, _pg_transaction(self.conn):
                yield self.conn
            return
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


@asynccontextmanager
async def _pg_transaction(conn: PgConnection) -> AsyncIterator[None]:
    """BEGIN … COMMIT on PostgreSQL; ROLLBACK on error unless the connection broke."""
    await conn.execute("BEGIN")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        raise
    if conn.in_transaction:
        await conn.execute("COMMIT")


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


async def insert_id(conn: Connection, sql: str, params: Iterable[Any] = ()) -> int | None:
    """Run an INSERT and return the new row's id, or None when it inserted nothing (ON
    CONFLICT DO NOTHING). SQLite says it as `lastrowid` (measured 12 % cheaper there than
    RETURNING, and this is on the hot path: every inbound payload); PostgreSQL has only
    `RETURNING id`."""
    if isinstance(conn, aiosqlite.Connection):
        cursor = await conn.execute(sql, tuple(params))
        return cursor.lastrowid if cursor.rowcount == 1 else None
    rows = await conn.execute_fetchall(sql + " RETURNING id", tuple(params))
    for row in rows:
        return int(row[0])
    return None


async def new_id(conn: Connection, sql: str, params: Iterable[Any] = ()) -> int:
    """Run an INSERT that always inserts a row and return its id."""
    found = await insert_id(conn, sql, params)
    assert found is not None
    return found

"""PostgreSQL behind the store's connection interface, with psycopg 3 (async).

`PgConnection` offers what the store calls on aiosqlite's connection — `execute` (a
cursor with `rowcount`), `executemany`, `execute_fetchall`, `in_transaction` — and runs
each statement through `store.dialect.to_postgres` first. Why psycopg rather than
asyncpg: benchmarks/bench_pg_drivers.py (README: Benchmarks) measured both on our own
statements; on writes (what a step costs: a transaction's round trips and its commit)
they are level, asyncpg reads ~1.3x faster, and psycopg gives a row count for every
statement, pipelines `executemany` into one round trip, has LISTEN/NOTIFY and a sync API
for the command line and the tests from the same library.

One connection per process, like SQLite's: `store.db.Database` serializes transactions on
it. A connection the server dropped (a restart, an outage) is opened again at the next
statement; the statement that met the break raises `psycopg.OperationalError`, which the
workers wait out (store.db.TRANSIENT_ERRORS).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from store.dialect import planned_per_pattern, to_postgres

CONNECT_TIMEOUT_S = 5
# Taken by `gridbot migrate` / every start while migrating, so that processes starting
# together do not apply a migration twice (a number, any fixed one: "gridmig" in ASCII).
MIGRATION_LOCK = 0x677269646D6967

_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@]*:)[^@]*@")


def is_postgres_url(target: object) -> bool:
    """Whether a database setting names a PostgreSQL server."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def display_url(url: str) -> str:
    """The URL with its password hidden, for logs and messages."""
    return _PASSWORD.sub(r"\1***@", url)


class PgCursor:
    """What a statement left: its row count and rows (when it returns any)."""

    def __init__(self, rowcount: int, rows: list[tuple[Any, ...]]) -> None:
        self.rowcount = rowcount
        self.rows = rows

    async def fetchall(self) -> list[tuple[Any, ...]]:
        """The statement's rows."""
        return self.rows

    async def fetchone(self) -> tuple[Any, ...] | None:
        """The first row, if any."""
        return self.rows[0] if self.rows else None


class PgConnection:
    """One psycopg connection in autocommit mode; transactions are explicit BEGIN/COMMIT."""

    def __init__(self, url: str) -> None:
        self.url = url
        # How long a claimed outbox row stays another process's (store/outbox.py).
        self.outbox_lease = timedelta(seconds=60)
        self._conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None

    @classmethod
    async def connect(cls, url: str) -> PgConnection:
        """Open a connection to the server (raises when it cannot be reached)."""
        conn = cls(url)
        await conn.live()
        return conn

    async def live(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        """The open connection, opened again if the server dropped it."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                await self._conn.close()
            self._conn = None
            self._conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                application_name="gridbot")
        return self._conn

    @property
    def raw(self) -> psycopg.AsyncConnection[tuple[Any, ...]] | None:
        """The psycopg connection itself (LISTEN, COPY), when open."""
        return self._conn

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open on the connection."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            return False
        return conn.info.transaction_status != TransactionStatus.IDLE

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> PgCursor:
        """Run one statement; its rows (if it returns any) come with the cursor."""
        conn = await self.live()
        cursor = await conn.execute(to_postgres(sql), tuple(parameters or ()),
                                    prepare=False if planned_per_pattern(sql) else None)
        rows = await cursor.fetchall() if cursor.description is not None else []
        return PgCursor(cursor.rowcount, rows)

    async def executemany(self, sql: str,
                          parameters: Iterable[Sequence[Any]]) -> PgCursor:
        """Run one statement for each set of parameters (pipelined: one round trip)."""
        conn = await self.live()
        batch = [tuple(p) for p in parameters]
        if not batch:
            return PgCursor(0, [])
        async with conn.cursor() as cursor:
            await cursor.executemany(to_postgres(sql), batch)
            return PgCursor(cursor.rowcount, [])

    async def execute_fetchall(self, sql: str,
                               parameters: Iterable[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return all its rows."""
        return (await self.execute(sql, parameters)).rows

    async def execute_raw(self, sql: str, parameters: Sequence[Any] = ()) -> PgCursor:
        """Run PostgreSQL's own SQL as written (advisory locks, LISTEN): no translation."""
        conn = await self.live()
        cursor = await conn.execute(sql.encode(), tuple(parameters) or None)
        rows = await cursor.fetchall() if cursor.description is not None else []
        return PgCursor(cursor.rowcount, rows)

    async def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

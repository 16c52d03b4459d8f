"""One message to a big audience, queued inside SQLite.

The audience's recipients are staged in a scratch table of the connection (`STAGED`, a
temporary table, so it is private to this connection and gone when it closes); the
message is then rendered once per language and channel in Python, and each rendering is
queued to its recipients by one INSERT ... SELECT. A notice to 100,000 people costs a
few statements, not 100,000 rows through Python. Use it within one transaction.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from bot.domain.clock import iso
from store.db import Connection, fetch

STAGED = "temp.bulk_staged"


@asynccontextmanager
async def staged(conn: Connection, reached: tuple[str, tuple[Any, ...]]
                 ) -> AsyncIterator[dict[tuple[str | None, str], int]]:
    """Stage recipients, a SELECT of (person_id, area, channel, address, locale, pick)
    (`store.notices.People.reached`), for the block; give how many per (locale, channel).

    The table is emptied when the block ends; if it raises, the transaction's rollback
    takes the staged rows with it.
    """
    await conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS bulk_staged (person_id INTEGER PRIMARY KEY,"
        " area TEXT, channel TEXT NOT NULL, address TEXT NOT NULL, locale TEXT, pick TEXT)")
    await conn.execute(f"DELETE FROM {STAGED}")
    sql, params = reached
    await conn.execute(f"INSERT INTO {STAGED} {sql}", params)
    rows = await fetch(conn, f"SELECT locale, channel, count(*) FROM {STAGED}"
                             " GROUP BY locale, channel ORDER BY locale, channel")
    yield {(r[0], r[1]): int(r[2]) for r in rows}
    await conn.execute(f"DELETE FROM {STAGED}")


async def queue(conn: Connection, locale: str | None, channel: str, body: str,
                payload: dict[str, Any], *, priority: int, now: datetime,
                next_attempt_at: datetime | None = None,
                expires_at: datetime | None = None, notice_id: int | None = None) -> int:
    """Queue one message to every staged recipient of a language (None: not chosen) and
    channel; return how many rows were queued. `notice_id` tags the rows of a notice (its
    delivery is counted by it)."""
    cursor = await conn.execute(
        "INSERT INTO outbox (channel, address, person_id, priority, body, payload, created_at,"
        " next_attempt_at, expires_at, notice_id) SELECT channel, address, person_id, ?, ?, ?,"
        f" ?, ?, ?, ? FROM {STAGED} WHERE channel = ? AND locale IS ? ORDER BY person_id",
        (priority, body, json.dumps(payload, ensure_ascii=False), iso(now),
         iso(next_attempt_at) if next_attempt_at else None,
         iso(expires_at) if expires_at else None, notice_id, channel, locale))
    return cursor.rowcount

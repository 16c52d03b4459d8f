"""Raw inbound payloads, stored under the provider's id before anything else happens."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bot.domain.clock import iso
from store.db import Connection, fetch, insert_id

# What became of a stored payload; the CHECK in store/migrations/0008_inbox_refused.sql.
Status = Literal["received", "processed", "failed", "ignored", "refused"]


@dataclass(frozen=True)
class InboxRow:
    """One stored inbound payload."""

    id: int
    channel: str
    provider_id: str
    address: str
    payload: dict[str, Any]
    status: str


async def insert(
    conn: Connection, channel: str, provider_id: str, address: str,
    payload: dict[str, Any], now: datetime, status: Status = "received", raw: str | None = None,
) -> int | None:
    """Store a payload; return its id, or None when this provider id was stored before.

    `status` is "processed" only when the caller handles it in the same transaction; `raw`
    is the payload's JSON as it arrived, kept as it is (and not encoded again) when given.
    """
    stamp = iso(now)
    return await insert_id(
        conn,
        "INSERT INTO inbox (channel, provider_id, address, payload, received_at, status,"
        " processed_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel, provider_id)"
        " DO NOTHING",
        (channel, provider_id, address,
         raw if raw is not None else json.dumps(payload, ensure_ascii=False), stamp, status,
         None if status == "received" else stamp))


async def get(conn: Connection, inbox_id: int) -> InboxRow | None:
    """Return one stored payload."""
    rows = await fetch(conn,
        "SELECT id, channel, provider_id, address, payload, status FROM inbox WHERE id = ?",
        (inbox_id,))
    if not rows:
        return None
    r = rows[0]
    return InboxRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5])


async def mark(
    conn: Connection, inbox_id: int, status: Status, now: datetime,
    error: str | None = None,
) -> None:
    """Record what became of a payload: processed, ignored (not for us), failed (handling
    it raised: `error`) or refused (not a message at all: `error` says why). An error
    recorded before (a parser's note on why it ignored an update) is kept."""
    await conn.execute(
        "UPDATE inbox SET status = ?, processed_at = ?, error = coalesce(?, error)"
        " WHERE id = ?",
        (status, iso(now), error, inbox_id))


async def claim(conn: Connection, inbox_id: int, now: datetime) -> bool:
    """Mark a stored payload processed if nobody has; False when it was handled already."""
    cursor = await conn.execute(
        "UPDATE inbox SET status = 'processed', processed_at = ?"
        " WHERE id = ? AND status = 'received'", (iso(now), inbox_id))
    return cursor.rowcount == 1


async def pending(conn: Connection, limit: int = 1000) -> list[int]:
    """Ids of payloads stored but not yet processed (left by a crash), oldest first."""
    rows = await fetch(conn,
        "SELECT id FROM inbox WHERE status = 'received' ORDER BY id LIMIT ?", (limit,))
    return [r[0] for r in rows]


async def claim_in_turn(conn: Connection, inbox_ids: Sequence[int], now: datetime
                        ) -> tuple[set[int], set[int]]:
    """Mark these stored payloads processed where it is their turn, in one statement:
    (claimed, held back). Held back: still 'received' but an earlier payload of the same
    sender (not among these) is still to be processed, on another process (PostgreSQL,
    several processes: one person's messages in order). The rest were handled already.

    No lock is needed for the check: an earlier payload once processed stays processed
    (one still being processed elsewhere counts as waiting). PostgreSQL only (an UPDATE
    inside a WITH); SQLite's one process needs no such check.
    """
    if not inbox_ids:
        return set(), set()
    rows = await fetch(conn, f"""
        WITH wanted AS (
            SELECT id, channel, address FROM inbox
            WHERE id IN ({", ".join("?" for _ in inbox_ids)}) AND status = 'received'),
        ready AS (
            SELECT w.id FROM wanted w WHERE NOT EXISTS (
                SELECT 1 FROM inbox e WHERE e.status = 'received' AND e.channel = w.channel
                AND e.address = w.address AND e.id < w.id
                AND e.id NOT IN (SELECT id FROM wanted))),
        claimed AS (
            UPDATE inbox SET status = 'processed', processed_at = ?
            WHERE status = 'received' AND id IN (SELECT id FROM ready) RETURNING id)
        SELECT w.id, c.id IS NOT NULL FROM wanted w LEFT JOIN claimed c ON c.id = w.id""",
        (*inbox_ids, iso(now)))
    return {r[0] for r in rows if r[1]}, {r[0] for r in rows if not r[1]}


async def waiting_before(conn: Connection, channel: str, address: str, inbox_id: int) -> bool:
    """Whether an earlier payload of the same sender is still waiting to be processed (on
    another process, with several): this one must wait its turn."""
    rows = await fetch(conn,
        "SELECT 1 FROM inbox WHERE status = 'received' AND channel = ? AND address = ?"
        " AND id < ? LIMIT 1", (channel, address, inbox_id))
    return bool(rows)


async def stale(conn: Connection, before: datetime, limit: int = 1000, *,
                channel: str | None = None, address: str | None = None,
                before_id: int | None = None) -> list[int]:
    """Payloads still 'received' that were stored before `before`: their process died
    (several processes on PostgreSQL); another one processes them. Optionally only one
    sender's, stored before the payload `before_id`."""
    sql = "SELECT id FROM inbox WHERE status = 'received' AND received_at < ?"
    params: list[object] = [iso(before)]
    if channel is not None:
        sql += " AND channel = ? AND address = ? AND id < ?"
        params += [channel, address, before_id]
    rows = await fetch(conn, sql + " ORDER BY id LIMIT ?", (*params, limit))
    return [r[0] for r in rows]

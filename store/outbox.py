"""Rendered outbound messages as rows with a status; senders drain them per channel."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from bot.clock import iso
from store.db import fetch

PRIORITY_REPLY = 0
PRIORITY_BULK = 10


@dataclass(frozen=True)
class OutboundRow:
    """A message to send, as queued."""

    channel: str
    address: str
    person_id: int | None
    body: str
    payload: dict[str, Any]
    priority: int = PRIORITY_REPLY
    inbox_id: int | None = None  # the inbound message that caused it


@dataclass(frozen=True)
class StoredOutbound:
    """A queued or sent message with its id and status."""

    id: int
    channel: str
    address: str
    body: str
    payload: dict[str, Any]
    status: str
    created_at: str


async def enqueue(
    conn: aiosqlite.Connection, messages: Sequence[OutboundRow], now: datetime
) -> None:
    """Queue messages in the caller's transaction."""
    if not messages:
        return
    stamp = iso(now)
    await conn.executemany(
        "INSERT INTO outbox (channel, address, person_id, priority, body, payload, inbox_id,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(m.channel, m.address, m.person_id, m.priority, m.body,
          json.dumps(m.payload, ensure_ascii=False), m.inbox_id, stamp) for m in messages])


async def for_address(
    conn: aiosqlite.Connection, channel: str, address: str, after_id: int = 0, limit: int = 200
) -> list[StoredOutbound]:
    """Messages queued for one address after a given id (the simulators read these)."""
    rows = await fetch(conn,
        "SELECT id, channel, address, body, payload, status, created_at FROM outbox"
        " WHERE channel = ? AND address = ? AND id > ? ORDER BY id LIMIT ?",
        (channel, address, after_id, limit))
    return [StoredOutbound(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]


async def mark_sent(conn: aiosqlite.Connection, ids: Sequence[int], now: datetime) -> None:
    """Record that messages reached their recipient (the simulator showed them)."""
    await conn.executemany(
        "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1"
        " WHERE id = ? AND status = 'queued'", [(iso(now), i) for i in ids])

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


async def claim(
    conn: aiosqlite.Connection, channel: str, now: datetime, limit: int
) -> list[StoredOutbound]:
    """Take up to `limit` due messages of a channel for sending (status 'sending').

    Replies and assignments (low priority number) come before bulk notices; messages to
    contacts who opted out are marked failed instead of being taken; expired ones expire.
    """
    stamp = iso(now)
    await conn.execute(
        "UPDATE outbox SET status = 'expired' WHERE channel = ? AND status = 'queued'"
        " AND expires_at IS NOT NULL AND expires_at <= ?", (channel, stamp))
    await conn.execute(
        "UPDATE outbox SET status = 'failed', error = 'recipient opted out'"
        " WHERE channel = ? AND status = 'queued' AND EXISTS (SELECT 1 FROM contacts c"
        " WHERE c.channel = outbox.channel AND c.address = outbox.address AND c.opted_out = 1)",
        (channel,))
    rows = await fetch(
        conn, "UPDATE outbox SET status = 'sending', attempts = attempts + 1 WHERE id IN"
        " (SELECT id FROM outbox WHERE channel = ? AND status = 'queued'"
        " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
        " ORDER BY priority, id LIMIT ?)"
        " RETURNING id, channel, address, body, payload, status, created_at",
        (channel, stamp, limit))
    claimed = [StoredOutbound(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6])
               for r in rows]
    return sorted(claimed, key=lambda m: m.id)


async def record_sent(
    conn: aiosqlite.Connection, message_id: int, provider_id: str | None, now: datetime
) -> None:
    """The provider accepted the message."""
    await conn.execute(
        "UPDATE outbox SET status = 'sent', provider_id = ?, sent_at = ?, error = NULL"
        " WHERE id = ?", (provider_id, iso(now), message_id))


async def record_retry(
    conn: aiosqlite.Connection, message_id: int, error: str, next_attempt: datetime
) -> None:
    """A temporary failure: queue the message again for a later attempt."""
    await conn.execute(
        "UPDATE outbox SET status = 'queued', error = ?, next_attempt_at = ? WHERE id = ?",
        (error, iso(next_attempt), message_id))


async def record_failed(conn: aiosqlite.Connection, message_id: int, error: str) -> None:
    """A terminal failure, with the provider's error."""
    await conn.execute("UPDATE outbox SET status = 'failed', error = ? WHERE id = ?",
                       (error, message_id))


async def attempts_of(conn: aiosqlite.Connection, message_id: int) -> int:
    """How many times a message was taken for sending."""
    rows = await fetch(conn, "SELECT attempts FROM outbox WHERE id = ?", (message_id,))
    return int(rows[0][0]) if rows else 0


async def requeue_in_flight(conn: aiosqlite.Connection) -> int:
    """After a crash: messages taken but not confirmed go back to the queue.

    This is the one place a message can be sent twice: the provider may have accepted it
    just before the crash.
    """
    cursor = await conn.execute("UPDATE outbox SET status = 'queued' WHERE status = 'sending'")
    return cursor.rowcount


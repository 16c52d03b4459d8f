"""Rendered outbound messages as rows with a status; senders drain them per channel."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.domain.clock import iso, parse_iso
from store.db import Connection, fetch, is_postgres
from store.pg import PgConnection

PRIORITY_REPLY = 0
PRIORITY_BULK = 10
# The confirmation of an opt-out (SMS 退订): sent although the contact has just opted out.
PRIORITY_STOP_CONFIRMATION = -1


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
    next_attempt_at: datetime | None = None  # not before (quiet hours)
    expires_at: datetime | None = None  # dropped when not sent by then (meeting reminders)


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
    priority: int = PRIORITY_REPLY


async def enqueue(
    conn: Connection, messages: Sequence[OutboundRow], now: datetime
) -> None:
    """Queue messages in the caller's transaction."""
    if not messages:
        return
    stamp = iso(now)
    encoded: dict[int, str] = {}  # a bulk message's rows share one payload: encode it once

    def encode(payload: dict[str, Any]) -> str:
        text = encoded.get(id(payload))
        if text is None:
            text = encoded[id(payload)] = json.dumps(payload, ensure_ascii=False)
        return text

    await conn.executemany(
        "INSERT INTO outbox (channel, address, person_id, priority, body, payload, inbox_id,"
        " created_at, next_attempt_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(m.channel, m.address, m.person_id, m.priority, m.body, encode(m.payload),
          m.inbox_id, stamp,
          iso(m.next_attempt_at) if m.next_attempt_at else None,
          iso(m.expires_at) if m.expires_at else None) for m in messages])


async def for_address(
    conn: Connection, channel: str, address: str, after_id: int = 0, limit: int = 200
) -> list[StoredOutbound]:
    """Messages queued for one address after a given id (the simulators read these)."""
    rows = await fetch(conn,
        "SELECT id, channel, address, body, payload, status, created_at FROM outbox"
        " WHERE channel = ? AND address = ? AND id > ? ORDER BY id LIMIT ?",
        (channel, address, after_id, limit))
    return [StoredOutbound(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]


async def mark_sent(conn: Connection, ids: Sequence[int], now: datetime) -> None:
    """Record that messages reached their recipient (the simulator showed them)."""
    await conn.executemany(
        "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1"
        " WHERE id = ? AND status = 'queued'", [(iso(now), i) for i in ids])


async def claim(
    conn: Connection, channel: str, now: datetime, limit: int,
    skip: Collection[str] = (), per_address: int | None = None,
) -> list[StoredOutbound]:
    """Take up to `limit` due messages of a channel for sending (status 'sending').

    Replies and assignments (low priority number) come before bulk notices; messages to
    contacts who opted out are marked failed instead of being taken (except the one
    confirmation of the stop itself, `PRIORITY_STOP_CONFIRMATION`); expired ones expire.
    Addresses in `skip` (the sender still holds messages for them) are left for later,
    and at most `per_address` messages are taken for one address, so that one chat's
    burst does not fill the claim.
    """
    if isinstance(conn, PgConnection):
        return await _claim_pg(conn, channel, now, limit, skip, per_address)
    # Only the head of the queue is looked at: a long queue (a notice to 100,000 people)
    # costs the same per claim as a short one.
    skipped = json.dumps(sorted(skip)) if skip else None
    scan = limit if per_address is None else limit * 4
    for _ in range(10):  # a head that was all expired or stopped: look further
        taken = await _claim_head(conn, channel, iso(now), limit, scan, skipped, per_address)
        if taken is not None:
            return taken
    return []


def _sort_head(head: Sequence[Sequence[Any]], stamp: str, limit: int,
               per_address: int | None) -> tuple[list[int], list[int], list[int]]:
    """The head rows (id, expires_at, priority, opted_out, address) sorted into those that
    expired, those to an opted-out address (stop confirmations aside), and those to take:
    at most `limit`, and at most `per_address` for one address. Both backends' claims."""
    expired = [r[0] for r in head if r[1] is not None and r[1] <= stamp]
    stopped = [r[0] for r in head if (r[1] is None or r[1] > stamp) and r[3] and r[2] >= 0]
    passed = {*expired, *stopped}
    taken: list[int] = []
    per: dict[str, int] = {}
    for r in head:
        if r[0] in passed or len(taken) >= limit:
            continue
        if per_address is not None:
            if per.get(r[4], 0) >= per_address:
                continue
            per[r[4]] = per.get(r[4], 0) + 1
        taken.append(r[0])
    return expired, stopped, taken


async def _claim_head(conn: Connection, channel: str, stamp: str, limit: int,
                      scan: int, skip: str | None,
                      per_address: int | None) -> list[StoredOutbound] | None:
    """Claim from the first `scan` due rows; None if they were all expired or stopped."""
    head = await fetch(
        conn, "SELECT o.id, o.expires_at, o.priority, coalesce(c.opted_out, 0), o.address"
        " FROM outbox o"
        " LEFT JOIN contacts c ON c.channel = o.channel AND c.address = o.address"
        " WHERE o.channel = ? AND o.status = 'queued'"
        " AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= ?)"
        + (" AND o.address NOT IN (SELECT value FROM json_each(?))" if skip else "")
        + " ORDER BY o.priority, o.id LIMIT ?",
        (channel, stamp, *((skip,) if skip else ()), scan))
    expired, stopped, taken = _sort_head(head, stamp, limit, per_address)
    priorities = {int(r[0]): int(r[2]) for r in head}
    if expired:
        await conn.execute("UPDATE outbox SET status = 'expired' WHERE id IN"
                           " (SELECT value FROM json_each(?))", (json.dumps(expired),))
    if stopped:
        await conn.execute("UPDATE outbox SET status = 'failed', error = 'recipient opted out'"
                           " WHERE id IN (SELECT value FROM json_each(?))",
                           (json.dumps(stopped),))
    if not taken:
        return None if len(head) == scan else []
    rows = await fetch(
        conn, "UPDATE outbox SET status = 'sending', attempts = attempts + 1 WHERE id IN"
        " (SELECT value FROM json_each(?))"
        " RETURNING id, channel, address, body, payload, status, created_at, priority",
        (json.dumps(taken),))
    claimed = [StoredOutbound(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7])
               for r in rows]
    return sorted(claimed, key=lambda m: (priorities[m.id], m.id))


# PostgreSQL's claim, beside SQLite's: several processes claim from one outbox, so the head
# rows are locked FOR UPDATE SKIP LOCKED (two claims never take the same row, nor wait for
# each other), and a claimed row carries a lease (`lease_until`, migration 0014): a
# message a dead process held is queued again once its lease has passed
# (`requeue_in_flight`), never while a live process may still be sending it. An address
# with an earlier message in flight anywhere is left for later, so that a chat's messages
# keep their order even across a takeover.
DEFAULT_LEASE = timedelta(seconds=60)


async def _claim_pg(conn: PgConnection, channel: str, now: datetime, limit: int,
                    skip: Collection[str], per_address: int | None) -> list[StoredOutbound]:
    stamp = iso(now)
    lease = iso(now + conn.outbox_lease)
    scan = limit if per_address is None else limit * 4
    for _ in range(10):
        head = (await conn.execute_raw(
            "SELECT o.id, o.expires_at, o.priority, coalesce(c.opted_out, 0), o.address"
            " FROM outbox o"
            " LEFT JOIN contacts c ON c.channel = o.channel AND c.address = o.address"
            " WHERE o.channel = %s AND o.status = 'queued'"
            " AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= %s)"
            " AND NOT (o.address = ANY(%s))"
            " AND NOT EXISTS (SELECT 1 FROM outbox f WHERE f.status = 'sending'"
            " AND f.channel = o.channel AND f.address = o.address AND f.id < o.id)"
            " ORDER BY o.priority, o.id LIMIT %s FOR UPDATE OF o SKIP LOCKED",
            (channel, stamp, list(skip), scan))).rows
        expired, stopped, taken = _sort_head(head, stamp, limit, per_address)
        if expired:
            await conn.execute_raw("UPDATE outbox SET status = 'expired' WHERE id = ANY(%s)",
                                   (expired,))
        if stopped:
            await conn.execute_raw("UPDATE outbox SET status = 'failed',"
                                   " error = 'recipient opted out' WHERE id = ANY(%s)",
                                   (stopped,))
        if not taken:
            if len(head) == scan:
                continue
            return []
        rows = (await conn.execute_raw(
            "UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_until = %s"
            " WHERE id = ANY(%s)"
            " RETURNING id, channel, address, body, payload, status, created_at, priority",
            (lease, taken))).rows
        claimed = [StoredOutbound(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7])
                   for r in rows]
        return sorted(claimed, key=lambda m: (m.priority, m.id))
    return []


async def extend_leases(conn: Connection, ids: Collection[int], now: datetime) -> None:
    """Messages this process still holds (waiting for their turn, or being sent) keep
    their lease (PostgreSQL): only a dead process's run out. Nothing to do on SQLite."""
    if isinstance(conn, PgConnection) and ids:
        await conn.execute_raw(
            "UPDATE outbox SET lease_until = %s WHERE id = ANY(%s) AND status = 'sending'",
            (iso(now + conn.outbox_lease), list(ids)))


async def record_sent(
    conn: Connection, message_id: int, provider_id: str | None, now: datetime
) -> None:
    """The provider accepted the message."""
    await conn.execute(
        "UPDATE outbox SET status = 'sent', provider_id = ?, sent_at = ?, error = NULL"
        " WHERE id = ?", (provider_id, iso(now), message_id))


async def recent_sends(conn: Connection, channel: str,
                       since: datetime) -> list[tuple[str, datetime]]:
    """(address, sent_at) of the channel's messages the provider accepted since then, by
    any process, oldest first: what a sender that takes over must count against the
    limits. `sent_at` is stored to the second (`iso`)."""
    rows = await fetch(conn, "SELECT address, sent_at FROM outbox WHERE channel = ?"
                             " AND sent_at IS NOT NULL AND sent_at >= ? ORDER BY sent_at",
                       (channel, iso(since)))
    return [(str(r[0]), parse_iso(r[1])) for r in rows]


async def record_retry(
    conn: Connection, message_id: int, error: str, next_attempt: datetime
) -> None:
    """A temporary failure: queue the message again for a later attempt."""
    await conn.execute(
        "UPDATE outbox SET status = 'queued', error = ?, next_attempt_at = ? WHERE id = ?",
        (error, iso(next_attempt), message_id))


async def record_failed(conn: Connection, message_id: int, error: str) -> None:
    """A terminal failure, with the provider's error."""
    await conn.execute("UPDATE outbox SET status = 'failed', error = ? WHERE id = ?",
                       (error, message_id))


async def attempts_of(conn: Connection, message_id: int) -> int:
    """How many times a message was taken for sending."""
    rows = await fetch(conn, "SELECT attempts FROM outbox WHERE id = ?", (message_id,))
    return int(rows[0][0]) if rows else 0


async def requeue_in_flight(conn: Connection, now: datetime | None = None,
                            keep: Collection[int] = ()) -> int:
    """After a crash: messages taken but not confirmed go back to the queue.

    This is the one place a message can be sent twice: the provider may have accepted it
    just before the crash. On PostgreSQL, where other processes may be sending right now,
    only messages whose lease has passed go back (`now`: the time to compare with). The
    messages in `keep` — the caller's own process holds them — never do: a renewal of
    their lease that came late must not let their own process send them twice.
    """
    kept = json.dumps(sorted(keep))
    if is_postgres(conn):
        stamp = iso(now) if now is not None else "9999"
        cursor = await conn.execute(
            "UPDATE outbox SET status = 'queued' WHERE status = 'sending'"
            " AND (lease_until IS NULL OR lease_until <= ?)"
            " AND id NOT IN (SELECT CAST(value AS INTEGER) FROM json_each(?))",
            (stamp, kept))
        return cursor.rowcount
    cursor = await conn.execute(
        "UPDATE outbox SET status = 'queued' WHERE status = 'sending'"
        " AND id NOT IN (SELECT CAST(value AS INTEGER) FROM json_each(?))", (kept,))
    return cursor.rowcount



# --- delivery reports (SMS status callbacks) ---------------------------------------------

@dataclass(frozen=True)
class DeliveryReport:
    """What the provider said about a message it accepted, as stored."""

    id: int
    address: str
    status: str
    delivery_status: str | None
    error_code: str | None
    error: str | None


async def record_delivery(
    conn: Connection, channel: str, status: str, rank: int, *,
    message_id: int | None = None, provider_id: str | None = None,
    error_code: str | None = None, error: str | None = None,
) -> bool:
    """Move a message's delivery status forward: only to a higher `rank`, whatever order
    the reports arrive in. A final report also settles the message's own status
    (delivered, or failed with the error). Returns False when nothing changed.

    The message is found by its id (from the callback URL) or else by the provider's id.
    """
    key: int | str
    if message_id is not None:
        where, key = "id = ?", message_id
    elif provider_id is not None:
        where, key = "provider_id = ?", provider_id
    else:
        return False
    settled = {"delivered": "delivered", "undelivered": "failed", "failed": "failed"}
    cursor = await conn.execute(
        "UPDATE outbox SET delivery_status = ?, delivery_rank = ?,"
        " error_code = coalesce(?, error_code), error = coalesce(?, error),"
        " status = CASE WHEN status = 'sent' AND ? IS NOT NULL THEN ? ELSE status END"
        f" WHERE channel = ? AND {where} AND delivery_rank < ?",
        (status, rank, error_code, error, settled.get(status), settled.get(status), channel,
         key, rank))
    return cursor.rowcount == 1


async def delivery_of(conn: Connection, message_id: int) -> DeliveryReport | None:
    """A message's status, delivery status and error, as the reports left them."""
    rows = await fetch(conn,
        "SELECT id, address, status, delivery_status, error_code, error FROM outbox"
        " WHERE id = ?", (message_id,))
    return DeliveryReport(*rows[0]) if rows else None

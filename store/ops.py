"""What operations watch, read from the database (/metrics): queues and counts that every
process sees alike, whichever process did the work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.domain.clock import parse_iso
from store.db import Connection, fetch


@dataclass(frozen=True)
class QueueDepth:
    """Queued outbound messages of one channel and priority, and the oldest one's age."""

    channel: str
    priority: int
    depth: int
    oldest_age_seconds: float


async def outbox_depths(conn: Connection, now: datetime) -> list[QueueDepth]:
    """The outbox's queue per channel and priority."""
    rows = await fetch(conn, "SELECT channel, priority, count(*), min(created_at) FROM outbox"
                             " WHERE status = 'queued' GROUP BY channel, priority"
                             " ORDER BY channel, priority")
    return [QueueDepth(r[0], int(r[1]), int(r[2]),
                       max(0.0, (now - parse_iso(r[3])).total_seconds()) if r[3] else 0.0)
            for r in rows]


async def inbox_counts(conn: Connection) -> list[tuple[str, str, int]]:
    """Stored inbound payloads per channel and status (processed, failed, refused…)."""
    rows = await fetch(conn, "SELECT channel, status, count(*) FROM inbox"
                             " GROUP BY channel, status ORDER BY channel, status")
    return [(r[0], r[1], int(r[2])) for r in rows]


async def outbox_counts(conn: Connection) -> list[tuple[str, str, int]]:
    """Outbound messages per channel and status (sent, failed, expired…)."""
    rows = await fetch(conn, "SELECT channel, status, count(*) FROM outbox"
                             " GROUP BY channel, status ORDER BY channel, status")
    return [(r[0], r[1], int(r[2])) for r in rows]

"""Notices to an audience, who received them, and who acknowledged ("收到").

An audience (`People`) is SQL, resolved to one `Recipient` per person: the channel
address they last wrote from that has not opted out (as for every other message to a
person).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.clock import iso, parse_iso
from store.bulk import STAGED
from store.db import Connection, Row, fetch, is_postgres, new_id

# Roles that make a person staff rather than a resident for notices.
STAFF_ROLES = ("grid_chief", "community_staff", "community_director", "dispatcher",
               "department", "supervisor", "admin", "info_officer")
_STAFF_SQL = ", ".join(f"'{r}'" for r in STAFF_ROLES)


@dataclass(frozen=True)
class Recipient:
    """One person of an audience and where a message reaches them."""

    person_id: int
    area: str | None  # the grid (or the area of a staff role) counts are grouped by
    channel: str
    address: str
    locale: str | None


@dataclass(frozen=True)
class NoticeRow:
    """A notice as stored."""

    id: int
    kind: str
    reminds: int | None
    sender_id: int | None
    issuer: str | None
    scope: str
    audience: str
    body: str
    photo_id: int | None
    send_at: datetime
    status: str
    recipients: int
    created_at: datetime
    body_en: str | None = None

    def text(self, locale: str) -> str:
        """What the notice says in a language (English falls back to the Chinese text)."""
        return self.body_en or self.body if locale.startswith("en") else self.body


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values)) or "NULL"


@dataclass(frozen=True)
class People:
    """Who a message goes to, as SQL: a SELECT of (person_id, area) rows and its parameters.

    Kept as SQL so that a notice to a whole street is queued inside SQLite (see
    `store.bulk`) instead of passing 100,000 rows through Python.
    """

    sql: str
    params: tuple[Any, ...] = ()

    def reached(self, postgres: bool = False) -> tuple[str, tuple[Any, ...]]:
        """A SELECT of (person_id, area, channel, address, locale, pick): one row a person,
        at the contact they last wrote from that has not opted out (as for every other
        message to a person)."""
        if postgres:
            # PostgreSQL has no bare columns beside max(): DISTINCT ON takes the first row
            # of each person in the same order (the contact they last wrote from).
            return (f"""
        WITH wanted (person_id, area) AS ({self.sql})
        SELECT DISTINCT ON (w.person_id) w.person_id, w.area, c.channel, c.address,
               p.locale, ''
        FROM wanted w JOIN people p ON p.id = w.person_id
        JOIN contacts c ON c.person_id = w.person_id AND c.opted_out = 0
        LEFT JOIN conversations v ON v.contact_id = c.id
        ORDER BY w.person_id, coalesce(v.updated_at, '') DESC,
                 coalesce(c.last_seen_at, '') DESC, c.id DESC""", self.params)
        # SQLite takes the bare columns of a max() from the row that has the max, here the
        # contact they last wrote from (as store.people.contacts_of orders).
        return (f"""
        WITH wanted (person_id, area) AS ({self.sql})
        SELECT w.person_id, w.area, c.channel, c.address, p.locale,
               max(coalesce(v.updated_at, '') || '|' || coalesce(c.last_seen_at, '') || '|'
                   || printf('%012d', c.id))
        FROM wanted w JOIN people p ON p.id = w.person_id
        JOIN contacts c ON c.person_id = w.person_id AND c.opted_out = 0
        LEFT JOIN conversations v ON v.contact_id = c.id
        GROUP BY w.person_id ORDER BY w.person_id""", self.params)


# An audience of no one.
NOBODY = People("SELECT CAST(NULL AS INTEGER), CAST(NULL AS TEXT) WHERE 1 = 0")


async def reach(conn: Connection, people: People) -> list[Recipient]:
    """Where a message reaches each of these people."""
    rows = await fetch(conn, *people.reached(is_postgres(conn)))
    return [Recipient(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


def residents(grids: Sequence[str], buildings: Sequence[tuple[str, int]] = ()) -> People:
    """People at home in these grids or in these buildings ((grid, building id) pairs),
    not staff, not muted."""
    where: list[str] = []
    params: list[Any] = []
    if grids:
        where.append(f"p.grid_code IN ({_marks(grids)})")
        params += grids
    by_grid: dict[str, list[int]] = {}
    for grid, building_id in buildings:
        by_grid.setdefault(grid, []).append(building_id)
    for grid, ids in by_grid.items():  # the grid first: people are indexed by grid
        where.append(f"(p.grid_code = ? AND p.building_id IN ({_marks(ids)}))")
        params += [grid, *ids]
    if not where:
        return NOBODY
    sql = (f"SELECT p.id, p.grid_code FROM people p WHERE ({' OR '.join(where)})"
           f" AND p.muted = 0 AND NOT EXISTS (SELECT 1 FROM roles r WHERE r.person_id = p.id"
           f" AND r.revoked_at IS NULL AND r.role IN ({_STAFF_SQL}))")
    return People(sql, tuple(params))


def chiefs(grids: Sequence[str]) -> People:
    """The grid chiefs of these grids."""
    return People("SELECT person_id, min(scope) FROM roles WHERE role = 'grid_chief' AND"
                  f" revoked_at IS NULL AND scope IN ({_marks(grids)}) GROUP BY person_id",
                  tuple(grids))


def staff(areas: Sequence[str]) -> People:
    """Everyone with a staff role in one of these areas (grid chiefs included)."""
    return People(f"SELECT person_id, min(scope) FROM roles WHERE role IN ({_STAFF_SQL})"
                  f" AND revoked_at IS NULL AND scope IN ({_marks(areas)}) GROUP BY person_id",
                  tuple(areas))


async def reach_people(conn: Connection, person_ids: Sequence[int],
                       area: str | None = None) -> list[Recipient]:
    """Where a message reaches each of these people."""
    if not person_ids:
        return []
    return await reach(conn, People(
        "SELECT CAST(value AS INTEGER), CAST(? AS TEXT) FROM json_each(?)",
        (area, "[" + ",".join(str(int(p)) for p in person_ids) + "]")))


async def create(
    conn: Connection, *, sender_id: int | None, issuer: str | None, scope: str,
    audience: str, body: str, photo_id: int | None, send_at: datetime, now: datetime,
    kind: str = "notice", reminds: int | None = None, body_en: str | None = None,
) -> int:
    """Store a notice (or a reminder of one) to be sent at `send_at`; return its id."""
    return await new_id(conn,
        "INSERT INTO notices (kind, reminds, sender_id, issuer, scope, audience, body,"
        " photo_id, send_at, created_at, body_en) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (kind, reminds, sender_id, issuer, scope, audience, body, photo_id, iso(send_at),
         iso(now), body_en))


_NOTICE = ("SELECT id, kind, reminds, sender_id, issuer, scope, audience, body, photo_id,"
           " send_at, status, recipients, created_at, body_en FROM notices")


def _notice(row: Row) -> NoticeRow:
    return NoticeRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
                     parse_iso(row[9]), row[10], row[11], parse_iso(row[12]), row[13])


async def get(conn: Connection, notice_id: int) -> NoticeRow | None:
    """A notice by id."""
    rows = await fetch(conn, _NOTICE + " WHERE id = ?", (notice_id,))
    return _notice(rows[0]) if rows else None


async def due(conn: Connection, now: datetime, limit: int = 20) -> list[NoticeRow]:
    """Scheduled notices whose time has come, oldest first."""
    rows = await fetch(conn, _NOTICE + " WHERE status = 'scheduled' AND send_at <= ?"
                       " ORDER BY send_at, id LIMIT ?", (iso(now), limit))
    return [_notice(r) for r in rows]


async def by_sender(conn: Connection, sender_id: int | None,
                    limit: int = 8) -> list[NoticeRow]:
    """A sender's latest notices (None: those sent from the command line or the system)."""
    rows = await fetch(conn, _NOTICE + " WHERE sender_id IS ? AND kind = 'notice'"
                       " ORDER BY id DESC LIMIT ?",
                       (sender_id, limit))
    return [_notice(r) for r in rows]


async def latest(conn: Connection, limit: int = 50) -> list[NoticeRow]:
    """The latest notices (not reminders), newest first."""
    rows = await fetch(conn, _NOTICE + " WHERE kind = 'notice' ORDER BY id DESC LIMIT ?",
                       (limit,))
    return [_notice(r) for r in rows]


async def delivery(conn: Connection, notice_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Per notice, its outbox rows (and its reminders') by status: queued, sent, failed.

    'sending' counts as queued, 'delivered' as sent, 'expired' as failed."""
    found: dict[int, dict[str, int]] = {i: {"queued": 0, "sent": 0, "failed": 0}
                                        for i in notice_ids}
    if not notice_ids:
        return found
    rows = await fetch(conn, "SELECT notice_id, status, count(*) FROM outbox WHERE notice_id"
                       f" IN ({_marks(notice_ids)}) GROUP BY notice_id, status",
                       tuple(notice_ids))
    shown = {"queued": "queued", "sending": "queued", "sent": "sent", "delivered": "sent",
             "failed": "failed", "expired": "failed"}
    for notice_id, status, count in rows:
        found[int(notice_id)][shown.get(status, "queued")] += int(count)
    return found


async def mark_sent(conn: Connection, notice_id: int, count: int,
                    now: datetime) -> bool:
    """Record that a scheduled notice went out; False if it was sent already."""
    cursor = await conn.execute(
        "UPDATE notices SET status = 'sent', recipients = ?, sent_at = ?"
        " WHERE id = ? AND status = 'scheduled'", (count, iso(now), notice_id))
    return cursor.rowcount == 1


async def cancel(conn: Connection, notice_id: int) -> bool:
    """Cancel a notice not sent yet."""
    cursor = await conn.execute("UPDATE notices SET status = 'cancelled'"
                                " WHERE id = ? AND status = 'scheduled'", (notice_id,))
    return cursor.rowcount == 1


async def add_staged_recipients(conn: Connection, notice_id: int) -> None:
    """Remember who a notice went to (for acknowledgements and reminders): everyone staged
    for it (`store.bulk.staged`), once: a notice is sent once (`mark_sent`), and a plain
    INSERT is cheaper than one that looks for a conflict row by row (PostgreSQL)."""
    await conn.execute(
        "INSERT INTO notice_recipients (notice_id, person_id, grid_code)"
        f" SELECT ?, person_id, area FROM {STAGED}", (notice_id,))


async def acknowledge(conn: Connection, notice_id: int, person_id: int,
                      now: datetime) -> str:
    """Record a "received": 'new', 'again' (acknowledged before) or 'unknown' (not sent
    to this person)."""
    cursor = await conn.execute(
        "UPDATE notice_recipients SET acked_at = ? WHERE notice_id = ? AND person_id = ?"
        " AND acked_at IS NULL", (iso(now), notice_id, person_id))
    if cursor.rowcount == 1:
        return "new"
    rows = await fetch(conn, "SELECT 1 FROM notice_recipients WHERE notice_id = ?"
                       " AND person_id = ?", (notice_id, person_id))
    return "again" if rows else "unknown"


async def latest_unacknowledged(conn: Connection, person_id: int,
                                since: datetime) -> tuple[int, datetime] | None:
    """The newest notice sent to a person since a time and not acknowledged, with when."""
    rows = await fetch(conn, "SELECT r.notice_id, n.sent_at FROM notice_recipients r"
                       " JOIN notices n ON n.id = r.notice_id WHERE r.person_id = ?"
                       " AND r.acked_at IS NULL AND n.sent_at >= ?"
                       " ORDER BY r.notice_id DESC LIMIT 1", (person_id, iso(since)))
    return (int(rows[0][0]), parse_iso(rows[0][1])) if rows else None


async def ack_counts(conn: Connection,
                     notice_id: int) -> list[tuple[str | None, int, int]]:
    """Per grid (or area): (area, recipients, acknowledged), by area code."""
    rows = await fetch(conn, "SELECT grid_code, count(*), count(acked_at) FROM"
                       " notice_recipients WHERE notice_id = ? GROUP BY grid_code"
                       " ORDER BY grid_code", (notice_id,))
    return [(r[0], int(r[1]), int(r[2])) for r in rows]


def unacknowledged(notice_id: int) -> People:
    """The recipients of a notice who have not acknowledged it yet."""
    return People("SELECT person_id, grid_code FROM notice_recipients WHERE notice_id = ?"
                  " AND acked_at IS NULL", (notice_id,))


async def mark_reminded(conn: Connection, notice_id: int, now: datetime) -> None:
    """Record that those who had not acknowledged were reminded."""
    await conn.execute("UPDATE notice_recipients SET reminded_at = ? WHERE notice_id = ?"
                       " AND acked_at IS NULL", (iso(now), notice_id))


# --- residents' choices ------------------------------------------------------------------

async def set_home(conn: Connection, person_id: int, grid_code: str,
                   building_id: int | None, now: datetime) -> None:
    """Register the grid (and building) a person lives in: their grid's notices reach them."""
    await conn.execute("UPDATE people SET grid_code = ?, building_id = ?, home_at = ?"
                       " WHERE id = ?", (grid_code, building_id, iso(now), person_id))


async def home_of(conn: Connection, person_id: int) -> tuple[str | None, int | None]:
    """(grid code, building id) a person registered or reported from."""
    rows = await fetch(conn, "SELECT grid_code, building_id FROM people WHERE id = ?",
                       (person_id,))
    return (rows[0][0], rows[0][1]) if rows else (None, None)


async def set_muted(conn: Connection, person_id: int, muted: bool) -> None:
    """Stop (or resume) notices and meeting invitations; case updates are never muted."""
    await conn.execute("UPDATE people SET muted = ? WHERE id = ?",
                       (1 if muted else 0, person_id))


async def is_muted(conn: Connection, person_id: int) -> bool:
    """Whether a person muted notices."""
    rows = await fetch(conn, "SELECT muted FROM people WHERE id = ?", (person_id,))
    return bool(rows and rows[0][0])


async def any_due(conn: Connection, now: datetime) -> bool:
    """Whether a scheduled notice is due, or a meeting's invitations wait (a cheap read)."""
    rows = await fetch(conn, "SELECT EXISTS (SELECT 1 FROM notices WHERE status = 'scheduled'"
                       " AND send_at <= ?) OR EXISTS (SELECT 1 FROM meetings"
                       " WHERE status = 'pending')", (iso(now),))
    return bool(rows[0][0])

"""Meetings: who is invited, who answered yes or no, which reminders went out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.domain.clock import iso, parse_iso
from store.bulk import STAGED
from store.db import Connection, Row, fetch
from store.notices import People


@dataclass(frozen=True)
class MeetingRow:
    """A meeting as stored."""

    id: int
    organizer_id: int | None
    title: str
    place: str
    starts_at: datetime
    scope: str
    audience: str
    status: str
    invited: int
    day_reminder_at: datetime | None
    hour_reminder_at: datetime | None


_SELECT = ("SELECT id, organizer_id, title, place, starts_at, scope, audience, status, invited,"
           " day_reminder_at, hour_reminder_at FROM meetings")


def _meeting(r: Row) -> MeetingRow:
    return MeetingRow(r[0], r[1], r[2], r[3], parse_iso(r[4]), r[5], r[6], r[7], r[8],
                      parse_iso(r[9]) if r[9] else None, parse_iso(r[10]) if r[10] else None)


async def create(
    conn: Connection, *, organizer_id: int | None, title: str, place: str,
    starts_at: datetime, scope: str, audience: str, now: datetime,
) -> int:
    """Store a meeting; return its id."""
    cursor = await conn.execute(
        "INSERT INTO meetings (organizer_id, title, place, starts_at, scope, audience,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (organizer_id, title, place, iso(starts_at), scope, audience, iso(now)))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


async def get(conn: Connection, meeting_id: int) -> MeetingRow | None:
    """A meeting by id."""
    rows = await fetch(conn, _SELECT + " WHERE id = ?", (meeting_id,))
    return _meeting(rows[0]) if rows else None


async def by_organizer(conn: Connection, organizer_id: int | None,
                       limit: int = 8) -> list[MeetingRow]:
    """An organizer's latest meetings."""
    rows = await fetch(conn, _SELECT + " WHERE organizer_id IS ? ORDER BY id DESC LIMIT ?",
                       (organizer_id, limit))
    return [_meeting(r) for r in rows]


async def latest(conn: Connection, limit: int = 50) -> list[MeetingRow]:
    """The latest meetings called, newest first."""
    rows = await fetch(conn, _SELECT + " ORDER BY id DESC LIMIT ?", (limit,))
    return [_meeting(r) for r in rows]


async def pending(conn: Connection, limit: int = 20) -> list[MeetingRow]:
    """Meetings whose invitations have not gone out yet."""
    rows = await fetch(conn, _SELECT + " WHERE status = 'pending' ORDER BY id LIMIT ?", (limit,))
    return [_meeting(r) for r in rows]


async def invite_staged(conn: Connection, meeting_id: int, now: datetime) -> None:
    """Record the invitations (everyone staged by `store.bulk.staged`), how many went out,
    and that the meeting is on."""
    await conn.execute(
        "INSERT OR IGNORE INTO meeting_invitees (meeting_id, person_id, grid_code, invited_at)"
        f" SELECT ?, person_id, area, ? FROM {STAGED}", (meeting_id, iso(now)))
    await conn.execute("UPDATE meetings SET status = 'active', invited = (SELECT count(*)"
                       " FROM meeting_invitees WHERE meeting_id = ?) WHERE id = ?"
                       " AND status = 'pending'", (meeting_id, meeting_id))


async def answer(conn: Connection, meeting_id: int, person_id: int, attend: bool,
                 now: datetime) -> bool:
    """Record an invitee's answer (the last one counts); False if not invited."""
    cursor = await conn.execute(
        "UPDATE meeting_invitees SET answer = ?, answered_at = ? WHERE meeting_id = ?"
        " AND person_id = ?", ("yes" if attend else "no", iso(now), meeting_id, person_id))
    return cursor.rowcount == 1


async def latest_unanswered(conn: Connection, person_id: int,
                            now: datetime) -> tuple[int, datetime] | None:
    """The newest invitation to a meeting still to come that a person has not answered."""
    rows = await fetch(conn, "SELECT i.meeting_id, i.invited_at FROM meeting_invitees i"
                       " JOIN meetings m ON m.id = i.meeting_id WHERE i.person_id = ?"
                       " AND i.answer IS NULL AND m.status = 'active' AND m.starts_at > ?"
                       " ORDER BY i.meeting_id DESC LIMIT 1", (person_id, iso(now)))
    return (int(rows[0][0]), parse_iso(rows[0][1])) if rows else None


async def answers(conn: Connection,
                  meeting_id: int) -> list[tuple[int, str | None, str | None, str | None]]:
    """Each invitee: (person id, name, grid, answer or None), yes first, then no, then none."""
    rows = await fetch(conn, "SELECT i.person_id, p.name, i.grid_code, i.answer FROM"
                       " meeting_invitees i JOIN people p ON p.id = i.person_id"
                       " WHERE i.meeting_id = ? ORDER BY CASE i.answer WHEN 'yes' THEN 0"
                       " WHEN 'no' THEN 1 ELSE 2 END, i.grid_code, i.person_id", (meeting_id,))
    return [(int(r[0]), r[1], r[2], r[3]) for r in rows]


def attendees_to_remind(meeting_id: int) -> People:
    """Invitees who have not said no (they get the reminders)."""
    return People("SELECT person_id, grid_code FROM meeting_invitees WHERE meeting_id = ?"
                  " AND (answer IS NULL OR answer = 'yes')", (meeting_id,))


async def needing_reminders(conn: Connection, now: datetime, day: datetime,
                            hour: datetime) -> list[MeetingRow]:
    """Active meetings still to come whose day-before (starts by `day`) or hour-before
    (starts by `hour`) reminder is due and not sent."""
    rows = await fetch(conn, _SELECT + " WHERE status = 'active' AND starts_at > ? AND"
                       " ((starts_at <= ? AND day_reminder_at IS NULL) OR"
                       " (starts_at <= ? AND hour_reminder_at IS NULL)) ORDER BY starts_at",
                       (iso(now), iso(day), iso(hour)))
    return [_meeting(r) for r in rows]


async def mark_reminded(conn: Connection, meeting_id: int, now: datetime, *,
                        day: bool, hour: bool) -> None:
    """Record which reminders went out (a missed day reminder is not sent late)."""
    if day:
        await conn.execute("UPDATE meetings SET day_reminder_at = ? WHERE id = ?"
                           " AND day_reminder_at IS NULL", (iso(now), meeting_id))
    if hour:
        await conn.execute("UPDATE meetings SET hour_reminder_at = ? WHERE id = ?"
                           " AND hour_reminder_at IS NULL", (iso(now), meeting_id))

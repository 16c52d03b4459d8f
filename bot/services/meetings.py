"""Meetings: invitations with attend yes / no, reminders a day and an hour before.

A meeting is stored pending; the scheduler sends the invitations (woken right after the
organizer confirms) and later the reminders, each reminder expiring when the meeting
starts, so one still queued then is dropped rather than sent late. Invitees who said no
get no reminders. A reminder missed while the server was down is not sent late: when both
are due at once, only the hour-before one goes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.services.broadcast import PRIORITY_DIGEST, Option, queue_staged, render_bulk
from bot.services.districts import District
from bot.services.notices import (
    ORGANIZER_ROLES,
    Outreach,
    Scope,
    audience,
    heading_area,
    may_address,
    resolve_scope,
)
from store import bulk as bulk_store
from store import meetings as meeting_store
from store import notices as notice_store
from store import outbox as outbox_store
from store.db import Connection
from store.meetings import MeetingRow
from store.notices import NOBODY
from store.outbox import OutboundRow

__all__ = ["ORGANIZER_ROLES", "call", "invite_pending", "remind_due", "summary"]

DAY_BEFORE = timedelta(days=1)
HOUR_BEFORE = timedelta(hours=1)
MAX_TITLE = 60
MAX_PLACE = 60


async def call(conn: Connection, outreach: Outreach, *, organizer_id: int | None,
               title: str, place: str, starts_at: datetime, scope: Scope, audience: str,
               now: datetime) -> tuple[MeetingRow, int]:
    """Call a meeting and queue its invitations now (the console and `gridbot meeting`);
    return it and how many were invited."""
    meeting_id = await meeting_store.create(
        conn, organizer_id=organizer_id, title=title.strip()[:MAX_TITLE],
        place=place.strip()[:MAX_PLACE], starts_at=starts_at, scope=scope.code,
        audience=audience, now=now)
    meeting = await meeting_store.get(conn, meeting_id)
    assert meeting is not None
    count = await invite(conn, outreach, meeting, now)
    return meeting, count


def visible_to(district: District, roles: Sequence[tuple[str, str | None]],
               meeting: MeetingRow) -> bool:
    """Whether a person may see a meeting: its scope is in an area they may call one in."""
    scope = resolve_scope(district, meeting.scope)
    return scope is not None and may_address(district, roles, scope,
                                             ORGANIZER_ROLES) is not None


async def visible_meetings(conn: Connection, district: District,
                           roles: Sequence[tuple[str, str | None]],
                           limit: int = 30) -> list[MeetingRow]:
    """The latest meetings a person may see, newest first."""
    return [m for m in await meeting_store.latest(conn, 200)
            if visible_to(district, roles, m)][:limit]


@dataclass(frozen=True)
class Reminder:
    """One of a meeting's reminders: which, when it is due, and whether it went."""

    which: str  # "day" (a day before) or "hour" (an hour before)
    due_at: datetime
    queued_at: datetime | None
    # "planned"; "queued" (went to the outbox, or was due already when the invitations
    # went, which stood for it); "skipped" (missed while down: only the later one went)
    state: str


def reminders(meeting: MeetingRow) -> list[Reminder]:
    """The meeting's two reminders and their state."""
    found = []
    for which, before, queued_at in (("day", DAY_BEFORE, meeting.day_reminder_at),
                                     ("hour", HOUR_BEFORE, meeting.hour_reminder_at)):
        due = meeting.starts_at - before
        if queued_at is None:
            state = "planned"
        elif which == "day" and meeting.hour_reminder_at is not None \
                and meeting.hour_reminder_at <= queued_at:
            state = "skipped"  # both came due at once: only the hour-before one went
        else:
            state = "queued"
        found.append(Reminder(which, due, queued_at, state))
    return found


def rsvp_options(meeting_id: int) -> list[Option]:
    """The attend yes / no options of an invitation."""
    return [Option(f"rsvp:{meeting_id}:yes", "bulk.attend_yes"),
            Option(f"rsvp:{meeting_id}:no", "bulk.attend_no")]


def meeting_context(outreach: Outreach, meeting: MeetingRow, locale: str) -> dict[str, Any]:
    """What the meeting templates show."""
    return {"title": meeting.title, "place": meeting.place, "starts_at": meeting.starts_at,
            "area": heading_area(outreach.reference.district, meeting.scope, locale)}


async def invite(conn: Connection, outreach: Outreach, meeting: MeetingRow,
                 now: datetime) -> int:
    """Send the invitations of a pending meeting; return how many."""
    scope = resolve_scope(outreach.reference.district, meeting.scope)
    # An area gone from the district since the meeting was called: no one to invite.
    people = audience(scope, meeting.audience) if scope else NOBODY
    # Reminders already due now would only repeat the invitation.
    await meeting_store.mark_reminded(conn, meeting.id, now,
                                      day=meeting.starts_at - DAY_BEFORE <= now,
                                      hour=meeting.starts_at - HOUR_BEFORE <= now)
    async with bulk_store.staged(conn, people) as groups:
        await meeting_store.invite_staged(conn, meeting.id, now)
        await queue_staged(conn, outreach.renderer, outreach.reference.default_locale, groups,
                           "meeting_invitation",
                           lambda locale: meeting_context(outreach, meeting, locale),
                           outreach.bulk(now, expires_at=meeting.starts_at),
                           rsvp_options(meeting.id))
    return sum(groups.values())


async def invite_pending(conn: Connection, outreach: Outreach, now: datetime) -> int:
    """Send the invitations of every pending meeting; return how many messages."""
    return sum([await invite(conn, outreach, meeting, now)
                for meeting in await meeting_store.pending(conn)])


async def remind_due(conn: Connection, outreach: Outreach, now: datetime) -> int:
    """Queue the reminders that are due (a day, an hour before); return how many messages."""
    sent = 0
    for meeting in await meeting_store.needing_reminders(conn, now, now + DAY_BEFORE,
                                                         now + HOUR_BEFORE):
        hour = meeting.starts_at - HOUR_BEFORE <= now
        await meeting_store.mark_reminded(conn, meeting.id, now, day=True, hour=hour)
        if not hour and meeting.day_reminder_at is not None:
            continue
        async with bulk_store.staged(
                conn, meeting_store.attendees_to_remind(meeting.id)) as groups:
            sent += await queue_staged(
                conn, outreach.renderer, outreach.reference.default_locale, groups,
                "meeting_reminder", _reminder_context(outreach, meeting, hour),
                outreach.bulk(now, expires_at=meeting.starts_at), rsvp_options(meeting.id))
        if hour and meeting.organizer_id is not None:
            rows = await _answers_to_organizer(conn, outreach, meeting, now)
            await outbox_store.enqueue(conn, rows, now)
            sent += len(rows)
    return sent


def _reminder_context(outreach: Outreach, meeting: MeetingRow,
                      soon: bool) -> Callable[[str], dict[str, Any]]:
    def context(locale: str) -> dict[str, Any]:
        return {**meeting_context(outreach, meeting, locale), "soon": soon}
    return context


async def _answers_to_organizer(conn: Connection, outreach: Outreach,
                                meeting: MeetingRow, now: datetime) -> list[OutboundRow]:
    """The list of answers, for the organizer, an hour before the meeting."""
    assert meeting.organizer_id is not None
    answers = await summary(conn, meeting.id)
    organizer = await notice_store.reach_people(conn, [meeting.organizer_id])
    bulk = outreach.bulk(now, expires_at=meeting.starts_at)
    bulk.priority = PRIORITY_DIGEST
    return render_bulk(outreach.renderer, outreach.reference.default_locale, organizer,
                       "meeting_answers",
                       lambda locale: {**meeting_context(outreach, meeting, locale), **answers},
                       bulk)


async def summary(conn: Connection, meeting_id: int) -> dict[str, Any]:
    """The answers for the organizer: counts and names, yes, no, not answered."""
    answers = await meeting_store.answers(conn, meeting_id)
    groups: dict[str, list[str]] = {"yes": [], "no": [], "none": []}
    for person_id, name, _grid, answer in answers:
        groups[answer or "none"].append(name or f"#{person_id}")
    return {"yes": groups["yes"], "no": groups["no"], "unanswered": groups["none"],
            "invited": len(answers)}

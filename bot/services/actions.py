"""Staff actions on a case, for every front end: the bot's buttons (handlers/staff.py) and
the console's forms call the same functions, with the same role, scope, state and
version checks.

`build_event` turns what the person gave (a reason, a note, a target, days, a case to
merge into) into the workflow event; `apply` applies it as the person's role, recorded in
the audit trail under their name; `act` does both after checking who may act, for a
front end that has the whole request at once (the console).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.domain import workflow
from bot.domain.categories import TimeLimit
from bot.domain.departments import for_category
from bot.domain.messages import Photo
from bot.domain.workflow import Actor, Case, Event, EventKind, Level
from bot.services import casework
from bot.services.notify import PersonalMessage, render_personal
from bot.services.reference import ReferenceData
from bot.services.render import Renderer
from store import cases as case_store
from store import media as media_store
from store import outbox as outbox_store
from store import people as people_store
from store.cases import CaseConflict, StoredCase
from store.db import Connection

MAX_NOTE = 500
MAX_DAYS = 30  # an extension asked for, in working days
# What an action needs from the person before it can be applied.
NEEDS_REASON = frozenset({EventKind.CHECK_FAIL, EventKind.RETURN, EventKind.DENY_APPROVAL,
                          EventKind.DENY_EXTENSION, EventKind.SUSPEND, EventKind.FORCE_CLOSE,
                          EventKind.ESCALATE, EventKind.REQUEST_APPROVAL})
NEEDS_INPUT = {
    **{kind: "reason" for kind in NEEDS_REASON},
    EventKind.REPORT_DONE: "note",
    EventKind.DISPATCH: "target",
    EventKind.MERGE: "merge",
    EventKind.REQUEST_EXTENSION: "days",
}


@dataclass(frozen=True)
class Given:
    """What the person gave with an action (all optional; `build_event` says what fits)."""

    note: str = ""
    target: str | None = None  # "grid", "community" or "dept:CODE"
    merge_into: str | None = None
    days: int | None = None
    photos: tuple[int, ...] = ()


class ActionRefused(Exception):
    """The action was not applied; `code` says why.

    not_staff, not_found (no such case, or outside the person's scope: the same),
    conflict (the case changed since the person saw it; `state` is its state now),
    not_allowed (not for this person now; `state`), incomplete (what it needs is
    missing or does not fit), refused (the workflow said no; `message`).
    """

    def __init__(self, code: str, message: str = "", state: str | None = None) -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message
        self.state = state


@dataclass(frozen=True)
class Acted:
    """An applied action: the case after it and who is told."""

    case: Case
    event: Event
    notices: list[PersonalMessage]


@dataclass(frozen=True)
class Target:
    """Where a case can be dispatched: its value for `Given.target` and its name."""

    value: str
    name: str


def targets(reference: ReferenceData, case: Case, locale: str) -> list[Target]:
    """Where a case can be dispatched: down to its grid or community, or to a department
    (those that take its category first)."""
    district = reference.district
    found = []
    if case.level in (Level.STREET, Level.COMMUNITY) and case.grid_code:
        found.append(Target("grid", district.label(case.grid_code, locale)))
    if case.level == Level.STREET and case.community_code:
        found.append(Target("community", district.name(case.community_code, locale)))
    found += [Target(f"dept:{d.code}", d.name(locale))
              for d in for_category(reference.departments, case.category)]
    return found


def build_event(reference: ReferenceData, case: Case, kind: EventKind, given: Given,
                now: datetime) -> Event | None:
    """The workflow event for an action and what was given, or None when what it needs
    is missing or does not fit (no reason, no note or photo, an unknown target...)."""
    note = given.note.strip()[:MAX_NOTE]
    need = NEEDS_INPUT.get(kind)
    if need == "reason":
        if not note:
            return None
        deadline = None
        if kind == EventKind.ESCALATE:  # the clock starts again at the new level
            limit = reference.catalog.time_limit_of(case.category)
            deadline = reference.calendar.deadline(now, limit, reference.tz)
        return Event(kind, note=note, deadline=deadline)
    if need == "note":
        return Event(kind, note=note) if note or given.photos else None
    if need == "merge":
        target = casework.parse_case_number(given.merge_into or "")
        if target is None or target == case.number:
            return None
        return Event(kind, merged_into=target, note=target)
    if need == "days":
        if given.days is None or not 1 <= given.days <= MAX_DAYS:
            return None
        start = max(case.deadline or now, now)
        deadline = reference.calendar.deadline(start, TimeLimit(given.days, "days", True),
                                               reference.tz)
        return Event(kind, deadline=deadline, note=f"+{given.days}d")
    if need == "target":
        target = given.target or ""
        if target == "grid":
            return Event(kind, level=Level.GRID, note=note)
        if target == "community":
            return Event(kind, level=Level.COMMUNITY, note=note)
        code = target.removeprefix("dept:")
        if target.startswith("dept:") and code in {d.code for d in reference.departments}:
            return Event(kind, level=Level.DEPARTMENT, department=code, note=note)
        return None
    return Event(kind, note=note)


async def apply(conn: Connection, reference: ReferenceData, stored: StoredCase,
                event: Event, actor: Actor, now: datetime,
                after_photos: Sequence[int] = ()) -> Acted:
    """Apply an event as the actor (audit line under their name, version-checked), with
    what it implies: the grid's chief for a dispatch down to the grid, the followers of a
    merged case moved to the target. Raises ActionRefused."""
    if event.kind == EventKind.DISPATCH and event.level == Level.GRID and stored.case.grid_code:
        chief = await people_store.holder_of(conn, "grid_chief", stored.case.grid_code)
        event = Event(event.kind, level=Level.GRID, assignee_id=chief.id if chief else None,
                      note=event.note)
    if event.kind == EventKind.MERGE and (
            event.merged_into is None
            or await case_store.get_by_number(conn, event.merged_into) is None):
        raise ActionRefused("not_found", event.merged_into or "")
    try:
        case, notices = await casework.apply_event(conn, reference, stored, event, actor,
                                                   now, after_photos=after_photos)
    except workflow.TransitionRefused as refused:
        raise ActionRefused("refused", refused.message) from refused
    except CaseConflict as conflict:
        fresh = await case_store.get_by_number(conn, stored.case.number)
        raise ActionRefused("conflict", str(conflict),
                            fresh.case.state.value if fresh else None) from conflict
    if event.kind == EventKind.MERGE and event.merged_into:
        await casework.move_followers(conn, case, event.merged_into, now)
    return Acted(case, event, notices)


async def act(conn: Connection, reference: ReferenceData, person_id: int, number: str,
              kind: EventKind, given: Given, now: datetime, *,
              seen_version: int | None = None) -> Acted:
    """Check and apply one action by a person on a case, all at once.

    `seen_version` is the case's version the person's page showed: if the case changed
    since, nothing is applied and ActionRefused("conflict") says so. Raises
    ActionRefused for every other refusal too (see its codes).
    """
    actors = await casework.staff_actors(conn, person_id)
    if not actors:
        raise ActionRefused("not_staff")
    stored = await case_store.get_by_number(conn, number)
    if stored is None or not casework.can_view(stored.case, actors):
        raise ActionRefused("not_found", number)
    if seen_version is not None and stored.case.version != seen_version:
        raise ActionRefused("conflict", number, stored.case.state.value)
    actor = casework.actor_for(stored.case, kind, actors)
    if actor is None:
        raise ActionRefused("not_allowed", number, stored.case.state.value)
    event = build_event(reference, stored.case, kind, given, now)
    if event is None:
        raise ActionRefused("incomplete", NEEDS_INPUT.get(kind, ""))
    return await apply(conn, reference, stored, event, actor, now, given.photos)


async def keep_photo(conn: Connection, channel: str, photo: Photo, now: datetime) -> int:
    """Store a photo of the result that came with an action; its media id."""
    return await media_store.add(conn, channel, now, provider_ref=photo.provider_ref,
                                 path=photo.path, sha256=photo.sha256,
                                 content_type=photo.content_type)


async def queue(conn: Connection, renderer: Renderer, reference: ReferenceData,
                notices: Sequence[PersonalMessage], now: datetime) -> int:
    """Put the notices of an action in the outbox, each on its person's own channel, in
    the caller's transaction; how many messages."""
    rows = await render_personal(conn, renderer, reference.default_locale, notices, now)
    await outbox_store.enqueue(conn, rows, now)
    return len(rows)

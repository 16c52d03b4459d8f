"""Filing a case: number, routing to the grid's person in charge, deadline, audit trail.

This is where the pure workflow meets the store: each transition the workflow returns is
saved with its audit record in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot.domain import workflow
from bot.domain.departments import open311_link
from bot.domain.messages import Choice, Reply
from bot.domain.workflow import Actor, Case, Event, EventKind, Level, Role, State
from bot.services.districts import Place
from bot.services.notify import PersonalMessage
from bot.services.reference import ReferenceData
from store import cases as case_store
from store import media as media_store
from store import open311 as open311_store
from store import people as people_store

SYSTEM = Actor(person_id=None, role=Role.SYSTEM, scope=None)


@dataclass(frozen=True)
class Draft:
    """A resident's report as confirmed in the dialogue."""

    category: str
    subcategory: str | None
    description: str
    place: Place
    photo_ids: tuple[int, ...]
    channel: str


@dataclass(frozen=True)
class Filed:
    """A new case, the person it went to, and who is told of it."""

    case: Case
    handler: people_store.Person | None
    notices: list[PersonalMessage]


def parse_case_number(text: str) -> str | None:
    """Read a case number as people type it: 261122-001, 261122001, #261122-001."""
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) < 9 or len(digits) > 10:
        return None
    return f"{digits[:6]}-{digits[6:]}"


async def file_case(
    conn: aiosqlite.Connection, reference: ReferenceData, reporter_id: int, draft: Draft,
    now: datetime, *, reporter_role: Role = Role.RESIDENT, reporter_scope: str | None = None,
    found_on_patrol: bool = False,
) -> Filed:
    """Create, register and route a case from a confirmed draft, with its audit trail."""
    district = reference.district
    grid = draft.place.grid_code
    community = district.ancestor(grid, "community")
    street = district.ancestor(grid, "street") or district.top_street()
    urgency = reference.catalog.urgency_of(draft.category, draft.subcategory)
    limit = reference.catalog.time_limit_of(draft.category, draft.subcategory)
    number = await case_store.next_number(conn, now.astimezone(reference.tz).strftime("%y%m%d"))

    handler = await people_store.holder_of(conn, "grid_chief", grid) if grid else None
    level = Level.GRID if grid else Level.STREET
    if handler is None and street is not None:
        handler = await people_store.holder_of(conn, "dispatcher", street)

    case = workflow.new_case(
        number=number, category=draft.category, urgency=urgency,
        procedure=workflow.procedure_for(urgency), grid_code=grid, community_code=community,
        street_code=street, reporter_id=reporter_id, now=now, found_on_patrol=found_on_patrol)
    reporter = Actor(person_id=reporter_id, role=reporter_role, scope=reporter_scope)
    submitted = workflow.submit(case, reporter, now)
    registered = workflow.apply(
        submitted.case,
        Event(EventKind.REGISTER, level=level,
              assignee_id=handler.id if handler else None,
              deadline=reference.calendar.deadline(now, limit, reference.tz),
              note=draft.place.note or ""),
        SYSTEM, now)

    details = case_store.CaseDetails(
        description=draft.description, subcategory=draft.subcategory,
        address=draft.place.address, building_id=draft.place.building_id,
        lat=draft.place.lat, lon=draft.place.lon, location_note=draft.place.note,
        source_channel=draft.channel)
    stored = await case_store.insert_case(conn, registered.case, details)
    assert stored.id is not None
    await case_store.add_events(conn, stored.id, [submitted.audit, registered.audit])
    if draft.photo_ids:
        await media_store.attach(conn, draft.photo_ids, stored.id)
    if grid:
        await people_store.set_grid(conn, reporter_id, grid)
    # The reporter hears back in the dialogue itself; staff from the workflow's effects.
    staff_effects = [e for e in registered.effects
                     if e.audience not in ("reporter", "followers")]
    notices = await notices_for(conn, stored, details, staff_effects, reporter)
    return Filed(stored, handler, notices)


async def follow_case(
    conn: aiosqlite.Connection, case: Case, person_id: int, now: datetime
) -> bool:
    """Make a resident follow (+1) an open case, with an audit line; False if they
    reported it themselves or follow it already (they hear of it either way)."""
    assert case.id is not None
    if case.reporter_id == person_id or await case_store.is_follower(conn, case.id, person_id):
        return False
    actor = Actor(person_id=person_id, role=Role.RESIDENT, scope=None)
    transition = workflow.apply(case, Event(EventKind.FOLLOW), actor, now)
    await case_store.update_case(conn, transition.case, case.version)
    await case_store.add_events(conn, case.id, [transition.audit])
    await case_store.add_follower(conn, case.id, person_id, now)
    return True


# Who hears of a case at each level when nobody in particular holds it.
LEVEL_ROLES = {
    "grid": ("grid_chief",),
    "community": ("community_staff", "community_director"),
    "street": ("dispatcher",),
    "department": ("department",),
    "supervisors": ("supervisor",),
}


async def apply_event(
    conn: aiosqlite.Connection, reference: ReferenceData, stored: case_store.StoredCase,
    event: Event, actor: Actor, now: datetime,
) -> tuple[Case, list[PersonalMessage]]:
    """Apply one workflow event to a stored case: save it (version-checked), append the
    audit record, and turn the workflow's effects into notices for people.

    Raises `workflow.TransitionRefused` when the actor may not, and
    `store.cases.CaseConflict` when someone changed the case since it was loaded.
    """
    transition = workflow.apply(stored.case, event, actor, now)
    case = transition.case
    assert case.id is not None
    await case_store.update_case(conn, case, stored.case.version)
    await case_store.add_events(conn, case.id, [transition.audit])
    if event.kind == EventKind.DISPATCH and open311_link(reference.departments,
                                                         case.department) is not None:
        # The department works in its own Open311 system: queued here, POSTed by the
        # scheduler (bot/services/open311_outbound.py).
        assert case.department is not None
        await open311_store.queue_outbound(conn, case.id, case.department, now)
    notices = await notices_for(conn, case, stored.details, transition.effects, actor,
                                note=transition.audit.note)
    return case, notices


async def notices_for(
    conn: aiosqlite.Connection, case: Case, details: case_store.CaseDetails,
    effects: Sequence[workflow.Effect], actor: Actor, note: str = "",
) -> list[PersonalMessage]:
    """Turn a transition's notify effects into notices, each person once per template.

    Staff get the case's action buttons that their roles allow; the reporter of a closed
    case is asked whether it is fixed.
    """
    notices: list[PersonalMessage] = []
    seen: set[tuple[int, str]] = set()
    # The closing message shows the result: the last photo on the case (the after-photo).
    after_photo: tuple[int, ...] = ()
    if case.state == State.CLOSED and case.id is not None:
        media = await media_store.for_case(conn, case.id)
        after_photo = (media[-1].id,) if media else ()
    for effect in effects:
        if effect.kind != "notify" or effect.template is None:
            continue
        public = effect.audience in ("reporter", "followers")
        for person_id in await audience(conn, case, effect):
            if (person_id, effect.template) in seen:
                continue
            if person_id == actor.person_id and not public:
                continue  # staff are not told of what they just did themselves
            seen.add((person_id, effect.template))
            choices: tuple[Choice, ...] = ()
            if not public:
                choices = tuple(action_choices(case, await staff_actors(conn, person_id)))
            elif effect.audience == "reporter" and case.state == State.CLOSED:
                choices = (Choice(f"fixed:{case.number}:yes", "@btn.fixed_yes"),
                           Choice(f"fixed:{case.number}:no", "@btn.fixed_no"))
            context = case_context(case, details, {"note": note, **effect.data})
            photos = after_photo if public and effect.template == "case_closed" else ()
            notices.append(PersonalMessage(person_id, Reply(effect.template, context, choices,
                                                   photos=photos)))
    return notices


async def audience(conn: aiosqlite.Connection, case: Case, effect: workflow.Effect) -> list[int]:
    """The people an effect's notice goes to."""
    who = effect.audience
    if who == "reporter":
        return [case.reporter_id] if case.reporter_id is not None else []
    if who == "followers":
        assert case.id is not None
        return await case_store.followers(conn, case.id)
    if who == "assignee":
        person = effect.data.get("person_id", case.assignee_id)
        return [int(str(person))] if person is not None else []
    if who in LEVEL_ROLES:
        scope = effect.data.get("scope")
        return await people_store.holders(conn, LEVEL_ROLES[who],
                                          str(scope) if scope is not None else None)
    return []


def case_context(case: Case, details: case_store.CaseDetails,
                 data: Mapping[str, object] | None = None) -> dict[str, object]:
    """What every case template may use: number, category code, place, deadline, note."""
    context: dict[str, object] = {
        "number": case.number, "category": case.category, "urgency": case.urgency,
        "state": case.state.value, "level": case.level.value, "deadline": case.deadline,
        "description": details.description[:120], "place": details.address or "",
        "note": "", "rating": case.rating, "rework": case.rework_count,
        "department": case.department, "merged_into": case.merged_into, "requested": None,
    }
    context.update(dict(data or {}))
    return context


# The events staff choose from a menu, in the order buttons are shown.
ACTIONS = (
    EventKind.SIGN, EventKind.REPORT_DONE, EventKind.CHECK_PASS, EventKind.CHECK_FAIL,
    EventKind.DISPATCH, EventKind.ESCALATE, EventKind.REQUEST_APPROVAL, EventKind.APPROVE,
    EventKind.DENY_APPROVAL, EventKind.RETURN, EventKind.MERGE,
    EventKind.REQUEST_EXTENSION, EventKind.APPROVE_EXTENSION, EventKind.DENY_EXTENSION,
    EventKind.SUSPEND, EventKind.RESUME, EventKind.FORCE_CLOSE,
)
STAFF_ROLES = frozenset(r for r in Role if r not in (Role.RESIDENT, Role.SYSTEM))


async def staff_actors(conn: aiosqlite.Connection, person_id: int) -> list[Actor]:
    """The roles a person acts in, as workflow actors (residents have none)."""
    actors = []
    for role, scope in await people_store.roles_of(conn, person_id):
        if role in {r.value for r in STAFF_ROLES}:
            actors.append(Actor(person_id=person_id, role=Role(role), scope=scope))
    return actors


def actor_for(case: Case, kind: EventKind, actors: Sequence[Actor]) -> Actor | None:
    """The first of a person's roles that may apply `kind` to the case now."""
    for actor in actors:
        try:
            workflow.authorize(case, kind, actor)
        except workflow.TransitionRefused:
            continue
        return actor
    return None


def action_choices(case: Case, actors: Sequence[Actor]) -> list[Choice]:
    """Buttons for the actions a person may take on a case now."""
    return [Choice(f"act:{case.number}:{kind.value}", f"@act.{kind.value}")
            for kind in ACTIONS if actor_for(case, kind, actors) is not None]


def can_view(case: Case, actors: Sequence[Actor]) -> bool:
    """Whether one of a person's staff roles covers the case (to read it)."""
    return any(actor.role == Role.ADMIN or workflow.in_area(case, actor)
               or (actor.role == Role.DEPARTMENT and case.department == actor.scope)
               for actor in actors)


async def move_followers(conn: aiosqlite.Connection, merged: Case, target_number: str,
                         now: datetime) -> None:
    """After a merge, the reporter and followers of the merged case follow the target."""
    target = await case_store.get_by_number(conn, target_number)
    if target is None or target.case.id is None or merged.id is None:
        return
    people = await case_store.followers(conn, merged.id)
    if merged.reporter_id is not None:
        people.append(merged.reporter_id)
    for person_id in people:
        if person_id != target.case.reporter_id:
            await case_store.add_follower(conn, target.case.id, person_id, now)

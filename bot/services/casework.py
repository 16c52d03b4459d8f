"""Filing a case: number, routing to the grid's person in charge, deadline, audit trail.

This is where the pure workflow meets the store: each transition the workflow returns is
saved with its audit record in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from bot.domain import workflow
from bot.domain.clock import iso
from bot.domain.departments import open311_link
from bot.domain.messages import Choice, Localized, Location, Reply
from bot.domain.workflow import Actor, Case, Event, EventKind, Level, Role, State
from bot.services import relay
from bot.services.districts import District, Place
from bot.services.notify import PersonalMessage
from bot.services.people import contact_line, display_name
from bot.services.reference import ReferenceData
from store import cases as case_store
from store import media as media_store
from store import open311 as open311_store
from store import people as people_store
from store import phonein as phonein_store
from store.db import Connection

SYSTEM = Actor(person_id=None, role=Role.SYSTEM, scope=None)
# Notices that hand a case to someone, who must know where to go and what it looks like.
HANDED_OVER = frozenset({"case_new", "case_assigned", "case_urgent", "case_dispatched",
                         "case_escalated", "case_returned", "case_supervision",
                         "case_reopened", "case_rework"})
MAX_CASE_PHOTOS = 10  # an album's most


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
    conn: Connection, reference: ReferenceData, reporter_id: int, draft: Draft,
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
    notices = await notices_for(conn, stored, details, staff_effects, reporter,
                                district=reference.district)
    return Filed(stored, handler, notices)


async def follow_case(
    conn: Connection, case: Case, person_id: int, now: datetime
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
    conn: Connection, reference: ReferenceData, stored: case_store.StoredCase,
    event: Event, actor: Actor, now: datetime, *, after_photos: Sequence[int] = (),
) -> tuple[Case, list[PersonalMessage]]:
    """Apply one workflow event to a stored case: save it (version-checked), append the
    audit record, attach the photos of the result it came with, and turn the workflow's
    effects into notices for people.

    Raises `workflow.TransitionRefused` when the actor may not, and
    `store.cases.CaseConflict` when someone changed the case since it was loaded.
    """
    transition = workflow.apply(stored.case, event, actor, now)
    case = transition.case
    assert case.id is not None
    await case_store.update_case(conn, case, stored.case.version)
    await case_store.add_events(conn, case.id, [transition.audit])
    if after_photos:
        await media_store.attach(conn, after_photos, case.id, media_store.AFTER)
    if event.kind == EventKind.DISPATCH and open311_link(reference.departments,
                                                         case.department) is not None:
        # The department works in its own Open311 system: queued here, POSTed by the
        # scheduler (bot/services/open311_outbound.py).
        assert case.department is not None
        await open311_store.queue_outbound(conn, case.id, case.department, now)
    notices = await notices_for(conn, case, stored.details, transition.effects, actor,
                                note=transition.audit.note, district=reference.district)
    return case, notices


async def notices_for(
    conn: Connection, case: Case, details: case_store.CaseDetails,
    effects: Sequence[workflow.Effect], actor: Actor, note: str = "",
    district: District | None = None,
) -> list[PersonalMessage]:
    """Turn a transition's notify effects into notices, each person once per template.

    Staff get the case's action buttons that their roles allow, and a case handed to them
    comes with its place (on a map) and its photos; the reporter of a closed case is
    asked whether it is fixed.
    """
    location = case_place(district, case, details)[2] if district is not None else None
    case_photos: tuple[int, ...] = ()
    if case.id is not None and any(e.template in HANDED_OVER for e in effects):
        case_photos = tuple(m.id for m in await media_store.for_case(conn, case.id))
    notices: list[PersonalMessage] = []
    seen: set[tuple[int, str]] = set()
    # The closing message shows the result: the photos staff took of the work done, never
    # the resident's own (with none, it has no photo).
    after_photo: tuple[int, ...] = ()
    if case.state == State.CLOSED and case.id is not None:
        after_photo = tuple(m.id for m in await media_store.for_case(conn, case.id)
                            if m.role == media_store.AFTER)
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
            context = case_context(case, details, {"note": note, **effect.data}, district)
            photos = after_photo if public and effect.template == "case_closed" else ()
            where = None
            if not public and effect.template in HANDED_OVER:
                photos, where = case_photos[:MAX_CASE_PHOTOS], location
            message = PersonalMessage(person_id, Reply(effect.template, context, choices,
                                                       photos=photos, location=where))
            if effect.audience == "reporter":  # a phoned-in case's caller without SMS
                message = await relay.to_reporter(conn, case.id, person_id, message.reply)
            notices.append(message)
    return notices


async def audience(conn: Connection, case: Case, effect: workflow.Effect) -> list[int]:
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
                 data: Mapping[str, object] | None = None,
                 district: District | None = None) -> dict[str, object]:
    """What every case template may use: number, category code, place (in full, and
    short for SMS), deadline, note."""
    place: object = details.address or ""
    place_short: object = place
    if district is not None:
        place, place_short, _ = case_place(district, case, details)
    context: dict[str, object] = {
        "number": case.number, "category": case.category, "urgency": case.urgency,
        "state": case.state.value, "level": case.level.value, "deadline": case.deadline,
        "description": details.description[:120], "place": place, "place_short": place_short,
        "note": "", "rating": case.rating, "rework": case.rework_count,
        "department": case.department, "merged_into": case.merged_into, "requested": None,
    }
    context.update(dict(data or {}))
    return context


def case_place(district: District, case: Case, details: case_store.CaseDetails
               ) -> tuple[Localized, Localized, Location | None]:
    """The case's place in full and short, and its point for a map (see District.describe)."""
    return district.describe(case.grid_code, building_id=details.building_id,
                             lat=details.lat, lon=details.lon, address=details.address)


# The events staff choose from a menu, in the order buttons are shown.
ACTIONS = (
    EventKind.SIGN, EventKind.REPORT_DONE, EventKind.CHECK_PASS, EventKind.CHECK_FAIL,
    EventKind.DISPATCH, EventKind.ESCALATE, EventKind.REQUEST_APPROVAL, EventKind.APPROVE,
    EventKind.DENY_APPROVAL, EventKind.RETURN, EventKind.MERGE,
    EventKind.REQUEST_EXTENSION, EventKind.APPROVE_EXTENSION, EventKind.DENY_EXTENSION,
    EventKind.SUSPEND, EventKind.RESUME, EventKind.FORCE_CLOSE,
)
STAFF_ROLES = frozenset(r for r in Role if r not in (Role.RESIDENT, Role.SYSTEM))


async def staff_actors(conn: Connection, person_id: int) -> list[Actor]:
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


async def move_followers(conn: Connection, merged: Case, target_number: str,
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


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a case's audit trail, with who did it named."""

    at: datetime
    event: str
    actor_id: int | None
    actor_role: str
    actor: str | None  # the actor's name or masked contact; None for the system
    from_state: str
    to_state: str
    note: str


@dataclass(frozen=True)
class CaseView:
    """Everything about one case that an operator reads: the card and the timeline."""

    number: str
    category: str
    category_name: str
    subcategory: str | None
    urgency: str
    procedure: str
    state: str
    level: str
    grid_code: str | None
    community_code: str | None
    street_code: str | None
    area_name: str
    department: str | None
    place: str | None
    lat: float | None
    lon: float | None
    location_note: str | None
    description: str
    source_channel: str | None
    found_on_patrol: bool
    phoned_in_by: str | None  # the staff member who filed it for a caller (phone-in)
    caller_sms: bool | None  # phone-in: the caller hears by SMS (else through the filer)
    reporter_id: int | None
    reporter: str  # name and phone, the phone masked unless asked otherwise or agreed
    assignee_id: int | None
    assignee: str | None
    created_at: datetime
    registered_at: datetime | None
    deadline: datetime | None
    overdue: bool
    resolved_at: datetime | None
    closed_at: datetime | None
    closed_by_level: str | None
    rating: int | None
    rework_count: int
    merged_into: str | None
    followers: int
    photo_ids: list[int]
    timeline: list[TimelineEntry]

    def as_json(self) -> dict[str, Any]:
        """The view as JSON-ready data: times as ISO 8601 in UTC (docs/cli.md)."""
        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return iso(value)
            if isinstance(value, Enum):
                return value.value
            if isinstance(value, list):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return {key: plain(value) for key, value in asdict(self).items()}


async def case_view(conn: Connection, reference: ReferenceData, number: str,
                    now: datetime, *, masked: bool = True,
                    locale: str | None = None) -> CaseView | None:
    """One case by number as staff read it, with its audit trail; None if there is none.

    Phones are masked as a grid chief sees them unless `masked` is False (the street
    office sees them in full); a resident who agreed to show theirs is shown in full.
    """
    stored = await case_store.get_by_number(conn, number)
    case_id = stored.case.id if stored is not None else None
    if stored is None or case_id is None:
        return None
    case, details = stored.case, stored.details
    locale = locale or reference.default_locale
    try:
        category_name = reference.catalog.get(case.category).name(locale)
    except KeyError:
        category_name = case.category
    names: dict[int, str] = {}

    async def name_of(person_id: int | None) -> str | None:
        if person_id is None:
            return None
        if person_id not in names:
            names[person_id] = await display_name(conn, person_id, masked=masked)
        return names[person_id]

    phoned = await phonein_store.get(conn, case_id)
    timeline = [TimelineEntry(e.at, e.event, e.actor_id, e.actor_role, await name_of(e.actor_id),
                              e.from_state, e.to_state, e.note)
                for e in await case_store.events(conn, case_id)]
    area = case.grid_code or case.community_code or case.street_code
    return CaseView(
        number=case.number, category=case.category, category_name=category_name,
        subcategory=details.subcategory, urgency=case.urgency,
        procedure=case.procedure.value, state=case.state.value, level=case.level.value,
        grid_code=case.grid_code, community_code=case.community_code,
        street_code=case.street_code,
        area_name=reference.district.name(area, locale) if area else "",
        department=case.department, place=details.address, lat=details.lat, lon=details.lon,
        location_note=details.location_note, description=details.description,
        source_channel=details.source_channel, found_on_patrol=case.found_on_patrol,
        phoned_in_by=await name_of(phoned.filed_by) if phoned else None,
        caller_sms=phoned.sms if phoned else None,
        reporter_id=case.reporter_id,
        reporter=(await contact_line(conn, case.reporter_id, masked=masked)
                  or await display_name(conn, case.reporter_id, masked=masked)
                  if case.reporter_id is not None else ""),
        assignee_id=case.assignee_id, assignee=await name_of(case.assignee_id),
        created_at=case.created_at, registered_at=case.registered_at, deadline=case.deadline,
        overdue=(case.deadline is not None and case.deadline < now
                 and case.state.value in case_store.OPEN_STATES),
        resolved_at=case.resolved_at, closed_at=case.closed_at,
        closed_by_level=case.closed_by_level.value if case.closed_by_level else None,
        rating=case.rating, rework_count=case.rework_count, merged_into=case.merged_into,
        followers=await case_store.follower_count(conn, case_id),
        photo_ids=[m.id for m in await media_store.for_case(conn, case_id)],
        timeline=timeline)

"""Filing a case: number, routing to the grid's person in charge, deadline, audit trail.

This is where the pure workflow meets the store: each transition the workflow returns is
saved with its audit record in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot import workflow
from bot.districts import Place
from bot.services import Services
from bot.workflow import Actor, Case, Event, EventKind, Level, Role
from store import cases as case_store
from store import media as media_store
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
    """A new case and the person it went to."""

    case: Case
    handler: people_store.Person | None


def parse_case_number(text: str) -> str | None:
    """Read a case number as people type it: 261122-001, 261122001, #261122-001."""
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) < 9 or len(digits) > 10:
        return None
    return f"{digits[:6]}-{digits[6:]}"


async def file_case(
    conn: aiosqlite.Connection, services: Services, reporter_id: int, draft: Draft,
    now: datetime,
) -> Filed:
    """Create, register and route a case from a confirmed draft, with its audit trail."""
    district = services.district
    grid = draft.place.grid_code
    community = district.ancestor(grid, "community")
    street = district.ancestor(grid, "street") or district.top_street()
    urgency = services.catalog.urgency_of(draft.category, draft.subcategory)
    limit = services.catalog.time_limit_of(draft.category, draft.subcategory)
    number = await case_store.next_number(conn, now.astimezone(services.tz).strftime("%y%m%d"))

    handler = await people_store.holder_of(conn, "grid_chief", grid) if grid else None
    level = Level.GRID if grid else Level.STREET
    if handler is None and street is not None:
        handler = await people_store.holder_of(conn, "dispatcher", street)

    case = workflow.new_case(
        number=number, category=draft.category, urgency=urgency,
        procedure=workflow.procedure_for(urgency), grid_code=grid, community_code=community,
        street_code=street, reporter_id=reporter_id, now=now)
    reporter = Actor(person_id=reporter_id, role=Role.RESIDENT, scope=None)
    submitted = workflow.submit(case, reporter, now)
    registered = workflow.apply(
        submitted.case,
        Event(EventKind.REGISTER, level=level,
              assignee_id=handler.id if handler else None,
              deadline=services.calendar.deadline(now, limit, services.tz),
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
    return Filed(stored, handler)


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

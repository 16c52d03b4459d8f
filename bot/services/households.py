"""The household archive as staff use it: who may read a household (and every read
logged), the import, visits against households, the due-visit list, linking a case to a
household, deleting one (the street), and what a resident can see of their own record.

Who reads: the grid's chief, the staff of its community, the dispatchers of its street,
supervisors and admins. Never residents, information officers (volunteers, property
staff) or departments. Phones are masked for the grid level, as on case cards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from bot.domain.households import DueVisit, TagCatalog, due_visits, mask_name, next_visit
from bot.domain.households import parse_households_csv as parse_csv
from bot.domain.workflow import Actor, Role
from bot.services import phones
from bot.services.districts import DEMO, District
from bot.services.people import display_name
from bot.services.reference import ReferenceData
from bot.services.render import mask_phone
from store import areas as area_store
from store import cases as case_store
from store import households as household_store
from store import people as people_store
from store.db import Connection, Database
from store.households import Household

# Role → the area level its scope is: the households it may read lie in that area.
READER_LEVELS = {Role.GRID_CHIEF: "grid", Role.COMMUNITY_STAFF: "community",
                 Role.COMMUNITY_DIRECTOR: "community", Role.DISPATCHER: "street"}
UNSCOPED_READERS = frozenset({Role.SUPERVISOR, Role.ADMIN})
DELETERS = frozenset({Role.DISPATCHER, Role.ADMIN})  # the street deletes
MASKED_READERS = frozenset({Role.GRID_CHIEF})


def reader_for(district: District, grid_code: str, actors: Sequence[Actor],
               roles: frozenset[Role] | None = None) -> Actor | None:
    """The first of a person's roles that covers a household in `grid_code` (of `roles`,
    when given), or None: that person may not read it."""
    for actor in actors:
        if roles is not None and actor.role not in roles:
            continue
        if actor.role in UNSCOPED_READERS:
            if actor.scope is None or actor.scope in (
                    grid_code, district.ancestor(grid_code, "community"),
                    district.ancestor(grid_code, "street")):
                return actor
            continue
        level = READER_LEVELS.get(actor.role)
        if level is not None and actor.scope is not None \
                and district.ancestor(grid_code, level) == actor.scope:
            return actor
    return None


def is_reader(actors: Sequence[Actor]) -> bool:
    """Whether any of a person's roles reads households at all."""
    return any(a.role in READER_LEVELS or a.role in UNSCOPED_READERS for a in actors)


def grids_of(district: District, actors: Sequence[Actor]) -> list[str]:
    """The grids whose households a person may read, in code order."""
    grids = [code for code, area in district.areas.items() if area.level == "grid"]
    return sorted(g for g in grids if reader_for(district, g, actors) is not None)


@dataclass(frozen=True)
class HouseholdView:
    """A household as one staff member may read it (phone masked or not)."""

    id: int
    building_id: int
    building: str
    grid_code: str
    door: str
    head_name: str
    phone: str
    people: int
    tags: list[str]
    last_visit: datetime | None
    next_visit: datetime | None
    visits: int
    cases: list[str]


async def view(conn: Connection, reference: ReferenceData, household: Household,
               actor: Actor, locale: str, now: datetime, what: str = "card") -> HouseholdView:
    """The household's record for a reader, the read logged."""
    await household_store.log_reads(conn, [household.id], actor.person_id or 0,
                                    actor.role.value, what, now)
    last = (await household_store.last_visits(conn, [household.id])).get(household.id)
    rule = next_visit(reference.household_tags, household.tags, last, household.created_at)
    masked = actor.role in MASKED_READERS
    return HouseholdView(
        id=household.id, building_id=household.building_id,
        building=reference.district.building_name(household.building_id, locale),
        grid_code=household.grid_code, door=household.door, head_name=household.head_name,
        phone=(mask_phone(household.phone) if masked else household.phone or ""),
        people=household.people,
        tags=reference.household_tags.names(household.tags, locale), last_visit=last,
        next_visit=rule[0] if rule else None,
        visits=await household_store.visit_count(conn, household.id),
        cases=await household_store.cases_of(conn, household.id))


def short_label(reference: ReferenceData, household: Household, locale: str) -> str:
    """A household in a list: door, head's name masked, tags ("2-301 王** 独居老人")."""
    tags = "、".join(reference.household_tags.names(household.tags, locale))
    return " ".join(p for p in (household.door, mask_name(household.head_name), tags) if p)


async def list_building(conn: Connection, reference: ReferenceData, building_id: int,
                        actor: Actor, now: datetime) -> list[Household]:
    """A building's households for a reader (who must cover its grid), the reads logged."""
    building = reference.district.buildings.get(building_id)
    if building is None or reader_for(reference.district, building.grid_code,
                                      [actor]) is None:
        return []
    found = await household_store.in_building(conn, building_id)
    await household_store.log_reads(conn, [h.id for h in found], actor.person_id or 0,
                                    actor.role.value, "list", now)
    return found


async def readable(conn: Connection, reference: ReferenceData, household_id: int,
                   actors: Sequence[Actor]) -> tuple[Household, Actor] | None:
    """The household and the reader role, or None when it is unknown or out of scope."""
    household = await household_store.get(conn, household_id)
    if household is None:
        return None
    actor = reader_for(reference.district, household.grid_code, actors)
    return (household, actor) if actor is not None else None


@dataclass(frozen=True)
class DueItem:
    """One household due a visit, as a chief's list shows it."""

    household_id: int
    label: str  # building and door, head's name masked, tags
    due_at: datetime
    last_visit: datetime | None
    overdue_days: int


def end_of_day(now: datetime, reference: ReferenceData) -> datetime:
    """Local midnight after `now`: what is due "today"."""
    local = now.astimezone(reference.tz)
    return datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=reference.tz)


async def due_in_grids(conn: Connection, reference: ReferenceData, grids: Sequence[str],
                       now: datetime, locale: str, *, reader: Actor | None = None
                       ) -> list[DueItem]:
    """The households of `grids` due a visit by the end of today, longest waiting first;
    with `reader`, the reads are logged."""
    households = {h.id: h for h in await household_store.in_grids(conn, grids)}
    last = await household_store.last_visits(conn, list(households))
    due: list[DueVisit] = due_visits(
        reference.household_tags,
        [(h.id, h.tags, last.get(h.id), h.created_at) for h in households.values()],
        end_of_day(now, reference))
    if reader is not None and due:
        await household_store.log_reads(conn, [d.household_id for d in due],
                                        reader.person_id or 0, reader.role.value, "due", now)
    items = []
    for d in due:
        h = households[d.household_id]
        building = reference.district.building_name(h.building_id, locale)
        items.append(DueItem(h.id, f"{building} {short_label(reference, h, locale)}",
                             d.due_at, d.last_visit, d.overdue_days(now)))
    return items


async def due_for_chief(conn: Connection, reference: ReferenceData, person_id: int,
                        now: datetime, locale: str) -> list[DueItem]:
    """A grid chief's households due a visit (their grids only), the reads logged."""
    grids = [scope for role, scope in await people_store.roles_of(conn, person_id)
             if role == Role.GRID_CHIEF.value and scope]
    if not grids:
        return []
    return await due_in_grids(conn, reference, grids, now, locale,
                              reader=Actor(person_id, Role.GRID_CHIEF, grids[0]))


@dataclass(frozen=True)
class Imported:
    """What an import did."""

    added: int
    updated: int

    @property
    def total(self) -> int:
        """Rows read."""
        return self.added + self.updated


async def import_households(db: Database, text: str, tags: TagCatalog, region: str,
                            now: datetime) -> Imported:
    """Import households from CSV text, all or nothing (ValueError names the line);
    a household already known (building, unit, room) is updated."""
    buildings = await area_store.all_buildings(db.conn)
    ids = {(b.grid_code, b.name): b.id for b in buildings}
    rows = parse_csv(text, ids, tags, lambda raw: phones.to_e164(raw, region))
    grid_of = {b.id: b.grid_code for b in buildings}
    async with db.transaction() as conn:
        added, updated = await household_store.upsert(conn, rows, grid_of, now)
    return Imported(added, updated)


async def log_visit(conn: Connection, reference: ReferenceData, person_id: int,
                    grid_code: str | None, now: datetime, *, raised: str,
                    follow_up: str | None, building_id: int | None = None,
                    building_text: str = "", household: Household | None = None,
                    household_text: str = "") -> int:
    """Log a visit: against a registered household, or a building and a door typed."""
    district = reference.district
    building = district.building_name(building_id, "zh_CN") or building_text
    if household is not None:
        grid_code, household_text = household.grid_code, household.door
    elif building_id is not None and building_id in district.buildings:
        grid_code = district.buildings[building_id].grid_code
    return await household_store.add_visit(
        conn, person_id, grid_code, building, household_text, raised, now,
        household_id=household.id if household else None, building_id=building_id,
        follow_up=follow_up)


async def link_case(conn: Connection, reference: ReferenceData, case_number: str,
                    household_id: int, actors: Sequence[Actor], now: datetime) -> str:
    """Link a case to a household: "linked", or why not ("no_case", "no_household")."""
    stored = await case_store.get_by_number(conn, case_number)
    found = await readable(conn, reference, household_id, actors)
    if found is None:
        return "no_household"
    if stored is None or stored.case.id is None:
        return "no_case"
    household, actor = found
    await household_store.link_case(conn, stored.case.id, household.id, actor.person_id, now)
    await household_store.log_reads(conn, [household.id], actor.person_id or 0,
                                    actor.role.value, "link", now)
    return "linked"


async def delete(conn: Connection, reference: ReferenceData, household_id: int,
                 actors: Sequence[Actor], now: datetime) -> bool:
    """The street (a dispatcher of its street, or an admin) deletes a household; an audit
    line with no personal data stays. False when not allowed or unknown."""
    household = await household_store.get(conn, household_id)
    if household is None:
        return False
    actor = reader_for(reference.district, household.grid_code, actors, DELETERS)
    if actor is None or actor.person_id is None:
        return False
    return await household_store.delete(conn, household_id, actor.person_id,
                                        actor.role.value, now)


@dataclass(frozen=True)
class MyData:
    """What is stored about a resident, as they may read it."""

    name: str
    phone: str
    locale: str
    home: str
    contacts: list[str]  # channel names
    reported: list[str]  # case numbers
    followed: int
    household: dict[str, object] | None


async def my_data(conn: Connection, reference: ReferenceData, person_id: int,
                  locale: str) -> MyData:
    """A resident's own record: contact, cases, and the household whose phone is theirs.

    The household is matched only on a number the person is known to hold: an SMS
    contact of theirs (they text from it, shared it as their own Telegram contact, or it
    is their number in the staff file). Not on the phone of their card, which staff type
    freely. Shown: the building, door, head's name, size and tags, and how many visits and
    staff reads were logged, but not the visit notes (staff's notes, which may name others).
    """
    person = await people_store.get_person(conn, person_id)
    contacts = await people_store.contacts_of(conn, person_id)
    numbers = {c.address for c in contacts if c.channel == "sms"}
    spellings = sorted({s for n in numbers for s in (n, *phones.spellings(n))})
    household = None
    matched = await household_store.with_phone(conn, spellings)
    if matched:
        h = matched[0]
        household = {
            "building": reference.district.building_name(h.building_id, locale),
            "door": h.door, "head_name": h.head_name, "people": h.people,
            "tags": reference.household_tags.names(h.tags, locale),
            "visits": await household_store.visit_count(conn, h.id),
            "reads": len(await household_store.reads(conn, h.id))}
    cases = await case_store.for_person(conn, person_id, limit=50)
    grid = person.grid_code if person else None
    return MyData(
        name=(person.name or "") if person else "",
        phone=sorted(numbers)[0] if numbers else ((person.phone or "") if person else ""),
        locale=(person.locale or "") if person else "",
        home=reference.district.name(grid, locale) if grid else "",
        contacts=sorted({c.channel for c in contacts}),
        reported=[c.number for c in cases if c.reporter_id == person_id],
        followed=sum(1 for c in cases if c.reporter_id != person_id),
        household=household)


# --- for the web console (each function checks scope itself) ------------------------

def can_delete(reference: ReferenceData, household: Household,
               actors: Sequence[Actor]) -> bool:
    """Whether the person is the street over the household (may delete it)."""
    return reader_for(reference.district, household.grid_code, actors, DELETERS) is not None


@dataclass(frozen=True)
class BuildingHouseholds:
    """A building of a grid with its households, as a list page shows them."""

    building_id: int
    name: str
    households: list[Household]


async def in_grid(conn: Connection, reference: ReferenceData, grid_code: str,
                  actors: Sequence[Actor], now: datetime, locale: str,
                  building_id: int | None = None) -> list[BuildingHouseholds] | None:
    """A grid's buildings (or the one asked) with their households for a reader, the
    reads logged as `list_building` logs them; None when the grid is not theirs."""
    actor = reader_for(reference.district, grid_code, actors)
    if actor is None:
        return None
    buildings = sorted((b for b in reference.district.buildings.values()
                        if b.grid_code == grid_code
                        and (building_id is None or b.id == building_id)),
                       key=lambda b: (b.name, b.id))
    return [BuildingHouseholds(b.id, reference.district.building_name(b.id, locale),
                               await list_building(conn, reference, b.id, actor, now))
            for b in buildings]


@dataclass(frozen=True)
class VisitView:
    """One logged visit, with the visitor's name."""

    at: datetime
    visitor: str
    raised: str
    follow_up: str | None


async def visit_lines(conn: Connection, household_id: int, limit: int = 10
                      ) -> list[VisitView]:
    """A household's latest visits, newest first (read with its record: `view` logs it)."""
    lines = await household_store.visits_of(conn, household_id, limit)
    names: dict[int, str] = {}
    for line in lines:
        if line.person_id not in names:
            names[line.person_id] = await display_name(conn, line.person_id)
    return [VisitView(v.at, names[v.person_id], v.raised, v.follow_up) for v in lines]


async def due_for(conn: Connection, reference: ReferenceData, actors: Sequence[Actor],
                  now: datetime, locale: str) -> list[DueItem]:
    """The households due a visit by tonight in every grid the person reads (a chief:
    their grid), the reads logged."""
    grids = grids_of(reference.district, actors)
    reader = next((a for a in actors if a.role in READER_LEVELS or a.role in UNSCOPED_READERS),
                  None)
    if not grids or reader is None:
        return []
    return await due_in_grids(conn, reference, grids, now, locale, reader=reader)


async def linked_to(conn: Connection, reference: ReferenceData, case_id: int,
                    actors: Sequence[Actor]) -> int | None:
    """The household a case is linked to, when the person may read it."""
    found = await household_store.household_of_case(conn, case_id)
    if found is None or await readable(conn, reference, found, actors) is None:
        return None
    return found


async def link_choices(conn: Connection, reference: ReferenceData, grid_code: str | None,
                       building_id: int | None, actors: Sequence[Actor], now: datetime
                       ) -> list[Household]:
    """The households a case may be linked to: those of its building, else of its grid,
    when the person reads that grid (the listing logged as a read)."""
    if grid_code is None:
        return []
    actor = reader_for(reference.district, grid_code, actors)
    if actor is None:
        return []
    if building_id is not None and building_id in reference.district.buildings:
        return await list_building(conn, reference, building_id, actor, now)
    found = await household_store.in_grids(conn, [grid_code])
    await household_store.log_reads(conn, [h.id for h in found], actor.person_id or 0,
                                    actor.role.value, "list", now)
    return found


DEMO_HOUSEHOLDS = DEMO / "households.csv"


async def load_demo(db: Database, tags: TagCatalog, region: str, now: datetime) -> None:
    """The demo's fictional households (bot/data/demo/households.csv)."""
    await import_households(db, DEMO_HOUSEHOLDS.read_text(encoding="utf-8"), tags, region,
                            now)

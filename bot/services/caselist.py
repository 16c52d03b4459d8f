"""The console's case list: the filters a page offers, the person's scope, the countdown.

`Filters.from_params` reads the page's query string (anything unknown or malformed is
ignored, never an error); `scopes_for` turns a person's staff roles into what they may
see, mirroring `casework.can_view` (tests/test_console_cases.py checks the two agree);
`list_cases` returns one page with its counts. The map uses the same filters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.domain.categories import TimeLimit
from bot.domain.workflow import Actor, Case, Role, State
from bot.domain.worktime import WorkCalendar
from bot.services.casework import can_view
from bot.services.reference import ReferenceData
from store import caselist as caselist_store
from store import cases as case_store
from store import schedule as schedule_store
from store.caselist import CasePage, CaseQuery, ListedCase
from store.cases import OPEN_STATES
from store.db import Connection

PAGE_SIZE = 50
# The status filter: a group of states, or one state by its name.
STATES = tuple(s.value for s in State)
FINISHED_STATES = caselist_store.FINISHED_STATES
STATUS_GROUPS: dict[str, tuple[str, ...] | None] = {
    "open": OPEN_STATES,
    "closed": FINISHED_STATES,  # closed, evaluated, rejected, merged
    "all": None,
}
SORTS = tuple(caselist_store.SORTS)
NARROW_DAYS = 92  # a date range this short is searched by date first (store.caselist)
WARN_SHARE = 0.8  # amber from 80 % of the time limit, as the scheduler's warning


@dataclass(frozen=True)
class Filters:
    """The list's filters as the page's form gives them (all optional)."""

    status: str = "open"
    category: str = ""
    urgency: str = ""
    community: str = ""
    grid: str = ""
    channel: str = ""
    q: str = ""
    overdue: bool = False
    due_today: bool = False
    date_from: date | None = None
    date_to: date | None = None
    sort: str = "deadline"
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> Filters:
        """Read the filters from a query string; what does not parse is left out."""
        def text(name: str, limit: int = 64) -> str:
            return str(params.get(name, "")).strip()[:limit]

        def day(name: str) -> date | None:
            try:
                return date.fromisoformat(text(name, 10)) if text(name) else None
            except ValueError:
                return None

        status = text("status") or "open"
        if status not in STATUS_GROUPS and status not in STATES:
            status = "open"
        sort = text("sort") if text("sort") in SORTS else "deadline"
        page = text("page", 6)
        return cls(status=status, category=text("category"), urgency=text("urgency", 4),
                   community=text("community"), grid=text("grid"), channel=text("channel"),
                   q=text("q", 100), overdue=text("overdue") in ("1", "on", "true"),
                   due_today=text("due_today") in ("1", "on", "true"),
                   date_from=day("from"), date_to=day("to"), sort=sort,
                   page=max(1, int(page)) if page.isdigit() else 1)

    def as_params(self, **changes: object) -> dict[str, str]:
        """The filters as a query string's fields (for links to other pages and sorts)."""
        f = replace(self, **changes)  # type: ignore[arg-type]
        out = {"status": f.status, "category": f.category, "urgency": f.urgency,
               "community": f.community, "grid": f.grid, "channel": f.channel, "q": f.q,
               "overdue": "1" if f.overdue else "", "due_today": "1" if f.due_today else "",
               "from": f.date_from.isoformat() if f.date_from else "",
               "to": f.date_to.isoformat() if f.date_to else "", "sort": f.sort,
               "page": str(f.page) if f.page > 1 else ""}
        return {k: v for k, v in out.items() if v}


def scopes_for(actors: Sequence[Actor]) -> list[tuple[str, str | None]]:
    """What a person's staff roles let them see, as (column, value) pairs OR-ed together;
    ("*", None) for everything. The same rule as `casework.can_view`."""
    scopes: list[tuple[str, str | None]] = []
    for actor in actors:
        role, scope = actor.role, actor.scope
        if role == Role.ADMIN:
            return [("*", None)]
        column = {Role.GRID_CHIEF: "grid_code", Role.COMMUNITY_STAFF: "community_code",
                  Role.COMMUNITY_DIRECTOR: "community_code", Role.DISPATCHER: "street_code",
                  Role.DEPARTMENT: "department"}.get(role)
        if column is not None:
            if scope is not None:
                scopes.append((column, scope))
        elif role in (Role.SUPERVISOR, Role.INFO_OFFICER):
            if scope is None:
                return [("*", None)]
            scopes += [("grid_code", scope), ("community_code", scope),
                       ("street_code", scope)]
    return scopes


def query_for(filters: Filters, actors: Sequence[Actor], now: datetime, tz: ZoneInfo,
              *, page_size: int = PAGE_SIZE) -> CaseQuery:
    """The store query for these filters, within what these roles may see."""
    states = STATUS_GROUPS.get(filters.status, (filters.status,))
    due_between = None
    if filters.due_today:
        today = now.astimezone(tz).date()
        start = datetime.combine(today, time(0), tz)
        due_between = (max(start, now), start + timedelta(days=1))

    def local_midnight(day: date | None) -> datetime | None:
        return datetime.combine(day, time(0), tz) if day else None

    if filters.status == "all":
        counted = STATES
    elif filters.status == "closed" or filters.status in FINISHED_STATES:
        counted = FINISHED_STATES
    else:
        counted = OPEN_STATES
    return CaseQuery(
        scopes=scopes_for(actors), states=states, counted_states=counted,
        category=filters.category or None,
        urgency=filters.urgency or None, community=filters.community or None,
        grid=filters.grid or None, channel=filters.channel or None, text=filters.q or None,
        overdue_at=now if filters.overdue else None, due_between=due_between,
        created_from=local_midnight(filters.date_from),
        created_before=local_midnight(filters.date_to + timedelta(days=1))
        if filters.date_to else None,
        narrow_dates=filters.date_from is not None and (
            (filters.date_to or now.astimezone(tz).date()) - filters.date_from
            <= timedelta(days=NARROW_DAYS)),
        sort=filters.sort, limit=page_size, offset=(filters.page - 1) * page_size)


async def list_cases(conn: Connection, filters: Filters, actors: Sequence[Actor],
                     now: datetime, tz: ZoneInfo) -> CasePage:
    """One page of the cases these roles may see that match the filters."""
    return await caselist_store.page(conn, query_for(filters, actors, now, tz))


async def export_cases(conn: Connection, filters: Filters, actors: Sequence[Actor],
                       now: datetime, tz: ZoneInfo) -> list[ListedCase]:
    """Every case matching the filters (not only the page), for the CSV export."""
    query = query_for(filters, actors, now, tz)
    return await caselist_store.all_matching(conn, query)


@dataclass(frozen=True)
class Countdown:
    """How a deadline is shown: the colour (green, amber, red), the time left and since
    when the clock runs."""

    colour: str
    deadline: datetime | None
    seconds_left: int | None


def overdue(case: Case, now: datetime) -> bool:
    """Whether an open case is past its deadline."""
    return (case.deadline is not None and case.state.value in OPEN_STATES
            and case.deadline < now)


def countdown(case: Case, now: datetime, period_start: datetime | None, limit: TimeLimit,
              calendar: WorkCalendar, tz: ZoneInfo) -> Countdown:
    """Green; amber from 80 % of the case's time limit, counted from the deadline period's
    start in working time when the limit is in working time (as the scheduler's warning:
    a night or a weekend uses none of a working-hours limit); red once overdue. Cases not
    open have no countdown ("none")."""
    if case.deadline is None or case.state.value not in OPEN_STATES:
        return Countdown("none", case.deadline, None)
    left = int((case.deadline - now).total_seconds())
    if overdue(case, now):
        return Countdown("red", case.deadline, left)
    start = period_start or case.registered_at or case.created_at
    amber = (case.deadline <= start or calendar.elapsed_fraction(
        start, case.deadline, now, limit, tz) >= WARN_SHARE)
    return Countdown("amber" if amber else "green", case.deadline, left)


async def countdowns(conn: Connection, reference: ReferenceData,
                     cases: Sequence[tuple[Case, str | None]], now: datetime
                     ) -> dict[str, Countdown]:
    """The countdown of each (case, subcategory) by case number, from the start of its
    deadline period."""
    starts = await schedule_store.deadline_periods(conn, [c.id for c, _ in cases if c.id])
    return {case.number: countdown(case, now, starts.get(case.id or 0),
                                   reference.time_limit_of(case.category, subcategory),
                                   reference.calendar, reference.tz)
            for case, subcategory in cases}


async def last_change(conn: Connection) -> int:
    """A number that grows whenever any case changes (the pages poll it)."""
    return await caselist_store.last_change(conn)


async def case_version(conn: Connection, number: str) -> int | None:
    """A case's current version (the case page polls it)."""
    return await caselist_store.case_version(conn, number)


async def visible_case(conn: Connection, number: str, actors: Sequence[Actor]
                       ) -> case_store.StoredCase | None:
    """A case by number when one of these roles may see it (`casework.can_view`); None
    when it does not exist or is outside their scope: the two look the same."""
    stored = await case_store.get_by_number(conn, number)
    if stored is None or not can_view(stored.case, actors):
        return None
    return stored

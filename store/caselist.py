"""The console's case list: one filtered, scoped, sorted page of cases and its counts.

The caller (bot/services/caselist.py) turns a person's roles into `scopes` and the page's
filters into a `CaseQuery`; here they become one WHERE clause with `?` parameters only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.domain.clock import iso, parse_iso
from bot.domain.workflow import Case
from store.cases import OPEN_STATES, case_from_json
from store.db import Connection, fetch

# Columns a scope may restrict on: (column, value); ("*", None) is everything.
SCOPE_COLUMNS = frozenset({"grid_code", "community_code", "street_code", "department", "*"})
SORTS = {
    "deadline": "deadline IS NULL, deadline, id",
    "newest": "created_at DESC, id DESC",
    "changed": "changed_at DESC, id DESC",
}
MAX_PAGE = 200


@dataclass(frozen=True)
class CaseQuery:
    """What the list shows: who may see what (`scopes`, OR-ed) and the filters (AND-ed)."""

    scopes: Sequence[tuple[str, str | None]]
    states: Sequence[str] | None = None
    category: str | None = None
    urgency: str | None = None
    community: str | None = None
    grid: str | None = None
    channel: str | None = None
    text: str | None = None
    overdue_at: datetime | None = None  # open and past the deadline at this moment
    due_between: tuple[datetime, datetime] | None = None  # open, deadline in [from, to)
    created_from: datetime | None = None
    created_before: datetime | None = None
    sort: str = "deadline"
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class ListedCase:
    """One line of the list."""

    case: Case
    description: str
    address: str | None
    source_channel: str | None
    changed_at: datetime | None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class CasePage:
    """A page of the list, how many match in all, and the counts per state."""

    cases: list[ListedCase]
    total: int
    by_state: dict[str, int] = field(default_factory=dict)


def like_pattern(text: str) -> str:
    """`text` as a LIKE pattern matching it anywhere, its wildcards escaped with `\\`."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _scope_sql(scopes: Sequence[tuple[str, str | None]]) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in scopes:
        if column not in SCOPE_COLUMNS:
            raise ValueError(f"not a scope column: {column}")
        if column == "*":
            return "1 = 1", []
        clauses.append(f"{column} = ?")
        params.append(value)
    return ("(" + " OR ".join(clauses) + ")", params) if clauses else ("1 = 0", [])


def where(query: CaseQuery, *, with_states: bool = True) -> tuple[str, list[Any]]:
    """The WHERE clause (without the word) and its parameters; `with_states=False` leaves
    the state filter out (for the counts per state)."""
    scope, params = _scope_sql(query.scopes)
    clauses = [scope]
    if with_states and query.states is not None:
        clauses.append(f"state IN ({', '.join('?' * len(query.states))})" if query.states
                       else "1 = 0")
        params += list(query.states)
    for column, value in (("category", query.category), ("urgency", query.urgency),
                          ("community_code", query.community), ("grid_code", query.grid),
                          ("source_channel", query.channel)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    open_marks = ", ".join("?" * len(OPEN_STATES))
    if query.overdue_at is not None:
        clauses.append(f"deadline < ? AND state IN ({open_marks})")
        params += [iso(query.overdue_at), *OPEN_STATES]
    if query.due_between is not None:
        clauses.append(f"deadline >= ? AND deadline < ? AND state IN ({open_marks})")
        params += [iso(query.due_between[0]), iso(query.due_between[1]), *OPEN_STATES]
    if query.created_from is not None:
        clauses.append("created_at >= ?")
        params.append(iso(query.created_from))
    if query.created_before is not None:
        clauses.append("created_at < ?")
        params.append(iso(query.created_before))
    if query.text:
        pattern = like_pattern(query.text)
        clauses.append("(description LIKE ? ESCAPE '\\' OR address LIKE ? ESCAPE '\\')")
        params += [pattern, pattern]
    return " AND ".join(clauses), params


def select_sql(query: CaseQuery) -> tuple[str, list[Any]]:
    """The page's SELECT (for the benchmark's EXPLAIN QUERY PLAN too)."""
    condition, params = where(query)
    order = SORTS.get(query.sort, SORTS["deadline"])
    sql = ("SELECT id, workflow, description, address, source_channel, changed_at, lat, lon"
           f" FROM cases WHERE {condition} ORDER BY {order} LIMIT ? OFFSET ?")
    return sql, [*params, max(1, min(query.limit, MAX_PAGE)), max(0, query.offset)]


def count_sql(query: CaseQuery) -> tuple[str, list[Any]]:
    """Counts per state of everything the filters other than the state match."""
    condition, params = where(query, with_states=False)
    return f"SELECT state, count(*) FROM cases WHERE {condition} GROUP BY state", params


async def page(conn: Connection, query: CaseQuery) -> CasePage:
    """One page of the list, the total matching, and the counts per state."""
    sql, params = select_sql(query)
    rows = await fetch(conn, sql, params)
    cases = [ListedCase(case_from_json(r[1], r[0]), r[2], r[3], r[4],
                        parse_iso(r[5]) if r[5] else None, r[6], r[7]) for r in rows]
    counted_sql, counted_params = count_sql(query)
    by_state = {str(r[0]): int(r[1]) for r in await fetch(conn, counted_sql, counted_params)}
    if query.states is None:
        total = sum(by_state.values())
    else:
        total = sum(n for state, n in by_state.items() if state in set(query.states))
    return CasePage(cases, total, by_state)


async def all_matching(conn: Connection, query: CaseQuery, limit: int = 50_000
                       ) -> list[ListedCase]:
    """Every case the filters match, in the list's order (the CSV export), up to `limit`."""
    condition, params = where(query)
    order = SORTS.get(query.sort, SORTS["deadline"])
    rows = await fetch(conn,
        "SELECT id, workflow, description, address, source_channel, changed_at, lat, lon"
        f" FROM cases WHERE {condition} ORDER BY {order} LIMIT ?", [*params, limit])
    return [ListedCase(case_from_json(r[1], r[0]), r[2], r[3], r[4],
                       parse_iso(r[5]) if r[5] else None, r[6], r[7]) for r in rows]


async def last_change(conn: Connection) -> int:
    """The id of the newest audit line anywhere: it grows whenever any case changes (the
    console's pages poll it to know when to refresh)."""
    rows = await fetch(conn, "SELECT max(id) FROM case_events")
    return int(rows[0][0] or 0)


async def case_version(conn: Connection, number: str) -> int | None:
    """A case's version, to tell whether it changed since a page showed it."""
    rows = await fetch(conn, "SELECT version FROM cases WHERE number = ?", (number,))
    return int(rows[0][0]) if rows else None

"""The console's map data: how many cases each grid holds (and how many of
them are overdue), and the cases as points, all under the list's own WHERE clause
(`store.caselist.where`: the same scope and filters as the case list)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.domain.clock import iso
from store.caselist import OPEN_SQL, CaseQuery
from store.caselist import where as list_where
from store.cases import OPEN_STATES
from store.db import Connection, fetch

# One case on the map: number, lat, lon, urgency, category, overdue (0/1). Plain tuples:
# a street's map holds tens of thousands of them.
MapPoint = tuple[str, float, float, str, str, int]


def _open_only(query: CaseQuery) -> bool:
    return query.states is not None and set(query.states) <= set(OPEN_STATES)


def where(query: CaseQuery) -> tuple[str, list[Any]]:
    """The list's WHERE clause; for some open states (one state, say), with the open
    cases' condition said too: it changes nothing, but lets the planner use the open
    cases' partial indexes. For open cases, the report dates are compared through an
    expression the created_at index cannot answer: open cases are all recent, a date
    bound leaves most of them, and through that index the planner read the table for
    each (90-130 ms for the district's, 2 ms from the covering index)."""
    if not _open_only(query):
        return list_where(query)
    condition, params = list_where(replace(query, created_from=None, created_before=None))
    if tuple(query.states or ()) != OPEN_STATES:
        condition += f" AND {OPEN_SQL}"
    for bound, operator in ((query.created_from, ">="), (query.created_before, "<")):
        if bound is not None:
            condition += f" AND coalesce(created_at, '') {operator} ?"
            params = [*params, iso(bound)]
    return condition, params


def _overdue_sql(query: CaseQuery, now: datetime) -> tuple[str, list[Any]]:
    """1 for a case open past its deadline. When the query reads open cases only, the
    state need not be asked again (and the open cases' indexes then hold all it needs)."""
    if _open_only(query):
        return "CASE WHEN deadline < ? THEN 1 ELSE 0 END", [iso(now)]
    marks = ", ".join("?" * len(OPEN_STATES))
    return (f"CASE WHEN deadline < ? AND state IN ({marks}) THEN 1 ELSE 0 END",
            [iso(now), *OPEN_STATES])


# One matching case as the map reads it: number, lat, lon, urgency, category, overdue
# (0/1), grid code.
MapRow = tuple[str, float | None, float | None, str, str, int, str | None]


# A view's bounds: west, south, east, north (degrees, as Leaflet's toBBoxString).
Box = tuple[float, float, float, float]


def cases_sql(query: CaseQuery, now: datetime, limit: int, *, newest_first: bool = False,
              within: Box | None = None, without_grid: bool = False
              ) -> tuple[str, list[Any]]:
    """The matching cases (the map counts them per grid and draws those with a place):
    the nearest deadline first, or (finished cases) the latest filed first; only those
    inside `within`, or only those in no grid. One query, read from a covering index for
    the open cases (for the benchmark's EXPLAIN QUERY PLAN too)."""
    condition, params = where(query)
    if within is not None:
        west, south, east, north = within
        condition += " AND lat BETWEEN ? AND ? AND lon BETWEEN ? AND ?"
        params = [*params, south, north, west, east]
    if without_grid:
        condition += " AND grid_code IS NULL AND lat IS NOT NULL"
    overdue, overdue_params = _overdue_sql(query, now)
    order = "id DESC" if newest_first else "deadline"
    return (f"SELECT number, lat, lon, urgency, category, {overdue}, grid_code FROM cases"
            f" WHERE {condition} ORDER BY {order} LIMIT ?", [*overdue_params, *params, limit])


async def matching_cases(conn: Connection, query: CaseQuery, now: datetime, limit: int, *,
                         newest_first: bool = False, within: Box | None = None,
                         without_grid: bool = False) -> list[MapRow]:
    """Up to `limit` matching cases, as the map reads them."""
    sql, params = cases_sql(query, now, limit, newest_first=newest_first, within=within,
                            without_grid=without_grid)
    return [(r[0], r[1], r[2], r[3], r[4], int(r[5]), r[6])
            for r in await fetch(conn, sql, params)]


def counts_sql(query: CaseQuery, now: datetime) -> tuple[str, list[Any]]:
    """How many cases match in each grid (NULL: in none) and how many of them are
    overdue: counted inside the database from the open cases' grid-led covering index
    (migration 0018), without a row per case coming out (for the benchmark's EXPLAIN
    QUERY PLAN too)."""
    condition, params = where(query)
    overdue, overdue_params = _overdue_sql(query, now)
    return (f"SELECT grid_code, count(*), sum({overdue}) FROM cases WHERE {condition}"
            " GROUP BY grid_code", [*overdue_params, *params])


async def counts_by_grid(conn: Connection, query: CaseQuery, now: datetime
                         ) -> list[tuple[str | None, int, int]]:
    """(grid code or None, matching cases, of them overdue), one row per grid that has
    any."""
    sql, params = counts_sql(query, now)
    return [(r[0], int(r[1]), int(r[2] or 0)) for r in await fetch(conn, sql, params)]

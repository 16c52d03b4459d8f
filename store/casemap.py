"""The console's map data: the grids' outlines, how many cases each holds (and how many of
them are overdue), and the cases as points, all under the list's own WHERE clause
(`store.caselist.where`: the same scope and filters as the case list)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.clock import iso
from store.caselist import CaseQuery, where
from store.cases import OPEN_STATES
from store.db import Connection, fetch


@dataclass(frozen=True)
class GridOutline:
    """A grid as the map draws it: its code, names, parent and GeoJSON geometry (as
    stored: JSON text)."""

    code: str
    name: str
    name_en: str | None
    parent: str | None
    geometry: str


@dataclass(frozen=True)
class MapPoint:
    """One case on the map."""

    number: str
    lat: float
    lon: float
    urgency: str
    category: str
    state: str
    overdue: bool


def _overdue_sql(now: datetime) -> tuple[str, list[Any]]:
    marks = ", ".join("?" * len(OPEN_STATES))
    return (f"CASE WHEN deadline < ? AND state IN ({marks}) THEN 1 ELSE 0 END",
            [iso(now), *OPEN_STATES])


async def grid_outlines(conn: Connection) -> list[GridOutline]:
    """Every grid with its outline, by code."""
    rows = await fetch(conn, "SELECT code, name, name_en, parent, geometry FROM areas"
                             " WHERE level = 'grid' ORDER BY code")
    return [GridOutline(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def counts_sql(query: CaseQuery, now: datetime) -> tuple[str, list[Any]]:
    """How many cases match per grid, and how many of those are open past their deadline
    (for the benchmark's EXPLAIN QUERY PLAN too)."""
    condition, params = where(query)
    overdue, overdue_params = _overdue_sql(now)
    return (f"SELECT grid_code, count(*), sum({overdue}) FROM cases WHERE {condition}"
            " GROUP BY grid_code", [*overdue_params, *params])


async def grid_counts(conn: Connection, query: CaseQuery, now: datetime
                      ) -> dict[str, tuple[int, int]]:
    """(matching, overdue) per grid code, for the cases the query matches."""
    sql, params = counts_sql(query, now)
    return {str(r[0]): (int(r[1]), int(r[2] or 0)) for r in await fetch(conn, sql, params)
            if r[0] is not None}


def points_sql(query: CaseQuery, now: datetime, limit: int) -> tuple[str, list[Any]]:
    """The matching cases that have a place, most urgent deadline first."""
    condition, params = where(query)
    overdue, overdue_params = _overdue_sql(now)
    return (f"SELECT number, lat, lon, urgency, category, state, {overdue} FROM cases"
            f" WHERE {condition} AND lat IS NOT NULL AND lon IS NOT NULL"
            " ORDER BY deadline IS NULL, deadline, id LIMIT ?",
            [*overdue_params, *params, limit])


async def points(conn: Connection, query: CaseQuery, now: datetime, limit: int
                 ) -> list[MapPoint]:
    """Up to `limit` matching cases with a place, as points."""
    sql, params = points_sql(query, now, limit)
    return [MapPoint(r[0], float(r[1]), float(r[2]), r[3], r[4], r[5], bool(r[6]))
            for r in await fetch(conn, sql, params)]

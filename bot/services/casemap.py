"""The console's map: the grids a person may see with their counts, and the cases as
points, under the case list's filters and scope (`caselist.Filters`, `caselist.query_for`:
one filter implementation for the list and the map).

A grid chief sees their grid's outline only, community staff their community's grids, a
dispatcher the street's; department staff (whose cases lie anywhere) and admins see every
grid. The counts and points come from the same scoped query as the list, so a grid outside
one's scope never carries a number either.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.workflow import Actor
from bot.services import caselist
from bot.services.caselist import Filters
from bot.services.districts import District
from store import casemap as map_store
from store import console as console_store
from store.cases import OPEN_STATES, StoredCase
from store.db import Connection

MAX_POINTS = 50_000  # a street's open cases fit many times over; past it the map says so
# Finished cases are most of a year's million: the map shows the latest filed this many
# (counts included) and says so, rather than read them all.
MAX_FINISHED = 2_000


@dataclass(frozen=True)
class MapGrid:
    """A grid on the map: its outline (GeoJSON text, as stored) and what it shows."""

    geometry: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class MapData:
    """What the map page draws: grids (outlines with counts) and points."""

    grids: list[MapGrid]
    points: list[map_store.MapPoint]
    truncated: bool

    def json_text(self) -> str:
        """The map's JSON: a FeatureCollection of grids and compact points ([number, lat,
        lon, urgency, category, overdue 0/1]). The outlines go in as stored (JSON written
        by the import), not parsed and written again: a thousand of them would cost more
        than the rest."""
        def compact(value: Any) -> str:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

        features = ",".join('{"type":"Feature","geometry":' + grid.geometry
                            + ',"properties":' + compact(grid.properties) + "}"
                            for grid in self.grids)
        return ('{"grids":{"type":"FeatureCollection","features":[' + features + ']},'
                '"points":' + compact(self.points)
                + ',"truncated":' + ("true" if self.truncated else "false") + "}")


def grid_visible(district: District, actors: Sequence[Actor], code: str) -> bool:
    """Whether a grid's outline is on this person's map (see the module docstring)."""
    scopes = caselist.scopes_for(actors)
    if any(column in ("*", "department") for column, _ in scopes):
        return True
    around = {code, district.ancestor(code, "community"), district.ancestor(code, "street")}
    return any(value in around for _, value in scopes)


async def map_data(conn: Connection, district: District, filters: Filters,
                   actors: Sequence[Actor], now: datetime, tz: ZoneInfo, locale: str,
                   with_cases: bool = True) -> MapData:
    """The grids this person may see, each with how many cases match the filters and how
    many of those are overdue, and the matching cases that have a place; without
    `with_cases`, the grids alone (counts 0, no points: the notice composer's map)."""
    found: list[map_store.MapRow] = []
    limit = 0
    if with_cases:
        query = caselist.query_for(filters, actors, now, tz)
        open_only = query.states is not None and set(query.states) <= set(OPEN_STATES)
        limit = MAX_POINTS if open_only else MAX_FINISHED
        found = await map_store.matching_cases(conn, query, now, limit + 1,
                                               newest_first=not open_only)
    truncated = len(found) > limit
    counts: dict[str, list[int]] = {}
    points: list[map_store.MapPoint] = []
    for number, lat, lon, urgency, category, overdue, grid_code in found[:limit]:
        if grid_code is not None:
            counted = counts.setdefault(grid_code, [0, 0])
            counted[0] += 1
            counted[1] += overdue
        if lat is not None and lon is not None:
            points.append((number, round(lat, 6), round(lon, 6), urgency, category, overdue))
    grids = []
    for grid in await map_store.grid_outlines(conn):
        if not grid_visible(district, actors, grid.code):
            continue
        shown, overdue = counts.get(grid.code, (0, 0))
        name = grid.name_en or grid.name if locale == "en" else grid.name
        grids.append(MapGrid(grid.geometry, {"code": grid.code, "name": name,
                                             "parent": grid.parent, "count": shown,
                                             "overdue": overdue}))
    return MapData(grids, points, truncated)


async def map_version(conn: Connection, filters: Filters, actors: Sequence[Actor],
                      now: datetime, locale: str, with_cases: bool = True) -> str:
    """An ETag for the map's data: it changes when any case changes, when the filters or
    the person's roles differ, and each minute (a case turns overdue with time alone)."""
    seen = json.dumps([await caselist.last_change(conn), filters.as_params(page=1),
                       caselist.scopes_for(actors), locale, now.strftime("%Y%m%d%H%M"),
                       with_cases])
    return hashlib.sha256(seen.encode()).hexdigest()[:24]


async def place(conn: Connection, stored: StoredCase) -> dict[str, Any]:
    """A case's small map: its grid's outline (a GeoJSON Feature, or None) and its point."""
    geometry = None
    if stored.case.grid_code:
        raw = await console_store.area_geometry(conn, stored.case.grid_code)
        geometry = json.loads(raw) if raw else None
    return {"grid": {"type": "Feature", "geometry": geometry,
                     "properties": {"code": stored.case.grid_code}} if geometry else None,
            "point": [stored.details.lat, stored.details.lon]
            if stored.details.lat is not None and stored.details.lon is not None else None,
            "urgency": stored.case.urgency}

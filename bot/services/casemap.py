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
from collections.abc import Callable, Sequence
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

# Finished cases are most of a year's million: the map shows the latest filed this many
# (counts included) and says so, rather than read them all.
MAX_FINISHED = 2_000
# The most open cases the map draws one by one. Past it the server counts per grid in SQL
# and sends no points (the page draws one marker per grid, as the clusters would look at
# that zoom anyway); zoomed in, the page asks for the points of its view's bounds, and
# gets them while they are at most this many. Reading every one of the district's 30,000
# open cases into Python took most of the map's time (README: Console map data).
POINTS_AT_ONCE = 2_000


@dataclass(frozen=True)
class MapGrid:
    """A grid on the map: its outline (GeoJSON text), names and what it holds."""

    code: str
    name: str
    parent: str | None
    geometry: str
    count: int
    overdue: int

    def feature(self) -> str:
        """The grid as a GeoJSON Feature (text: the outline goes in as written once)."""
        names = json.dumps({"code": self.code, "name": self.name, "parent": self.parent},
                           separators=(",", ":"), ensure_ascii=False)
        return ('{"type":"Feature","geometry":' + self.geometry + ',"properties":'
                + names[:-1] + f',"count":{int(self.count)},"overdue":{int(self.overdue)}}}}}')


@dataclass(frozen=True)
class MapData:
    """What the map page draws: grids (outlines with counts) and points; `aggregated`
    when there were too many points to send (the grids' counts stand for them), `total`
    the number of matching cases."""

    grids: list[MapGrid]
    points: list[map_store.MapPoint]
    truncated: bool
    aggregated: bool = False
    total: int = 0

    def json_text(self) -> str:
        """The map's JSON: a FeatureCollection of grids (properties: code, name, parent,
        count, overdue) and compact points ([number, lat, lon, urgency, category, overdue
        0/1])."""
        features = ",".join(grid.feature() for grid in self.grids)
        return ('{"grids":{"type":"FeatureCollection","features":[' + features + ']},'
                '"points":' + json.dumps(self.points, separators=(",", ":"),
                                         ensure_ascii=False)
                + ',"truncated":' + ("true" if self.truncated else "false")
                + ',"aggregated":' + ("true" if self.aggregated else "false")
                + ',"total":' + str(int(self.total)) + "}")


def bounds_from_param(text: str) -> map_store.Box | None:
    """A view's bounds from the `bbox` parameter ("west,south,east,north", degrees, as
    Leaflet's toBBoxString writes it); None when absent or malformed."""
    try:
        west, south, east, north = (float(part) for part in text.split(","))
    except ValueError:
        return None
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        return None
    return west, south, east, north


def grid_visibility(district: District, actors: Sequence[Actor]) -> Callable[[str], bool]:
    """Whether a grid's outline is on this person's map, by grid code (see the module
    docstring); their scopes read once."""
    scopes = caselist.scopes_for(actors)
    if any(column in ("*", "department") for column, _ in scopes):
        return lambda code: True
    values = {value for _, value in scopes}

    def visible(code: str) -> bool:
        return bool(values & {code, district.ancestor(code, "community"),
                              district.ancestor(code, "street")})
    return visible


async def map_data(conn: Connection, district: District, filters: Filters,
                   actors: Sequence[Actor], now: datetime, tz: ZoneInfo, locale: str,
                   within: map_store.Box | None = None, with_cases: bool = True
                   ) -> MapData:
    """The grids this person may see, each with how many cases match the filters and how
    many of those are overdue, and the matching cases that have a place: all of them up
    to POINTS_AT_ONCE, else those inside `within` (the page's view) while that many at
    most, else none (`aggregated`: the page draws the grids' counts). Without
    `with_cases`, the grids alone (counts 0, no points: the notice composer's map)."""
    query = caselist.query_for(filters, actors, now, tz)
    open_only = query.states is not None and set(query.states) <= set(OPEN_STATES)
    truncated = aggregated = False
    found: list[map_store.MapRow] = []
    counts: dict[str, tuple[int, int]] = {}
    total = 0
    if not with_cases:
        pass
    elif open_only:
        counted = await map_store.counts_by_grid(conn, query, now)
        total = sum(n for _, n, _ in counted)
        counts = {code: (n, late) for code, n, late in counted if code is not None}
        if total <= POINTS_AT_ONCE:
            found = await map_store.matching_cases(conn, query, now, POINTS_AT_ONCE)
        elif within is not None:
            found = await map_store.matching_cases(conn, query, now, POINTS_AT_ONCE + 1,
                                                   within=within)
            aggregated = len(found) > POINTS_AT_ONCE
        else:
            aggregated = True
        if aggregated:
            # the cases in no grid have no grid marker to stand for them: drawn one by one
            found = (await map_store.matching_cases(conn, query, now, POINTS_AT_ONCE,
                                                    within=within, without_grid=True)
                     if None in (code for code, _, _ in counted) else [])
    else:
        found = await map_store.matching_cases(conn, query, now, MAX_FINISHED + 1,
                                               newest_first=True)
        truncated = len(found) > MAX_FINISHED
        found = found[:MAX_FINISHED]
        total = len(found)
        tallies: dict[str, list[int]] = {}
        for row in found:
            if row[6] is not None:
                tally = tallies.setdefault(row[6], [0, 0])
                tally[0] += 1
                tally[1] += row[5]
        counts = {code: (n, late) for code, (n, late) in tallies.items()}
    points = [(number, round(lat, 6), round(lon, 6), urgency, category, overdue)
              for number, lat, lon, urgency, category, overdue, _ in found
              if lat is not None and lon is not None]
    visible = grid_visibility(district, actors)
    grids = [MapGrid(area.code, area.name_en or area.name if locale == "en" else area.name,
                     area.parent, outline, *counts.get(area.code, (0, 0)))
             for area, outline in district.grid_outlines() if visible(area.code)]
    return MapData(grids, points, truncated, aggregated, total)


async def map_version(conn: Connection, district: District, filters: Filters,
                      actors: Sequence[Actor], now: datetime, locale: str,
                      within: map_store.Box | None = None, with_cases: bool = True) -> str:
    """An ETag for the map's data: it changes when any case changes, when the district
    is imported again with other areas or buildings, when the filters, the view's bounds
    or the person's roles differ, and each minute (a case turns overdue with time
    alone)."""
    seen = json.dumps([await caselist.last_change(conn), district.digest,
                       filters.as_params(page=1), caselist.scopes_for(actors), locale,
                       now.strftime("%Y%m%d%H%M"), within, with_cases])
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

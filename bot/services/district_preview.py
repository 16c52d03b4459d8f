"""A district file's preview before it is applied: the areas it brings drawn over the
ones stored, as SVG paths (no tiles, no map library: the console draws it server-side).

Each shape says whether it is new, changes a stored area's boundary or name, or is as
stored; a buildings file shows the grids as stored and the buildings as points.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from bot.domain import geo
from store import areas as area_store
from store.db import Connection

WIDTH, HEIGHT, MARGIN = 900, 560, 16


@dataclass(frozen=True)
class Shape:
    """One area drawn: its code and name, the SVG path, where its label goes, and how it
    compares with the stored area ("new", "changed", "same")."""

    code: str
    name: str
    level: str
    path: str
    label_at: tuple[float, float]
    change: str


@dataclass(frozen=True)
class Dot:
    """One building drawn as a point."""

    name: str
    grid_code: str
    at: tuple[float, float]
    change: str


@dataclass(frozen=True)
class Preview:
    """The SVG box and what is in it, with counts by change."""

    width: int
    height: int
    shapes: list[Shape]
    dots: list[Dot]
    counts: dict[str, int]
    # drawn beneath, as lines: a changed area's boundary as stored ("before"), and the
    # stored grids the file leaves alone, for context ("context")
    outlines: list[Shape] = field(default_factory=list)


def _rings(geometry: BaseGeometry) -> list[list[tuple[float, float]]]:
    raw: dict[str, Any] = dict(mapping(geometry))
    polygons = [raw["coordinates"]] if raw["type"] == "Polygon" else list(raw["coordinates"])
    return [[(float(x), float(y)) for x, y, *_ in polygon[0]] for polygon in polygons]


class _Projection:
    """Longitude and latitude to the SVG box, north up, longitude scaled by latitude."""

    def __init__(self, points: Sequence[tuple[float, float]]) -> None:
        xs, ys = [p[0] for p in points] or [0.0], [p[1] for p in points] or [0.0]
        self.x0, self.y0 = min(xs), min(ys)
        self.squash = math.cos(math.radians((min(ys) + max(ys)) / 2))
        span_x = max((max(xs) - self.x0) * self.squash, 1e-9)
        span_y = max(max(ys) - self.y0, 1e-9)
        self.scale = min((WIDTH - 2 * MARGIN) / span_x, (HEIGHT - 2 * MARGIN) / span_y)

    def __call__(self, x: float, y: float) -> tuple[float, float]:
        return (round(MARGIN + (x - self.x0) * self.squash * self.scale, 1),
                round(HEIGHT - MARGIN - (y - self.y0) * self.scale, 1))

    def path(self, rings: Iterable[list[tuple[float, float]]]) -> str:
        return " ".join("M " + " L ".join(f"{px} {py}" for px, py in
                                          (self(x, y) for x, y in ring)) + " Z"
                        for ring in rings)


def _count(changes: Iterable[str]) -> dict[str, int]:
    counts = {"new": 0, "changed": 0, "same": 0}
    for change in changes:
        counts[change] += 1
    return counts


async def of_areas(conn: Connection, features: Sequence[geo.AreaFeature]) -> Preview:
    """The areas of a checked GeoJSON file, compared with the stored ones: the smallest
    level drawn filled, the others as outlines beneath."""
    stored = {a.code: a for a in await area_store.all_areas(conn)}
    codes = {f.code for f in features}
    levels = {f.level for f in features}
    around = [(a, shape(a.geometry)) for a in stored.values()
              if a.level in levels and a.code not in codes]
    points = [p for f in features for ring in _rings(f.geometry) for p in ring]
    points += [p for _, g in around for ring in _rings(g) for p in ring]
    project = _Projection(points)
    outlines = []
    for area, geometry in around:
        centre = geometry.representative_point()
        outlines.append(Shape(area.code, area.name, area.level,
                              project.path(_rings(geometry)),
                              project(centre.x, centre.y), "context"))
    shapes = []
    for f in sorted(features, key=lambda f: geo.LEVELS.index(f.level)):
        before = stored.get(f.code)
        if before is None:
            change = "new"
        elif (not shape(before.geometry).equals(f.geometry) or before.name != f.name
              or before.parent != f.parent):
            change = "changed"
        else:
            change = "same"
        centre = f.geometry.representative_point()
        shapes.append(Shape(f.code, f.name, f.level, project.path(_rings(f.geometry)),
                            project(centre.x, centre.y), change))
        if change == "changed" and before is not None:
            outlines.append(Shape(f.code, before.name, before.level,
                                  project.path(_rings(shape(before.geometry))),
                                  project(centre.x, centre.y), "before"))
    return Preview(WIDTH, HEIGHT, shapes, [], _count(s.change for s in shapes), outlines)


async def of_buildings(conn: Connection, buildings: Sequence[geo.Building]) -> Preview:
    """The buildings of a checked CSV file as points over the stored grids."""
    grids = [a for a in await area_store.all_areas(conn) if a.level == "grid"]
    known = {(b.grid_code, b.name): b for b in await area_store.all_buildings(conn)}
    geometries = {a.code: shape(a.geometry) for a in grids}
    points = [p for g in geometries.values() for ring in _rings(g) for p in ring]
    points += [(b.lon, b.lat) for b in buildings if b.lat is not None and b.lon is not None]
    project = _Projection(points)
    shapes = []
    for area in grids:
        centre = geometries[area.code].representative_point()
        shapes.append(Shape(area.code, area.name, area.level,
                            project.path(_rings(geometries[area.code])),
                            project(centre.x, centre.y), "same"))
    dots = []
    changes = []
    for b in buildings:
        before = known.get((b.grid_code, b.name))
        change = "new" if before is None else (
            "same" if (before.address, before.lat, before.lon) == (b.address, b.lat, b.lon)
            else "changed")
        changes.append(change)
        if b.lat is not None and b.lon is not None:
            dots.append(Dot(b.name, b.grid_code, project(b.lon, b.lat), change))
    return Preview(WIDTH, HEIGHT, shapes, dots, _count(changes))


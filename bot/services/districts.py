"""The district in memory: area names, the grid index, buildings; and importing them.

Imports are all-or-nothing: the file is parsed and checked whole (`bot.geo`) before one
row is written, and the rows are written in one transaction.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shapely.geometry import mapping, shape

from bot.domain import geo
from store import areas as area_store
from store import people as people_store
from store.db import Database

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


@dataclass(frozen=True)
class Area:
    """An area's name and place in the tree."""

    code: str
    name: str
    name_en: str | None
    level: str
    parent: str | None

    def display(self, locale: str) -> str:
        """The area's name in a locale (English falls back to the Chinese name)."""
        return self.name_en or self.name if locale.startswith("en") else self.name


@dataclass(frozen=True)
class Place:
    """Where a report is: a grid (or none), with how we found it."""

    grid_code: str | None
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    building_id: int | None = None
    building_name: str | None = None
    note: str | None = None


class District:
    """Everything about the areas that the flows ask, answered from memory."""

    def __init__(self, areas: list[Area], features: list[geo.AreaFeature],
                 buildings: list[area_store.BuildingRow]) -> None:
        self.areas = {a.code: a for a in areas}
        self.index = geo.GridIndex(features)
        self.buildings = {b.id: b for b in buildings}
        self._building_ids = {(b.grid_code, b.name): b.id for b in buildings}
        self.matcher = geo.BuildingMatcher(
            [geo.Building(b.name, b.address, b.grid_code, b.lat, b.lon) for b in buildings])

    @classmethod
    async def load(cls, db: Database) -> District:
        """Read the areas and buildings from the database."""
        rows = await area_store.all_areas(db.conn)
        areas = [Area(r.code, r.name, r.name_en, r.level, r.parent) for r in rows]
        features = [geo.AreaFeature(code=r.code, name=r.name, level=r.level, parent=r.parent,
                                    geometry=shape(r.geometry), name_en=r.name_en)
                    for r in rows]
        return cls(areas, features, await area_store.all_buildings(db.conn))

    def ancestor(self, code: str | None, level: str) -> str | None:
        """The code of the area at `level` that contains `code` (itself if it is that level)."""
        while code is not None:
            area = self.areas.get(code)
            if area is None:
                return None
            if area.level == level:
                return code
            code = area.parent
        return None

    def top_street(self) -> str | None:
        """The street a report goes to when no grid is found (the first street)."""
        streets = sorted(c for c, a in self.areas.items() if a.level == "street")
        return streets[0] if streets else None

    def name(self, code: str | None, locale: str) -> str:
        """An area's display name, or the code itself when unknown."""
        if code is None:
            return ""
        area = self.areas.get(code)
        return area.display(locale) if area else code

    def locate_point(self, lat: float, lon: float) -> Place:
        """The grid a GPS point falls in (grid None when outside every grid)."""
        return Place(self.index.locate(lat, lon), lat=lat, lon=lon)

    def locate_text(self, text: str) -> Place | None:
        """A grid code or a known building named in typed text, else None."""
        code = text.strip()
        if code in self.areas and self.areas[code].level == "grid":
            return Place(code, address=code)
        building = self.matcher.match(text)
        if building is None:
            return None
        return Place(building.grid_code, lat=building.lat, lon=building.lon,
                     address=building.address,
                     building_id=self._building_ids.get((building.grid_code, building.name)),
                     building_name=building.name)


async def import_geojson(db: Database, data: object, now: datetime) -> int:
    """Import (or update in place) the areas of a GeoJSON FeatureCollection; return a count."""
    known = {a.code: a.level for a in await area_store.all_areas(db.conn)}
    features = geo.parse_areas_geojson(data, known_parents=known)
    rows = [area_store.AreaRow(f.code, f.name, f.name_en, f.level, f.parent,
                               dict(mapping(f.geometry))) for f in features]
    async with db.transaction() as conn:
        await area_store.upsert_areas(conn, rows, now)
    return len(rows)


async def import_buildings(db: Database, text: str) -> int:
    """Import buildings from CSV text (name,address,grid_code,lat,lon); return a count."""
    grids = {a.code for a in await area_store.all_areas(db.conn) if a.level == "grid"}
    buildings = geo.parse_buildings_csv(text, known_grids=grids)
    async with db.transaction() as conn:
        await area_store.upsert_buildings(
            conn, [(b.name, b.address, b.grid_code, b.lat, b.lon) for b in buildings])
    return len(buildings)


async def import_staff(db: Database, text: str, now: datetime) -> int:
    """Load grid chiefs from CSV text (grid_code,name,phone,duties); return a count."""
    rows = list(csv.DictReader(io.StringIO(text)))
    async with db.transaction() as conn:
        for row in rows:
            person_id = await people_store.add_person(
                conn, row["name"], now, phone=row.get("phone") or None,
                grid_code=row["grid_code"], duties=row.get("duties") or None)
            await people_store.grant_role(conn, person_id, "grid_chief", row["grid_code"], now)
    return len(rows)


async def load_demo(db: Database, now: datetime) -> None:
    """Fill an empty database with the demo district: areas, buildings, grid chiefs."""
    data = json.loads((DEMO / "district.geojson").read_text(encoding="utf-8"))
    await import_geojson(db, data, now)
    await import_buildings(db, (DEMO / "buildings.csv").read_text(encoding="utf-8"))
    await import_staff(db, (DEMO / "staff.csv").read_text(encoding="utf-8"), now)
    # Each demo chief can be played in the web simulator as "chief-<last 4 digits of grid>".
    async with db.transaction() as conn:
        for area in await area_store.all_areas(conn):
            chief = await people_store.holder_of(conn, "grid_chief", area.code)
            if area.level == "grid" and chief is not None:
                await people_store.add_contact(conn, chief.id, "sim-telegram",
                                               f"web:chief-{area.code[-4:]}", now)

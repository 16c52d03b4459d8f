"""The district in memory: area names, the grid index, buildings; and importing them.

Imports are all-or-nothing: the file is parsed and checked whole (`bot.geo`) before one
row is written, and the rows are written in one transaction.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shapely.geometry import mapping, shape

from bot.domain import geo
from bot.domain.messages import Localized, Location
from store import areas as area_store
from store import people as people_store
from store.db import Database

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
NEAR_BUILDING_M = 200.0  # a pin this close to a known building is "near" it


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


def _digest(areas: list[Area], features: list[geo.AreaFeature],
            buildings: list[area_store.BuildingRow]) -> str:
    """What the district holds, as a short hash: the same in every process that loaded the
    same areas and buildings; another after an import changed any (the map's ETag)."""
    seen = hashlib.sha256()
    for area in sorted(areas, key=lambda a: a.code):
        seen.update(repr((area.code, area.name, area.name_en, area.level, area.parent))
                    .encode())
    for feature in sorted(features, key=lambda f: f.code):
        seen.update(feature.code.encode() + feature.geometry.wkb)
    for building in sorted(buildings, key=lambda b: b.id):
        seen.update(repr(building).encode())
    return seen.hexdigest()[:16]


class District:
    """Everything about the areas that the flows ask, answered from memory."""

    def __init__(self, areas: list[Area], features: list[geo.AreaFeature],
                 buildings: list[area_store.BuildingRow]) -> None:
        self.areas = {a.code: a for a in areas}
        self.index = geo.GridIndex(features)
        self.buildings = {b.id: b for b in buildings}
        self._building_ids = {(b.grid_code, b.name): b.id for b in buildings}
        self.matcher = geo.BuildingMatcher(
            [geo.Building(b.name, b.address, b.grid_code, b.lat, b.lon, b.name_en,
                          b.address_en) for b in buildings])
        self._grids = sorted((f for f in features if f.level == "grid"), key=lambda f: f.code)
        self._grid_geojson: list[tuple[Area, str]] | None = None
        self.digest = _digest(areas, features, buildings)

    def grid_outlines(self) -> list[tuple[Area, str]]:
        """Every grid, by code, with its outline as GeoJSON text: written once per
        district (the console's map sends a thousand of them with every answer)."""
        if self._grid_geojson is None:
            self._grid_geojson = [
                (self.areas[f.code], json.dumps(mapping(f.geometry), separators=(",", ":")))
                for f in self._grids if f.code in self.areas]
        return self._grid_geojson

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

    def label(self, code: str | None, locale: str) -> str:
        """An area as staff read it: a grid's name with its code ("翠苑一区第1网格
        33010600100101"), as the assignment's place shows it; any other area by name."""
        name = self.name(code, locale)
        area = self.areas.get(code) if code is not None else None
        return f"{name} {code}" if area is not None and area.level == "grid" else name

    def locate_point(self, lat: float, lon: float) -> Place:
        """The grid a GPS point falls in (grid None when outside every grid)."""
        return Place(self.index.locate(lat, lon), lat=lat, lon=lon)

    def locate_text(self, text: str) -> Place | None:
        """A grid code or the one known building named in typed text, else None (also
        when several buildings match about equally well: see `find_text`)."""
        found = self.find_text(text)
        return found[0] if len(found) == 1 else None

    def find_text(self, text: str) -> list[Place]:
        """The places typed text may mean: a grid code, or the buildings that match it
        best (several when it is ambiguous, e.g. "3号楼"); empty when none."""
        code = text.strip()
        if code in self.areas and self.areas[code].level == "grid":
            return [Place(code, address=code)]
        return [self.building_place(self._building_ids[(b.grid_code, b.name)])
                for b in self.matcher.candidates(text)]

    def building_place(self, building_id: int) -> Place:
        """The place of a known building."""
        b = self.buildings[building_id]
        return Place(b.grid_code, lat=b.lat, lon=b.lon, address=b.address,
                     building_id=b.id, building_name=b.name)

    def building_name(self, building_id: int | None, locale: str) -> str:
        """A building's name in a locale (English falls back to Chinese); "" if unknown."""
        b = self.buildings.get(building_id) if building_id is not None else None
        if b is None:
            return ""
        return b.name_en or b.name if locale.startswith("en") else b.name

    def building_address(self, building_id: int | None, locale: str) -> str:
        """A building's address in a locale (English falls back to Chinese); "" if unknown."""
        b = self.buildings.get(building_id) if building_id is not None else None
        if b is None:
            return ""
        return b.address_en or b.address if locale.startswith("en") else b.address

    def describe(self, grid_code: str | None, *, building_id: int | None = None,
                 lat: float | None = None, lon: float | None = None,
                 address: str | None = None) -> tuple[Localized, Localized, Location | None]:
        """Where a case is, for the person who must go there: the full text (building or
        the one nearest a pin, its address, the grid's name and code), a short one (the
        building, or the address typed), and the point to show on a map, if known."""
        near = False
        building = self.buildings.get(building_id) if building_id is not None else None
        if building is None and lat is not None and lon is not None:
            building, near = self.nearest_building(lat, lon), True
        if building is not None and (lat is None or lon is None):
            lat, lon = building.lat, building.lon
        texts: dict[str, tuple[str, str, str]] = {}
        for locale in ("zh_CN", "en"):
            title, where = "", ""
            if building is not None:
                name = self.building_name(building.id, locale)
                title = (f"{name}附近" if locale == "zh_CN" else f"near {name}") if near else name
                where = self.building_address(building.id, locale)
            elif address:
                title = address
            elif lat is not None and lon is not None:
                title = f"{lat:.5f}, {lon:.5f}"
            grid = self.label(grid_code, locale) if grid_code else ""
            full = ", ".join(part for part in (title, where) if part)
            if grid:
                full = f"{full} ({grid})" if full else grid
            texts[locale] = (full, title, ", ".join(p for p in (where, grid) if p))
        location = None
        if lat is not None and lon is not None:
            location = Location(lat, lon, Localized(texts["zh_CN"][1], texts["en"][1]),
                                Localized(texts["zh_CN"][2], texts["en"][2]))
        return (Localized(texts["zh_CN"][0], texts["en"][0]),
                Localized(texts["zh_CN"][1], texts["en"][1]), location)

    def nearest_building(self, lat: float, lon: float,
                         within_m: float = NEAR_BUILDING_M) -> area_store.BuildingRow | None:
        """The known building closest to a point, if one is within `within_m` metres."""
        best: tuple[float, area_store.BuildingRow] | None = None
        for b in self.buildings.values():
            if b.lat is None or b.lon is None:
                continue
            distance = geo.distance_m(lat, lon, b.lat, b.lon)
            if distance <= within_m and (best is None or distance < best[0]):
                best = (distance, b)
        return best[1] if best else None


async def check_geojson(db: Database, data: object) -> list[geo.AreaFeature]:
    """The areas of a GeoJSON FeatureCollection, checked whole against the stored ones
    (parents, levels, valid polygons); the first problem raises GeoImportError naming the
    feature, numbered from 1. Nothing is written."""
    known = {a.code: a.level for a in await area_store.all_areas(db.conn)}
    return geo.parse_areas_geojson(data, known_parents=known)


async def check_buildings(db: Database, text: str) -> list[geo.Building]:
    """The buildings of a CSV text, checked whole (the first problem raises ValueError
    naming the line, numbered from 1). Nothing is written."""
    grids = {a.code for a in await area_store.all_areas(db.conn) if a.level == "grid"}
    return geo.parse_buildings_csv(text, known_grids=grids)


async def import_geojson(db: Database, data: object, now: datetime) -> int:
    """Import (or update in place) the areas of a GeoJSON FeatureCollection; return a count."""
    features = await check_geojson(db, data)
    rows = [area_store.AreaRow(f.code, f.name, f.name_en, f.level, f.parent,
                               dict(mapping(f.geometry))) for f in features]
    async with db.transaction() as conn:
        await area_store.upsert_areas(conn, rows, now)
        await area_store.mark_changed(conn)  # every running process reloads its index
    return len(rows)


async def import_buildings(db: Database, text: str) -> int:
    """Import buildings from CSV text (name,address,grid_code,lat,lon, optionally
    name_en,address_en); return a count."""
    buildings = await check_buildings(db, text)
    async with db.transaction() as conn:
        await area_store.upsert_buildings(
            conn, [(b.name, b.address, b.grid_code, b.lat, b.lon, b.name_en, b.address_en)
                   for b in buildings])
        await area_store.mark_changed(conn)  # every running process reloads its index
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


async def import_street_staff(db: Database, text: str, now: datetime) -> int:
    """Load staff with any role from CSV text (role,scope,name,phone,duties): the demo's
    street dispatcher (who signs in to the console) and a sanitation department member."""
    rows = list(csv.DictReader(io.StringIO(text)))
    async with db.transaction() as conn:
        for row in rows:
            person_id = await people_store.add_person(
                conn, row["name"], now, phone=row.get("phone") or None,
                duties=row.get("duties") or None)
            await people_store.grant_role(conn, person_id, row["role"],
                                          row.get("scope") or None, now)
    return len(rows)


async def load_demo(db: Database, now: datetime) -> None:
    """Fill an empty database with the demo district: areas, buildings, grid chiefs."""
    data = json.loads((DEMO / "district.geojson").read_text(encoding="utf-8"))
    await import_geojson(db, data, now)
    await import_buildings(db, (DEMO / "buildings.csv").read_text(encoding="utf-8"))
    await import_staff(db, (DEMO / "staff.csv").read_text(encoding="utf-8"), now)
    await import_street_staff(db, (DEMO / "street_staff.csv").read_text(encoding="utf-8"), now)
    # Each demo chief can be played in the web simulator as "chief-<last 4 digits of grid>".
    async with db.transaction() as conn:
        for area in await area_store.all_areas(conn):
            chief = await people_store.holder_of(conn, "grid_chief", area.code)
            if area.level == "grid" and chief is not None:
                await people_store.add_contact(conn, chief.id, "sim-telegram",
                                               f"web:chief-{area.code[-4:]}", now)

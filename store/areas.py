"""Areas (street, community, grid) with their GeoJSON outlines, and buildings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.clock import iso
from store.db import Connection, fetch


@dataclass(frozen=True)
class AreaRow:
    """One area as stored."""

    code: str
    name: str
    name_en: str | None
    level: str
    parent: str | None
    geometry: dict[str, Any]


@dataclass(frozen=True)
class BuildingRow:
    """One building as stored."""

    id: int
    name: str
    address: str
    grid_code: str
    lat: float | None
    lon: float | None
    name_en: str | None = None
    address_en: str | None = None


# name, address, grid_code, lat, lon, name_en, address_en
BuildingValues = tuple[str, str, str, float | None, float | None, str | None, str | None]


async def upsert_areas(conn: Connection, areas: Sequence[AreaRow], now: datetime) -> None:
    """Insert new areas and update known ones in place (parents must come first)."""
    await conn.executemany(
        "INSERT INTO areas (code, name, name_en, level, parent, geometry, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (code) DO UPDATE SET name = excluded.name,"
        " name_en = excluded.name_en, level = excluded.level, parent = excluded.parent,"
        " geometry = excluded.geometry, updated_at = excluded.updated_at",
        [(a.code, a.name, a.name_en, a.level, a.parent, json.dumps(a.geometry), iso(now))
         for a in areas])


async def all_areas(conn: Connection) -> list[AreaRow]:
    """Every area, parents before children."""
    rows = await fetch(conn,
        "SELECT code, name, name_en, level, parent, geometry FROM areas ORDER BY"
        " CASE level WHEN 'district' THEN 0 WHEN 'street' THEN 1 WHEN 'community' THEN 2"
        " ELSE 3 END, code")
    return [AreaRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]


async def count_areas(conn: Connection) -> int:
    """How many areas are stored (0 means a fresh database)."""
    rows = await fetch(conn, "SELECT count(*) FROM areas")
    return int(rows[0][0])


async def upsert_buildings(
    conn: Connection,
    buildings: Sequence[BuildingValues],
) -> None:
    """Insert or update buildings given as (name, address, grid_code, lat, lon, name_en,
    address_en)."""
    await conn.executemany(
        "INSERT INTO buildings (name, address, grid_code, lat, lon, name_en, address_en)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (grid_code, name) DO UPDATE SET address = excluded.address,"
        " lat = excluded.lat, lon = excluded.lon, name_en = excluded.name_en,"
        " address_en = excluded.address_en", buildings)


async def all_buildings(conn: Connection) -> list[BuildingRow]:
    """Every building."""
    rows = await fetch(conn,
        "SELECT id, name, address, grid_code, lat, lon, name_en, address_en FROM buildings"
        " ORDER BY id")
    return [BuildingRow(*r) for r in rows]

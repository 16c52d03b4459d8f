"""Areas (street, community, grid) with their GeoJSON outlines, and buildings."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.clock import iso
from store.db import Connection, fetch
from store.pg import PgConnection


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


# --- telling every process that the areas changed ----------------------------------------

# Each process keeps the grid index in memory (bot/services/districts.py). An import marks
# the change in the database (a fresh value in schedule_marks) and, on PostgreSQL, NOTIFYs
# this channel; processes LISTEN for it and, as the backstop, compare the mark each tick.
AREAS_CHANNEL = "gridbot_areas"
_MARK = "areas_version"


async def mark_changed(conn: Connection) -> None:
    """Record (in the caller's transaction) that areas or buildings changed."""
    value = uuid.uuid4().hex
    await conn.execute("INSERT INTO schedule_marks (name, value) VALUES (?, ?)"
                       " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                       (_MARK, value))
    if isinstance(conn, PgConnection):  # delivered when the transaction commits
        await conn.execute_raw("SELECT pg_notify(%s, %s)", (AREAS_CHANNEL, value))


async def change_mark(conn: Connection) -> str | None:
    """The latest change's mark (None: nothing imported since the database was made)."""
    rows = await fetch(conn, "SELECT value FROM schedule_marks WHERE name = ?", (_MARK,))
    return str(rows[0][0]) if rows else None


class AreaListener:
    """A connection of its own that LISTENs for area changes (PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.conn = PgConnection(url)
        self._listening = False

    async def wait(self, seconds: float) -> bool:
        """Wait for a change notice, at most `timeout` seconds; True when one came."""
        raw = self.conn.raw
        if raw is None or raw.closed or raw.broken or not self._listening:
            self._listening = False
            await self.conn.execute_raw(f"LISTEN {AREAS_CHANNEL}")
            self._listening = True
            raw = self.conn.raw
        assert raw is not None
        async for _ in raw.notifies(timeout=seconds, stop_after=1):
            return True
        return False

    async def close(self) -> None:
        """Stop listening."""
        await self.conn.close()

"""The household archive: households under buildings, who read them, visits against them,
cases linked to them, and the audit of deletions (no personal data in it)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.domain.clock import iso, parse_iso
from bot.domain.households import HouseholdRow
from store.db import Connection, Row, fetch


@dataclass(frozen=True)
class Household:
    """One household as stored."""

    id: int
    building_id: int
    grid_code: str
    unit: str
    room: str
    head_name: str
    phone: str | None
    people: int
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime

    @property
    def door(self) -> str:
        """Unit and room as people say them: "2-301", or "301" without a unit."""
        return f"{self.unit}-{self.room}" if self.unit else self.room


COLUMNS = ("id, building_id, grid_code, unit, room, head_name, phone, people, tags,"
           " created_at, updated_at")


def _household(row: Row) -> Household:
    return Household(int(row[0]), int(row[1]), row[2], row[3], row[4], row[5], row[6],
                     int(row[7]), tuple(json.loads(row[8])), parse_iso(row[9]),
                     parse_iso(row[10]))


async def upsert(conn: Connection, rows: Sequence[HouseholdRow],
                 grid_of: dict[int, str], now: datetime) -> tuple[int, int]:
    """Insert new households and update known ones (same building, unit and room);
    return (added, updated)."""
    added = updated = 0
    for row in rows:
        found = await fetch(conn, "SELECT id FROM households WHERE building_id = ?"
                            " AND unit = ? AND room = ?", (row.building_id, row.unit, row.room))
        values = (row.head_name, row.phone, row.people, json.dumps(list(row.tags)))
        if found:
            await conn.execute(
                "UPDATE households SET head_name = ?, phone = ?, people = ?, tags = ?,"
                " grid_code = ?, updated_at = ? WHERE id = ?",
                (*values, grid_of[row.building_id], iso(now), found[0][0]))
            updated += 1
        else:
            await conn.execute(
                "INSERT INTO households (building_id, grid_code, unit, room, head_name,"
                " phone, people, tags, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row.building_id, grid_of[row.building_id], row.unit, row.room, *values,
                 iso(now), iso(now)))
            added += 1
    return added, updated


async def get(conn: Connection, household_id: int) -> Household | None:
    """A household by id."""
    rows = await fetch(conn, f"SELECT {COLUMNS} FROM households WHERE id = ?",
                       (household_id,))
    return _household(rows[0]) if rows else None


async def in_building(conn: Connection, building_id: int) -> list[Household]:
    """The households of a building, by unit and room."""
    rows = await fetch(conn, f"SELECT {COLUMNS} FROM households WHERE building_id = ?"
                       " ORDER BY unit, room, id", (building_id,))
    return [_household(r) for r in rows]


async def in_grids(conn: Connection, grids: Sequence[str]) -> list[Household]:
    """The households of some grids."""
    if not grids:
        return []
    marks = ", ".join("?" * len(grids))
    rows = await fetch(conn, f"SELECT {COLUMNS} FROM households WHERE grid_code IN ({marks})"
                       " ORDER BY grid_code, building_id, unit, room", list(grids))
    return [_household(r) for r in rows]


async def with_phone(conn: Connection, phones: Sequence[str]) -> list[Household]:
    """The households whose phone is one of `phones` (E.164 and other spellings)."""
    if not phones:
        return []
    marks = ", ".join("?" * len(phones))
    rows = await fetch(conn, f"SELECT {COLUMNS} FROM households WHERE phone IN ({marks})"
                       " ORDER BY id", list(phones))
    return [_household(r) for r in rows]


async def last_visits(conn: Connection, ids: Sequence[int]) -> dict[int, datetime]:
    """The time of each household's latest visit (households never visited are absent)."""
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    rows = await fetch(conn, f"SELECT household_id, MAX(at) FROM visits WHERE household_id"
                       f" IN ({marks}) GROUP BY household_id", list(ids))
    return {int(r[0]): parse_iso(r[1]) for r in rows}


async def log_reads(conn: Connection, ids: Iterable[int], person_id: int, role: str,
                    what: str, now: datetime) -> None:
    """Record that a staff member read these households' records."""
    await conn.executemany(
        "INSERT INTO household_reads (household_id, person_id, role, what, at)"
        " VALUES (?, ?, ?, ?, ?)", [(i, person_id, role, what, iso(now)) for i in ids])


@dataclass(frozen=True)
class ReadLine:
    """One logged read of a household's record."""

    person_id: int
    role: str
    what: str
    at: datetime


async def reads(conn: Connection, household_id: int) -> list[ReadLine]:
    """Who read a household's record, oldest first."""
    rows = await fetch(conn, "SELECT person_id, role, what, at FROM household_reads"
                       " WHERE household_id = ? ORDER BY id", (household_id,))
    return [ReadLine(int(r[0]), r[1], r[2], parse_iso(r[3])) for r in rows]


async def delete(conn: Connection, household_id: int, person_id: int, role: str,
                 now: datetime) -> bool:
    """Delete a household: its visits and cases keep their text but lose the link, and an
    audit line without personal data is kept. False when there is no such household."""
    found = await get(conn, household_id)
    if found is None:
        return False
    await conn.execute("UPDATE visits SET household_id = NULL WHERE household_id = ?",
                       (household_id,))
    await conn.execute("DELETE FROM case_households WHERE household_id = ?", (household_id,))
    await conn.execute("DELETE FROM households WHERE id = ?", (household_id,))
    await conn.execute(
        "INSERT INTO household_audit (household_id, grid_code, action, person_id, role, at)"
        " VALUES (?, ?, 'delete', ?, ?, ?)",
        (household_id, found.grid_code, person_id, role, iso(now)))
    return True


async def audit(conn: Connection) -> list[Row]:
    """The archive's audit lines: (household id, grid, action, person id, role, at)."""
    return await fetch(conn, "SELECT household_id, grid_code, action, person_id, role, at"
                       " FROM household_audit ORDER BY id")


async def add_visit(conn: Connection, person_id: int, grid_code: str | None, building: str,
                    household: str, raised: str, now: datetime, *,
                    household_id: int | None = None, building_id: int | None = None,
                    follow_up: str | None = None) -> int:
    """Log a visit, against a registered household when there is one."""
    rows = await fetch(
        conn, "INSERT INTO visits (person_id, grid_code, building, household, raised, at,"
        " household_id, building_id, follow_up) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id", (person_id, grid_code, building, household, raised, iso(now),
                          household_id, building_id, follow_up))
    return int(rows[0][0])


@dataclass(frozen=True)
class VisitLine:
    """One logged visit."""

    id: int
    person_id: int
    at: datetime
    raised: str
    follow_up: str | None


async def visits_of(conn: Connection, household_id: int, limit: int = 5) -> list[VisitLine]:
    """A household's latest visits, newest first."""
    rows = await fetch(conn, "SELECT id, person_id, at, raised, follow_up FROM visits"
                       " WHERE household_id = ? ORDER BY at DESC, id DESC LIMIT ?",
                       (household_id, limit))
    return [VisitLine(int(r[0]), int(r[1]), parse_iso(r[2]), r[3], r[4]) for r in rows]


async def visit_count(conn: Connection, household_id: int) -> int:
    """How many visits a household has had."""
    rows = await fetch(conn, "SELECT COUNT(*) FROM visits WHERE household_id = ?",
                       (household_id,))
    return int(rows[0][0])


async def visits_between(conn: Connection, start: datetime, end: datetime
                         ) -> list[tuple[str | None, int, bool, bool]]:
    """Visits in [start, end): (grid, visitor, against a household, follow-up needed)."""
    rows = await fetch(conn, "SELECT grid_code, person_id, household_id, follow_up FROM visits"
                       " WHERE at >= ? AND at < ?", (iso(start), iso(end)))
    return [(r[0], int(r[1]), r[2] is not None, bool(r[3])) for r in rows]


async def link_case(conn: Connection, case_id: int, household_id: int,
                    person_id: int | None, now: datetime) -> None:
    """Link a case to a household (a case has at most one)."""
    await conn.execute(
        "INSERT INTO case_households (case_id, household_id, linked_by, linked_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (case_id) DO UPDATE SET"
        " household_id = excluded.household_id, linked_by = excluded.linked_by,"
        " linked_at = excluded.linked_at", (case_id, household_id, person_id, iso(now)))


async def household_of_case(conn: Connection, case_id: int) -> int | None:
    """The household a case is linked to, if any."""
    rows = await fetch(conn, "SELECT household_id FROM case_households WHERE case_id = ?",
                       (case_id,))
    return int(rows[0][0]) if rows else None


async def cases_of(conn: Connection, household_id: int) -> list[str]:
    """The numbers of the cases linked to a household, newest first."""
    rows = await fetch(conn, "SELECT c.number FROM case_households h JOIN cases c"
                       " ON c.id = h.case_id WHERE h.household_id = ? ORDER BY c.id DESC",
                       (household_id,))
    return [r[0] for r in rows]

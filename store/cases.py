"""Cases, their append-only audit trail, followers, and the case number sequence.

A case row keeps the pure model (`bot.workflow.Case`) as JSON, with the fields that
queries filter on copied into columns, and the report's details (description, place);
what the monthly indicators need of it is copied again into a narrow row of case_facts.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain.clock import iso, parse_iso
from bot.domain.workflow import AuditRecord, Case, State
from store import schedule
from store.db import Connection, Row, fetch, new_id

OPEN_STATES = tuple(s.value for s in State if s not in (
    State.CLOSED, State.EVALUATED, State.REJECTED, State.MERGED))


class CaseConflict(RuntimeError):
    """The case changed since it was loaded: somebody else acted on it first."""


@dataclass(frozen=True)
class CaseDetails:
    """What the reporter told us: the words, the place, the channel."""

    description: str
    subcategory: str | None = None
    address: str | None = None
    building_id: int | None = None
    lat: float | None = None
    lon: float | None = None
    location_note: str | None = None
    source_channel: str | None = None


@dataclass(frozen=True)
class StoredCase:
    """A case with its details, as loaded."""

    case: Case
    details: CaseDetails


@dataclass(frozen=True)
class CaseEventRow:
    """One line of a case's audit trail."""

    event: str
    actor_id: int | None
    actor_role: str
    from_state: str
    to_state: str
    at: datetime
    note: str


def case_to_json(case: Case) -> str:
    """Serialize the pure case model."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(case):
        if f.name == "id":
            continue  # the row's own id column
        value = getattr(case, f.name)
        if isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, enum.Enum):
            value = value.value
        out[f.name] = value
    return json.dumps(out, ensure_ascii=False)


def case_from_json(text: str, case_id: int | None) -> Case:
    """Rebuild the pure case model from `case_to_json`'s output and the row id."""
    raw = json.loads(text)
    raw["id"] = case_id
    kwargs: dict[str, Any] = {}
    for name, convert in _CONVERTERS.items():
        if name not in raw:
            continue
        value = raw[name]
        if value is not None and convert is not None:
            value = convert(value)
        kwargs[name] = value
    return Case(**kwargs)


_HINTS = typing.get_type_hints(Case)


def _types_in(hint: Any) -> tuple[Any, ...]:
    args = typing.get_args(hint)
    return tuple(a for a in args if a is not type(None)) if args else (hint,)


def _converter(hint: Any) -> Any:
    """How a field's JSON value becomes the model's (datetime, enum), worked out once."""
    for kind in _types_in(hint):
        if kind is datetime:
            return parse_iso
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return kind
    return None


_CONVERTERS = {f.name: _converter(_HINTS[f.name]) for f in dataclasses.fields(Case)}


async def next_number(conn: Connection, local_day: str) -> str:
    """The next case number for a local day: YYMMDD-NNN (a fourth digit after 999)."""
    name = f"case:{local_day}"
    rows = await fetch(
        conn, "INSERT INTO counters (name, value) VALUES (?, 1)"
        " ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value", (name,))
    return f"{local_day}-{int(rows[0][0]):03d}"


def _columns(case: Case) -> tuple[Any, ...]:
    return (case.number, case.state.value, case.category, case.urgency, case.procedure.value,
            case.level.value, case.grid_code, case.community_code, case.street_code,
            case.department, case.assignee_id, case.reporter_id,
            iso(case.deadline) if case.deadline else None,
            iso(case.closed_at) if case.closed_at else None,
            case_to_json(case), case.version)


_FACTS = ("street_code", "community_code", "grid_code", "registered_at", "deadline",
          "closed_at", "closed_by_level", "assignee_id", "urgency", "category",
          "found_on_patrol")
# The id the next audit line will get (or a later one): the change of a case's facts is
# stored just before its audit lines, in the same transaction.
_NEXT_LINE = "(SELECT coalesce(max(id), 0) + 1 FROM case_events)"


def _facts(case: Case) -> tuple[Any, ...]:
    """What the month's indicators read of a case (case_facts, migration 0019), in the
    order of _FACTS."""
    return (case.street_code, case.community_code, case.grid_code,
            iso(case.registered_at) if case.registered_at else None,
            iso(case.deadline) if case.deadline else None,
            iso(case.closed_at) if case.closed_at else None,
            case.closed_by_level.value if case.closed_by_level else None,
            case.assignee_id, case.urgency, case.category, int(case.found_on_patrol))


async def insert_case(conn: Connection, case: Case, details: CaseDetails) -> Case:
    """Store a new case and return it with its id."""
    case_id = await new_id(
        conn,
        "INSERT INTO cases (number, state, category, urgency, procedure, level, grid_code,"
        " community_code, street_code, department, assignee_id, reporter_id, deadline,"
        " closed_at, workflow, version, subcategory, description, address, building_id, lat,"
        " lon, location_note, source_channel, created_at, warn_at, breach_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (*_columns(case), details.subcategory, details.description, details.address,
         details.building_id, details.lat, details.lon, details.location_note,
         details.source_channel, iso(case.created_at), *schedule.timer_columns(case)))
    await conn.execute(
        "INSERT INTO case_facts (" + ", ".join(_FACTS) + ", source_channel, created_at,"
        " case_id, changed_seq)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, " + _NEXT_LINE + ")",
        (*_facts(case), details.source_channel, iso(case.created_at), case_id))
    return dataclasses.replace(case, id=case_id)


async def update_case(conn: Connection, case: Case, loaded_version: int) -> None:
    """Store a case's new state if nobody changed it since `loaded_version`."""
    cursor = await conn.execute(
        "UPDATE cases SET number = ?, state = ?, category = ?, urgency = ?, procedure = ?,"
        " level = ?, grid_code = ?, community_code = ?, street_code = ?, department = ?,"
        " assignee_id = ?, reporter_id = ?, deadline = ?, closed_at = ?, workflow = ?,"
        " version = ?, " + schedule.TIMER_UPDATE_SQL + " WHERE id = ? AND version = ?",
        (*_columns(case), *schedule.timer_update_params(case), case.id, loaded_version))
    if cursor.rowcount != 1:
        raise CaseConflict(f"case {case.number} changed meanwhile")
    # Only when they differ: a kept month is computed again when a case that counts in
    # it changed its facts (store.stats.changed_since), not at every audit line.
    facts = _facts(case)
    await conn.execute(
        "UPDATE case_facts SET " + ", ".join(f"{c} = ?" for c in _FACTS) + ","
        " changed_seq = " + _NEXT_LINE + " WHERE case_id = ? AND ("
        + " OR ".join(f"{c} IS NOT ?" for c in _FACTS) + ")", (*facts, case.id, *facts))


async def add_events(
    conn: Connection, case_id: int, records: Sequence[AuditRecord]
) -> None:
    """Append lines to a case's audit trail."""
    await conn.executemany(
        "INSERT INTO case_events (case_id, event, actor_id, actor_role, from_state, to_state,"
        " at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(case_id, r.event.value, r.actor.person_id, r.actor.role.value, r.from_state.value,
          r.to_state.value, iso(r.at), r.note) for r in records])
    if records:  # the console's list sorts by the last change (migration 0010)
        await conn.execute("UPDATE cases SET changed_at = ? WHERE id = ?",
                           (iso(max(r.at for r in records)), case_id))


_SELECT = ("SELECT id, workflow, description, subcategory, address, building_id, lat, lon,"
           " location_note, source_channel FROM cases")


def _stored(row: Row) -> StoredCase:
    return StoredCase(case_from_json(row[1], row[0]), CaseDetails(row[2], *row[3:]))


async def get_by_number(conn: Connection, number: str) -> StoredCase | None:
    """Return a case by its number."""
    rows = await fetch(conn, _SELECT + " WHERE number = ?", (number,))
    return _stored(rows[0]) if rows else None


async def get_by_id(conn: Connection, case_id: int) -> StoredCase | None:
    """Return a case by its id."""
    rows = await fetch(conn, _SELECT + " WHERE id = ?", (case_id,))
    return _stored(rows[0]) if rows else None


async def for_person(conn: Connection, person_id: int, limit: int = 20) -> list[Case]:
    """Cases a person reported or follows, newest first."""
    rows = await fetch(conn,
        "SELECT id, workflow FROM cases WHERE reporter_id = ? OR id IN"
        " (SELECT case_id FROM case_followers WHERE person_id = ?)"
        " ORDER BY id DESC LIMIT ?", (person_id, person_id, limit))
    return [case_from_json(r[1], r[0]) for r in rows]


async def events(conn: Connection, case_id: int) -> list[CaseEventRow]:
    """A case's audit trail, oldest first."""
    rows = await fetch(conn,
        "SELECT event, actor_id, actor_role, from_state, to_state, at, note FROM case_events"
        " WHERE case_id = ? ORDER BY id", (case_id,))
    return [CaseEventRow(r[0], r[1], r[2], r[3], r[4], parse_iso(r[5]), r[6]) for r in rows]


async def open_similar(
    conn: Connection, category: str, since: datetime, *,
    lat: float | None, lon: float | None, radius_m: float, building_id: int | None,
) -> list[StoredCase]:
    """Open cases of a category since a time, in the same building or near a point.

    A bounding box narrows the rows in SQL; the caller measures the exact distance.
    """
    clauses: list[str] = []
    params: list[Any] = [category, iso(since)]
    if building_id is not None:
        clauses.append("building_id = ?")
        params.append(building_id)
    if lat is not None and lon is not None:
        dlat = radius_m / 111_320
        dlon = radius_m / (111_320 * max(math.cos(math.radians(lat)), 0.01))
        clauses.append("(lat BETWEEN ? AND ? AND lon BETWEEN ? AND ?)")
        params += [lat - dlat, lat + dlat, lon - dlon, lon + dlon]
    if not clauses:
        return []
    marks = ", ".join("?" * len(OPEN_STATES))
    rows = await fetch(conn,
        _SELECT + f" WHERE category = ? AND created_at >= ? AND state IN ({marks})"
        f" AND ({' OR '.join(clauses)}) ORDER BY id DESC LIMIT 5",
        (params[0], params[1], *OPEN_STATES, *params[2:]))
    return [_stored(r) for r in rows]


async def add_follower(
    conn: Connection, case_id: int, person_id: int, now: datetime
) -> bool:
    """Make a person follow a case; False when they already did."""
    cursor = await conn.execute(
        "INSERT OR IGNORE INTO case_followers (case_id, person_id, since) VALUES (?, ?, ?)",
        (case_id, person_id, iso(now)))
    return cursor.rowcount == 1


async def is_follower(conn: Connection, case_id: int, person_id: int) -> bool:
    """Say whether a person follows a case."""
    rows = await fetch(conn,
        "SELECT 1 FROM case_followers WHERE case_id = ? AND person_id = ?", (case_id, person_id))
    return bool(rows)


async def follower_count(conn: Connection, case_id: int) -> int:
    """How many people follow a case (+1s)."""
    rows = await fetch(conn,
        "SELECT count(*) FROM case_followers WHERE case_id = ?", (case_id,))
    return int(rows[0][0])


async def followers(conn: Connection, case_id: int) -> list[int]:
    """Ids of the people following a case."""
    rows = await fetch(conn, "SELECT person_id FROM case_followers WHERE case_id = ?"
                       " ORDER BY since", (case_id,))
    return [int(r[0]) for r in rows]


async def open_for_staff(
    conn: Connection, person_id: int, desks: Sequence[tuple[str, str, str]],
    limit: int = 30,
) -> list[Case]:
    """Open cases a staff member holds: assigned to them, or on one of their desks.

    A desk is (level, column, scope), e.g. ("grid", "grid_code", "33010600100101") or
    ("department", "department", "sanitation").
    """
    allowed = {"grid_code", "community_code", "street_code", "department"}
    clauses: list[str] = ["assignee_id = ?"]
    params: list[object] = [person_id]
    for level, column, scope in desks:
        assert column in allowed
        clauses.append(f"(level = ? AND {column} = ?)")
        params += [level, scope]
    marks = ", ".join("?" * len(OPEN_STATES))
    rows = await fetch(
        conn, f"SELECT id, workflow FROM cases WHERE state IN ({marks})"
        f" AND ({' OR '.join(clauses)}) ORDER BY deadline IS NULL, deadline LIMIT ?",
        (*OPEN_STATES, *params, limit))
    return [case_from_json(r[1], r[0]) for r in rows]

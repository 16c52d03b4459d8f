"""Open311: API keys (hashed), what a filing carried, searches for GeoReport, and the queue
of cases POSTed to departments' own Open311 systems with the updates pulled back."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from bot.domain.clock import iso, parse_iso
from bot.domain.workflow import Level, State
from store.cases import CaseDetails, StoredCase, case_from_json
from store.db import Connection, Row, fetch

# Written exactly as in the index cases_open311_window (0009_open311.sql), so that SQLite
# uses it: an index on an expression serves only that same expression.
CLOSED_SQL = "(state IN ('closed', 'evaluated', 'rejected', 'merged'))"
SOURCE = "open311"


def hash_key(key: str) -> str:
    """What is stored of an API key: its sha256 (keys are long random strings)."""
    return hashlib.sha256(key.strip().encode()).hexdigest()


# --- API keys ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ApiKey:
    """An API key's record (never the key itself)."""

    id: int
    name: str
    prefix: str
    services: tuple[str, ...] | None  # category or service codes; None: every service
    department: str | None
    person_id: int
    created_at: datetime
    revoked_at: datetime | None


_KEY_COLUMNS = "id, name, prefix, services, department, person_id, created_at, revoked_at"


def _key(row: Row) -> ApiKey:
    services = tuple(json.loads(row[3])) if row[3] is not None else None
    return ApiKey(row[0], row[1], row[2], services, row[4], row[5], parse_iso(row[6]),
                  parse_iso(row[7]) if row[7] else None)


async def add_key(conn: Connection, name: str, key: str, person_id: int,
                  now: datetime, *, services: Sequence[str] | None = None,
                  department: str | None = None) -> int:
    """Store a new API key (hashed) and return its id."""
    cursor = await conn.execute(
        "INSERT INTO api_keys (name, key_hash, prefix, services, department, person_id,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (name, hash_key(key), key[:6], json.dumps(list(services)) if services else None,
         department, person_id, iso(now)))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


async def key_for(conn: Connection, key: str) -> ApiKey | None:
    """The active key with this value, if any."""
    rows = await fetch(conn, f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?"
                             " AND revoked_at IS NULL", (hash_key(key),))
    return _key(rows[0]) if rows else None


async def list_keys(conn: Connection) -> list[ApiKey]:
    """Every key, revoked ones too, oldest first."""
    rows = await fetch(conn, f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY id")
    return [_key(r) for r in rows]


async def revoke_key(conn: Connection, key_id: int, now: datetime) -> bool:
    """Revoke a key; False when there is no active key with that id."""
    cursor = await conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?"
                                " AND revoked_at IS NULL", (iso(now), key_id))
    return cursor.rowcount == 1


# --- filings ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Filing:
    """What an Open311 client sent with a case besides the case itself."""

    api_key_id: int
    email: str | None = None
    device_id: str | None = None
    account_id: str | None = None
    media_url: str | None = None
    attributes: dict[str, Any] | None = None


async def add_filing(conn: Connection, case_id: int, filing: Filing) -> None:
    """Record an Open311 filing of a case."""
    await conn.execute(
        "INSERT INTO open311_requests (case_id, api_key_id, email, device_id, account_id,"
        " media_url, attributes) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (case_id, filing.api_key_id, filing.email, filing.device_id, filing.account_id,
         filing.media_url, json.dumps(filing.attributes or {}, ensure_ascii=False)))


async def filing_key(conn: Connection, case_id: int) -> int | None:
    """The id of the API key that filed a case over Open311; None for any other case."""
    rows = await fetch(conn, "SELECT api_key_id FROM open311_requests WHERE case_id = ?",
                       (case_id,))
    return int(rows[0][0]) if rows else None


@dataclass(frozen=True)
class Found:
    """A case as GeoReport shows it: the case, its media link, its last audit time."""

    stored: StoredCase
    media_url: str | None
    updated_at: datetime | None


_FOUND = ("SELECT c.id, c.workflow, c.description, c.subcategory, c.address, c.building_id,"
          " c.lat, c.lon, c.location_note, c.source_channel, r.media_url,"
          " (SELECT max(e.at) FROM case_events e WHERE e.case_id = c.id)"
          " FROM cases c LEFT JOIN open311_requests r ON r.case_id = c.id")


def _found(row: Row) -> Found:
    stored = StoredCase(case_from_json(row[1], row[0]), CaseDetails(row[2], *row[3:10]))
    return Found(stored, row[10], parse_iso(row[11]) if row[11] else None)


class Listed(NamedTuple):
    """A case as GeoReport lists it: what its answer shows, read from the row's columns.

    A search of 1,000 cases built each whole workflow model from its JSON before (dates
    parsed, enums made: half the time of the answer). Only `force_closed` and
    `merged_into` live in that JSON alone: the first is asked of it in SQL, the second
    read from it for a merged case only. (A tuple: a page makes 1,000 of them.)
    """

    number: str
    state: State
    category: str
    subcategory: str | None
    level: Level
    grid_code: str | None
    community_code: str | None
    street_code: str | None
    department: str | None
    created_at: datetime
    deadline: datetime | None
    description: str
    address: str | None
    building_id: int | None
    lat: float | None
    lon: float | None
    media_url: str | None
    updated_at: datetime | None
    force_closed: bool = False
    merged_into: str | None = None

    @classmethod
    def of(cls, found: Found) -> Listed:
        """The listing of a case already loaded whole."""
        case, details = found.stored.case, found.stored.details
        return cls(case.number, case.state, case.category, details.subcategory, case.level,
                   case.grid_code, case.community_code, case.street_code, case.department,
                   case.created_at, case.deadline, details.description, details.address,
                   details.building_id, details.lat, details.lon, found.media_url,
                   found.updated_at, case.force_closed, case.merged_into)


# `force_closed` as store.cases.case_to_json writes it (json.dumps' ": " and lowercase
# true); tests/test_open311_intake.py lists a force-closed case to hold this to it.
FORCE_CLOSED_SQL = "c.workflow LIKE '%\"force\\_closed\": true%' ESCAPE '\\'"
_LISTED = ("SELECT c.number, c.state, c.category, c.subcategory, c.level, c.grid_code,"
           " c.community_code, c.street_code, c.department, c.created_at, c.deadline,"
           " c.description, c.address, c.building_id, c.lat, c.lon, r.media_url,"
           " (SELECT max(e.at) FROM case_events e WHERE e.case_id = c.id),"
           f" CASE WHEN c.state = 'closed' AND {FORCE_CLOSED_SQL} THEN 1 ELSE 0 END,"
           " CASE WHEN c.state = 'merged' THEN c.workflow END"
           " FROM cases c LEFT JOIN open311_requests r ON r.case_id = c.id")
_STATES = {s.value: s for s in State}
_LEVELS = {level.value: level for level in Level}


def _listed(row: Row) -> Listed:
    merged_into = json.loads(row[19]).get("merged_into") if row[19] is not None else None
    return Listed(row[0], _STATES[row[1]], row[2], row[3], _LEVELS[row[4]], row[5], row[6],
                  row[7], row[8], parse_iso(row[9]), parse_iso(row[10]) if row[10] else None,
                  row[11], row[12], row[13], row[14], row[15], row[16],
                  parse_iso(row[17]) if row[17] else None, bool(row[18]), merged_into)


async def by_numbers(conn: Connection, numbers: Sequence[str]) -> list[Found]:
    """The cases with these numbers, in the order asked (unknown ones left out)."""
    rows = await fetch(conn, _FOUND + " WHERE c.number IN (SELECT value FROM json_each(?))",
                       (json.dumps(list(numbers)),))
    found = {f.stored.case.number: f for f in (_found(r) for r in rows)}
    return [found[n] for n in dict.fromkeys(numbers) if n in found]


def search_sql(*, closed: bool | None, category: str | None,
               subcategory: str | None) -> str:
    """The search's SQL (the benchmark shows its plan); parameters as `search` binds them."""
    where = ["c.created_at >= ?", "c.created_at <= ?"]
    if closed is not None:
        where.insert(0, CLOSED_SQL.replace("state", "c.state", 1) + " = ?")
    if category is not None:
        where.append("c.category = ?")
        where.append("c.subcategory IS ?")
    return (_LISTED + " WHERE " + " AND ".join(where)
            + " ORDER BY c.created_at, c.id LIMIT ? OFFSET ?")


async def search(conn: Connection, start: datetime, end: datetime, *,
                 closed: bool | None, category: str | None, subcategory: str | None,
                 limit: int, offset: int) -> list[Listed]:
    """Cases requested in [start, end], oldest first, optionally open or closed only and of
    one service (category, subcategory), one page of them."""
    params: list[Any] = []
    if closed is not None:
        params.append(1 if closed else 0)
    params += [iso(start), iso(end)]
    if category is not None:
        params += [category, subcategory]
    rows = await fetch(conn, search_sql(closed=closed, category=category,
                                        subcategory=subcategory),
                       (*params, limit, offset))
    return [_listed(r) for r in rows]


@dataclass(frozen=True)
class Update:
    """One audit line of a case, for servicerequestupdates."""

    id: int
    number: str
    event: str
    actor_role: str
    to_state: str
    at: datetime
    note: str


async def updates(conn: Connection, start: datetime, end: datetime,
                  limit: int) -> list[Update]:
    """Audit lines written in [start, end], oldest first."""
    rows = await fetch(
        conn, "SELECT e.id, c.number, e.event, e.actor_role, e.to_state, e.at, e.note"
        " FROM case_events e"
        " JOIN cases c ON c.id = e.case_id WHERE e.at >= ? AND e.at <= ?"
        " ORDER BY e.at, e.id LIMIT ?", (iso(start), iso(end), limit))
    return [Update(r[0], r[1], r[2], r[3], r[4], parse_iso(r[5]), r[6]) for r in rows]


async def last_event_id(conn: Connection, case_id: int) -> int:
    """The id of a case's latest audit line (an update's id)."""
    rows = await fetch(conn, "SELECT max(id) FROM case_events WHERE case_id = ?", (case_id,))
    return int(rows[0][0] or 0)


# --- to departments' own systems ----------------------------------------------------------

@dataclass(frozen=True)
class Outbound:
    """A case to POST to a department's Open311 system, or POSTed already."""

    id: int
    case_id: int
    department: str
    status: str
    attempts: int
    external_id: str | None


_OUT = "SELECT id, case_id, department, status, attempts, external_id FROM open311_outbound"


async def queue_outbound(conn: Connection, case_id: int, department: str,
                         now: datetime) -> int:
    """Queue a case for a department's system (in the dispatch's transaction)."""
    cursor = await conn.execute(
        "INSERT INTO open311_outbound (case_id, department, created_at) VALUES (?, ?, ?)",
        (case_id, department, iso(now)))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


async def claim_outbound(conn: Connection, now: datetime,
                         limit: int = 20) -> list[Outbound]:
    """Take due queued rows for sending (status 'sending', one more attempt)."""
    rows = await fetch(
        conn, "UPDATE open311_outbound SET status = 'sending', attempts = attempts + 1"
        " WHERE id IN (SELECT id FROM open311_outbound WHERE status = 'queued'"
        " AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT ?)"
        " RETURNING id, case_id, department, status, attempts, external_id",
        (iso(now), limit))
    return sorted((Outbound(*r) for r in rows), key=lambda o: o.id)


async def requeue_sending(conn: Connection) -> None:
    """After a crash: rows left 'sending' are queued again (the department may get one
    twice; GeoReport has no idempotency key to prevent it)."""
    await conn.execute("UPDATE open311_outbound SET status = 'queued' WHERE status = 'sending'")


async def outbound_sent(conn: Connection, row_id: int, external_id: str,
                        now: datetime) -> None:
    """The department's system took the case and answered its own request id."""
    await conn.execute("UPDATE open311_outbound SET status = 'sent', external_id = ?,"
                       " sent_at = ?, error = NULL WHERE id = ?",
                       (external_id, iso(now), row_id))


async def outbound_retry(conn: Connection, row_id: int, error: str,
                         next_attempt: datetime) -> None:
    """A failed attempt: try again later."""
    await conn.execute("UPDATE open311_outbound SET status = 'queued', error = ?,"
                       " next_attempt_at = ? WHERE id = ?", (error, iso(next_attempt), row_id))


async def outbound_failed(conn: Connection, row_id: int, error: str) -> None:
    """Given up: staff see the error (`error`) and handle the case by hand."""
    await conn.execute("UPDATE open311_outbound SET status = 'failed', error = ? WHERE id = ?",
                       (error, row_id))


async def outbound_closed(conn: Connection, row_id: int, now: datetime) -> None:
    """The department is done with the case (reported done or returned it)."""
    await conn.execute("UPDATE open311_outbound SET closed_at = ? WHERE id = ?",
                       (iso(now), row_id))


async def outbound_of(conn: Connection, case_id: int) -> list[Outbound]:
    """The rows of one case, oldest first."""
    rows = await fetch(conn, _OUT + " WHERE case_id = ? ORDER BY id", (case_id,))
    return [Outbound(*r) for r in rows]


async def open_outbound(conn: Connection, department: str) -> list[Outbound]:
    """Cases a department's system took and has not finished, oldest first."""
    rows = await fetch(conn, _OUT + " WHERE department = ? AND status = 'sent'"
                                    " AND closed_at IS NULL ORDER BY id", (department,))
    return [Outbound(*r) for r in rows]


async def mark_pulled(conn: Connection, department: str, update_id: str,
                      case_id: int | None, outcome: str, now: datetime) -> bool:
    """Remember an update applied from a department; False if it was applied before."""
    cursor = await conn.execute(
        "INSERT OR IGNORE INTO open311_pulled (department, update_id, case_id, applied_at,"
        " outcome) VALUES (?, ?, ?, ?, ?)", (department, update_id, case_id, iso(now), outcome))
    return cursor.rowcount == 1


async def was_pulled(conn: Connection, department: str, update_id: str) -> bool:
    """Whether an update of a department was applied already."""
    rows = await fetch(conn, "SELECT 1 FROM open311_pulled WHERE department = ?"
                             " AND update_id = ?", (department, update_id))
    return bool(rows)


async def case_for_external(conn: Connection, department: str,
                            external_id: str) -> Outbound | None:
    """The latest row a department's request id belongs to."""
    rows = await fetch(conn, _OUT + " WHERE department = ? AND external_id = ?"
                                    " ORDER BY id DESC LIMIT 1", (department, external_id))
    return Outbound(*rows[0]) if rows else None

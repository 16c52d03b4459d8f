"""The console's one-time sign-in links and its sessions (secrets stored only as hashes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.domain.clock import iso, parse_iso
from store.db import Connection, fetch


@dataclass(frozen=True)
class SignInLink:
    """A one-time sign-in link as stored."""

    id: int
    person_id: int
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True)
class Session:
    """A signed-in console session."""

    id: int
    person_id: int
    csrf: str
    created_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None


async def add_link(conn: Connection, token_hash: str, person_id: int, now: datetime,
                   expires_at: datetime) -> int:
    """Store a new sign-in link; return its id."""
    rows = await fetch(conn,
        "INSERT INTO console_links (token_hash, person_id, created_at, expires_at)"
        " VALUES (?, ?, ?, ?) RETURNING id", (token_hash, person_id, iso(now), iso(expires_at)))
    return int(rows[0][0])


async def links_since(conn: Connection, person_id: int, since: datetime) -> int:
    """How many sign-in links a person was given since a moment."""
    rows = await fetch(conn,
        "SELECT count(*) FROM console_links WHERE person_id = ? AND created_at >= ?",
        (person_id, iso(since)))
    return int(rows[0][0])


async def find_link(conn: Connection, token_hash: str) -> SignInLink | None:
    """The link with this secret's hash, if any."""
    rows = await fetch(conn,
        "SELECT id, person_id, created_at, expires_at, used_at FROM console_links"
        " WHERE token_hash = ?", (token_hash,))
    if not rows:
        return None
    r = rows[0]
    return SignInLink(r[0], r[1], parse_iso(r[2]), parse_iso(r[3]),
                      parse_iso(r[4]) if r[4] else None)


async def use_link(conn: Connection, link_id: int, now: datetime) -> bool:
    """Mark a link used; False when it was used already (the second of two clicks)."""
    cursor = await conn.execute(
        "UPDATE console_links SET used_at = ? WHERE id = ? AND used_at IS NULL",
        (iso(now), link_id))
    return cursor.rowcount == 1


async def add_session(conn: Connection, token_hash: str, person_id: int, csrf: str,
                      now: datetime) -> int:
    """Store a new session; return its id."""
    rows = await fetch(conn,
        "INSERT INTO console_sessions (token_hash, person_id, csrf, created_at, last_seen_at)"
        " VALUES (?, ?, ?, ?, ?) RETURNING id",
        (token_hash, person_id, csrf, iso(now), iso(now)))
    return int(rows[0][0])


async def find_session(conn: Connection, token_hash: str) -> Session | None:
    """The session with this secret's hash, if any."""
    rows = await fetch(conn,
        "SELECT id, person_id, csrf, created_at, last_seen_at, ended_at FROM console_sessions"
        " WHERE token_hash = ?", (token_hash,))
    if not rows:
        return None
    r = rows[0]
    return Session(r[0], r[1], r[2], parse_iso(r[3]), parse_iso(r[4]),
                   parse_iso(r[5]) if r[5] else None)


async def touch_session(conn: Connection, session_id: int, now: datetime) -> None:
    """Record that a session was used now (idle time starts again)."""
    await conn.execute("UPDATE console_sessions SET last_seen_at = ? WHERE id = ?",
                       (iso(now), session_id))


async def end_session(conn: Connection, session_id: int, now: datetime) -> None:
    """Sign a session out."""
    await conn.execute(
        "UPDATE console_sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
        (iso(now), session_id))


async def person_of_role(conn: Connection, role_id: int) -> int | None:
    """The person holding an active role (ids as `gridbot staff list` prints them)."""
    rows = await fetch(conn,
        "SELECT person_id FROM roles WHERE id = ? AND revoked_at IS NULL", (role_id,))
    return int(rows[0][0]) if rows else None


@dataclass(frozen=True)
class CaseNote:
    """An internal note or a message to the resident, written in the console."""

    id: int
    person_id: int
    kind: str  # "internal" or "message"
    body: str
    at: datetime


async def add_note(conn: Connection, case_id: int, person_id: int, kind: str, body: str,
                   now: datetime) -> int:
    """Store a note on a case; its id."""
    rows = await fetch(conn,
        "INSERT INTO case_notes (case_id, person_id, kind, body, at) VALUES (?, ?, ?, ?, ?)"
        " RETURNING id", (case_id, person_id, kind, body, iso(now)))
    return int(rows[0][0])


async def notes(conn: Connection, case_id: int) -> list[CaseNote]:
    """A case's notes, oldest first."""
    rows = await fetch(conn,
        "SELECT id, person_id, kind, body, at FROM case_notes WHERE case_id = ? ORDER BY id",
        (case_id,))
    return [CaseNote(r[0], r[1], r[2], r[3], parse_iso(r[4])) for r in rows]


async def last_note(conn: Connection, case_id: int) -> int:
    """The id of a case's newest note (0 without any)."""
    rows = await fetch(conn, "SELECT max(id) FROM case_notes WHERE case_id = ?", (case_id,))
    return int(rows[0][0] or 0)


async def area_geometry(conn: Connection, code: str) -> str | None:
    """An area's GeoJSON geometry as stored (the case page's small map)."""
    rows = await fetch(conn, "SELECT geometry FROM areas WHERE code = ?", (code,))
    return str(rows[0][0]) if rows else None

"""Invitations, staff listing, the visit log and public-opinion reports."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from bot.domain.clock import iso, parse_iso
from store.db import Connection, fetch, new_id


def hash_code(code: str) -> str:
    """What is stored of an invitation code."""
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


async def add_invite(conn: Connection, code: str, role: str, scope: str | None,
                     now: datetime, expires: datetime) -> None:
    """Store a new invitation (hashed)."""
    await conn.execute(
        "INSERT INTO invites (code_hash, role, scope, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?)", (hash_code(code), role, scope, iso(now), iso(expires)))


@dataclass(frozen=True)
class Redeemed:
    """What an invitation gave: a role in a scope."""

    role: str
    scope: str | None


async def redeem_invite(conn: Connection, code: str, person_id: int,
                        now: datetime) -> Redeemed | str:
    """Use an invitation once; return the role, or why not: 'unknown', 'used', 'expired'."""
    rows = await fetch(conn, "SELECT id, role, scope, expires_at, used_at FROM invites"
                       " WHERE code_hash = ?", (hash_code(code),))
    if not rows:
        return "unknown"
    invite_id, role, scope, expires_at, used_at = rows[0]
    if used_at is not None:
        return "used"
    if parse_iso(expires_at) <= now:
        return "expired"
    cursor = await conn.execute(
        "UPDATE invites SET used_at = ?, used_by = ? WHERE id = ? AND used_at IS NULL",
        (iso(now), person_id, invite_id))
    if cursor.rowcount != 1:
        return "used"
    return Redeemed(role, scope)


@dataclass(frozen=True)
class StaffRow:
    """One active role of one person."""

    role_id: int
    person_id: int
    name: str | None
    role: str
    scope: str | None
    granted_at: str


async def list_staff(conn: Connection) -> list[StaffRow]:
    """Every active staff role."""
    rows = await fetch(
        conn, "SELECT r.id, r.person_id, p.name, r.role, r.scope, r.granted_at FROM roles r"
        " JOIN people p ON p.id = r.person_id WHERE r.revoked_at IS NULL"
        " ORDER BY r.scope, r.role, r.id")
    return [StaffRow(*r) for r in rows]


async def revoke_role(conn: Connection, role_id: int, now: datetime) -> bool:
    """End one role; False if there is no such active role."""
    cursor = await conn.execute(
        "UPDATE roles SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (iso(now), role_id))
    return cursor.rowcount == 1


async def add_visit(conn: Connection, person_id: int, grid_code: str | None,
                    building: str, household: str, raised: str, now: datetime) -> int:
    """Log a household visit."""
    return await new_id(
        conn,
        "INSERT INTO visits (person_id, grid_code, building, household, raised, at)"
        " VALUES (?, ?, ?, ?, ?, ?)", (person_id, grid_code, building, household, raised,
                                       iso(now)))


async def add_opinion(conn: Connection, person_id: int, grid_code: str | None,
                      body: str, now: datetime) -> int:
    """Log a social-conditions and public-opinion report."""
    return await new_id(
        conn,
        "INSERT INTO opinions (person_id, grid_code, body, at) VALUES (?, ?, ?, ?)",
        (person_id, grid_code, body, iso(now)))


async def update_card(conn: Connection, person_id: int, field: str,
                      value: str | int) -> None:
    """Change one field of a person's public card: name, phone, duties or photo."""
    column = {"name": "name", "phone": "phone", "duties": "duties",
              "photo": "photo_media_id"}[field]
    await conn.execute(f"UPDATE people SET {column} = ? WHERE id = ?", (value, person_id))


@dataclass(frozen=True)
class StaffActivity:
    """A staff member's channels and when they were last seen (a message or a console
    visit)."""

    channels: tuple[str, ...]
    last_seen: str | None


async def staff_activity(conn: Connection) -> dict[int, StaffActivity]:
    """For each person holding an active role: their channels and last activity."""
    holders = "SELECT person_id FROM roles WHERE revoked_at IS NULL"
    channels: dict[int, list[str]] = {}
    seen: dict[int, str] = {}
    for person_id, channel, last_seen in await fetch(
            conn, "SELECT person_id, channel, last_seen_at FROM contacts"
            f" WHERE person_id IN ({holders}) ORDER BY person_id, id"):
        channels.setdefault(person_id, []).append(channel)
        if last_seen and last_seen > seen.get(person_id, ""):
            seen[person_id] = last_seen
    for person_id, last_seen in await fetch(
            conn, "SELECT person_id, max(last_seen_at) FROM console_sessions"
            f" WHERE person_id IN ({holders}) GROUP BY person_id"):
        if last_seen and last_seen > seen.get(person_id, ""):
            seen[person_id] = last_seen
    people = set(channels) | set(seen)
    return {pid: StaffActivity(tuple(dict.fromkeys(channels.get(pid, []))), seen.get(pid))
            for pid in people}

"""Cases filed by staff for a caller on the phone (电话代报)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.domain.clock import iso
from store.db import Connection, fetch


@dataclass(frozen=True)
class PhoneIn:
    """Who phoned a case in for whom, and how the caller hears back."""

    case_id: int
    filed_by: int
    filed_role: str
    caller_id: int
    sms: bool
    answered_by: int | None = None


async def record(conn: Connection, case_id: int, filed_by: int, filed_role: str,
                 caller_id: int, sms: bool) -> None:
    """Mark a case as phoned in by a staff member for a caller."""
    await conn.execute(
        "INSERT INTO phoneins (case_id, filed_by, filed_role, caller_id, sms)"
        " VALUES (?, ?, ?, ?, ?)", (case_id, filed_by, filed_role, caller_id, 1 if sms else 0))


async def get(conn: Connection, case_id: int) -> PhoneIn | None:
    """The phone-in record of a case, if it was phoned in."""
    rows = await fetch(conn, "SELECT case_id, filed_by, filed_role, caller_id, sms,"
                       " answered_by FROM phoneins WHERE case_id = ?", (case_id,))
    if not rows:
        return None
    r = rows[0]
    return PhoneIn(int(r[0]), int(r[1]), r[2], int(r[3]), bool(r[4]),
                   int(r[5]) if r[5] is not None else None)


async def record_answer(conn: Connection, case_id: int, person_id: int,
                        now: datetime) -> None:
    """Note that a staff member recorded the caller's answer, taken by phone."""
    await conn.execute("UPDATE phoneins SET answered_by = ?, answered_at = ? WHERE case_id = ?",
                       (person_id, iso(now), case_id))


async def new_caller(conn: Connection, phone: str, now: datetime) -> int:
    """A person known only by the phone number they called from."""
    rows = await fetch(conn, "INSERT INTO people (phone, created_at) VALUES (?, ?)"
                       " RETURNING id", (phone, iso(now)))
    return int(rows[0][0])


async def note_phone(conn: Connection, person_id: int, phone: str) -> None:
    """Keep the number a known person called from, unless they have one on file."""
    await conn.execute("UPDATE people SET phone = COALESCE(phone, ?) WHERE id = ?",
                       (phone, person_id))

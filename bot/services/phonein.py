"""Phone-in (电话代报): a staff member files a case for a caller on the phone.

The caller is the case's reporter: the person known by that number if there is one
(an SMS contact, or the phone on file), else a new person with that phone. With SMS on,
the number becomes their SMS contact, and they hear of the case as any reporter does and
rate by SMS; without, the filer gets the caller's messages (bot/services/relay.py) and
records the caller's answer by phone.
"""

from __future__ import annotations

from datetime import datetime

from bot.domain import workflow
from bot.domain.workflow import Actor, EventKind, Role
from bot.services import phones
from store import cases as case_store
from store import people as people_store
from store import phonein as phonein_store
from store.db import Connection

CHANNEL = "phone"  # the source channel of a phoned-in case
FILER_ROLES = frozenset({Role.GRID_CHIEF, Role.COMMUNITY_STAFF, Role.COMMUNITY_DIRECTOR,
                         Role.DISPATCHER, Role.ADMIN})


def filer_role(roles: list[tuple[str, str | None]]) -> tuple[str, str | None] | None:
    """The first of a person's roles that may phone a case in."""
    allowed = {r.value for r in FILER_ROLES}
    return next(((role, scope) for role, scope in roles if role in allowed), None)


async def caller(conn: Connection, phone: str, sms: bool, now: datetime) -> int:
    """The person a caller's number belongs to, made when unknown; with SMS on, the
    number becomes their SMS contact (it is E.164)."""
    owner = await people_store.phone_owner(conn, phone, phones.spellings(phone))
    if owner is None:
        owner = await phonein_store.new_caller(conn, phone, now)
    else:
        await phonein_store.note_phone(conn, owner, phone)
    if sms:
        await people_store.add_contact(conn, owner, "sms", phone, now)
    return owner


async def mark(conn: Connection, case: workflow.Case, filer: Actor, caller_id: int,
               sms: bool, now: datetime) -> None:
    """Mark a new case as phoned in: the record, and a line in its audit trail naming the
    staff member who filed it (no phone number in it)."""
    assert case.id is not None and filer.person_id is not None
    await phonein_store.record(conn, case.id, filer.person_id, filer.role.value, caller_id, sms)
    note = "电话代报 phone-in, " + ("短信告知 SMS" if sms else "电话转告 by phone")
    await case_store.add_events(conn, case.id, [workflow.AuditRecord(
        case.id, EventKind.COMMENT, filer, case.state, case.state, now, note)])

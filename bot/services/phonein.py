"""Phone-in (电话代报): a staff member files a case for a caller on the phone.

The caller is the case's reporter: the person known by that number if there is one
(an SMS contact, or the phone on file), else a new person with that phone. With SMS on,
the number becomes their SMS contact, and they hear of the case as any reporter does and
rate by SMS; without, the filer gets the caller's messages (bot/services/relay.py) and
records the caller's answer by phone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.domain import workflow
from bot.domain.messages import Reply
from bot.domain.workflow import Actor, Event, EventKind, Role
from bot.services import casework, phones, relay
from bot.services import households as household_service
from bot.services.notify import PersonalMessage
from bot.services.people import display_name
from bot.services.reference import ReferenceData
from store import cases as case_store
from store import households as household_store
from store import people as people_store
from store import phonein as phonein_store
from store.db import Connection
from store.households import Household

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


def filer_actor(actors: Sequence[Actor]) -> Actor | None:
    """The first of a person's staff roles that may phone a case in."""
    return next((a for a in actors if a.role in FILER_ROLES), None)


async def households_for(conn: Connection, reference: ReferenceData, phone: str,
                         actors: Sequence[Actor], now: datetime) -> list[Household]:
    """The households on file with the caller's number in the staff member's area, each
    offered one logged as a read ("phonein")."""
    matched = []
    for household in await household_store.with_phone(conn, [phone, *phones.spellings(phone)]):
        actor = household_service.reader_for(reference.district, household.grid_code, actors)
        if actor is not None:
            await household_store.log_reads(conn, [household.id], actor.person_id or 0,
                                            actor.role.value, "phonein", now)
            matched.append(household)
    return matched


async def phoned_in(conn: Connection, case: workflow.Case, filer: Actor, caller_id: int,
                    sms: bool, household_id: int | None, now: datetime
                    ) -> list[PersonalMessage]:
    """After filing: mark the case as phoned in, link the household chosen, and with SMS
    on the caller's message with the case number (`phonein_filed`)."""
    await mark(conn, case, filer, caller_id, sms, now)
    if household_id is not None and case.id is not None and filer.person_id is not None:
        await household_store.link_case(conn, case.id, household_id, filer.person_id, now)
    if not sms:
        return []
    return [PersonalMessage(caller_id, Reply("phonein_filed", {
        "number": case.number, "category": case.category, "deadline": case.deadline}))]


class PhoneInRefused(Exception):
    """A phone-in that cannot be filed: the code says why ("not_filer", "phone",
    "household")."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class PhoneInFiled:
    """A phoned-in case and everyone to tell of it (the caller too, with SMS on)."""

    filed: casework.Filed
    caller_id: int
    notices: list[PersonalMessage]


async def file_for_caller(conn: Connection, reference: ReferenceData, actors: Sequence[Actor],
                          phone_typed: str, sms: bool, draft: casework.Draft, now: datetime,
                          household_id: int | None = None) -> PhoneInFiled:
    """File a case for a caller in one go (the console's form; the bot asks the same step
    by step): the number checked, the caller found or made, the case filed with source
    channel `phone`, marked as phoned in by the staff member, the household linked when it
    is one on file with that number in their area."""
    filer = filer_actor(actors)
    if filer is None:
        raise PhoneInRefused("not_filer")
    phone = phones.to_e164(phone_typed, reference.phone_region)
    if phone is None:
        raise PhoneInRefused("phone")
    if household_id is not None:
        household = await household_store.get(conn, household_id)
        spellings = {phone, *phones.spellings(phone)}
        if household is None or household.phone not in spellings or \
                household_service.reader_for(reference.district, household.grid_code,
                                             actors) is None:
            raise PhoneInRefused("household")
    caller_id = await caller(conn, phone, sms, now)
    filed = await casework.file_case(
        conn, reference, caller_id,
        casework.Draft(draft.category, draft.subcategory, draft.description, draft.place,
                       draft.photo_ids, CHANNEL), now)
    told = await phoned_in(conn, filed.case, filer, caller_id, sms, household_id, now)
    return PhoneInFiled(filed, caller_id, [*filed.notices, *told])


class AnswerRefused(Exception):
    """The caller's answer cannot be recorded: not this person's relayed case, or the case
    does not take that answer now (it changed)."""


async def record_caller_answer(conn: Connection, reference: ReferenceData,
                               stored: case_store.StoredCase, recorder_id: int, event: Event,
                               now: datetime) -> tuple[workflow.Case, list[PersonalMessage]]:
    """The answer of a caller without SMS ("fixed?": reopen, or a rating), recorded by the
    staff member who filed the case: it counts as the caller's own (the reporter's), and
    the phone-in record keeps who recorded it."""
    found = await relay.relay_of(conn, stored.case.id)
    if found is None or found.filed_by != recorder_id or stored.case.reporter_id is None \
            or stored.case.id is None:
        raise AnswerRefused("not the filer of a relayed case")
    actor = Actor(person_id=stored.case.reporter_id, role=Role.RESIDENT, scope=None)
    try:
        case, notices = await casework.apply_event(conn, reference, stored, event, actor, now)
    except (workflow.TransitionRefused, case_store.CaseConflict) as exc:
        raise AnswerRefused(str(exc)) from exc
    await phonein_store.record_answer(conn, stored.case.id, recorder_id, now)
    return case, notices


@dataclass(frozen=True)
class PhoneInView:
    """What a case page shows of a phoned-in case."""

    filed_by: str
    filed_role: str
    sms: bool
    answered_by: str | None
    can_answer: bool  # this person records the caller's answer, and the case awaits one
    can_rate: bool
    can_reopen: bool


async def view(conn: Connection, case: workflow.Case, person_id: int) -> PhoneInView | None:
    """Who phoned the case in, whether the caller hears by SMS, and whether this person
    may record the caller's answer to "fixed?" now; None when it was not phoned in."""
    if case.id is None:
        return None
    found = await phonein_store.get(conn, case.id)
    if found is None:
        return None
    caller_actor = Actor(found.caller_id, Role.RESIDENT, None)
    relayed = not found.sms and found.filed_by == person_id and case.reporter_id is not None
    may = {kind: relayed and _allowed(case, kind, caller_actor)
           for kind in (EventKind.RATE, EventKind.REOPEN)}
    answered = (await display_name(conn, found.answered_by)
                if found.answered_by is not None else None)
    return PhoneInView(await display_name(conn, found.filed_by), found.filed_role, found.sms,
                       answered, may[EventKind.RATE] or may[EventKind.REOPEN],
                       may[EventKind.RATE], may[EventKind.REOPEN])


def _allowed(case: workflow.Case, kind: EventKind, actor: Actor) -> bool:
    try:
        workflow.authorize(case, kind, actor)
    except workflow.TransitionRefused:
        return False
    return True

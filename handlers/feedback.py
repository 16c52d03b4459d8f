"""The resident's answer when a case closes: fixed? then a 1–5 rating; "no" reopens it."""

from __future__ import annotations

from bot.domain import workflow
from bot.domain.messages import Choice
from bot.domain.workflow import Actor, Event, EventKind, Role
from bot.services import casework, phonein, relay
from handlers.base import Context
from store import cases as case_store
from store.cases import CaseConflict


async def _own_case(ctx: Context) -> tuple[case_store.StoredCase, str] | None:
    """The reporter's case named by the pressed button, and the button's answer."""
    assert ctx.option is not None
    _, number, answer = ctx.option.split(":", 2)
    stored = await case_store.get_by_number(ctx.conn, number)
    if stored is None or (stored.case.reporter_id != ctx.contact.person_id
                          and not await _relays(ctx, stored)):
        ctx.say("case_not_found", number=number)
        return None
    return stored, answer


async def _relays(ctx: Context, stored: case_store.StoredCase) -> bool:
    """Whether this person filed the case for a caller without SMS: they record the
    caller's answer, taken by phone."""
    found = await relay.relay_of(ctx.conn, stored.case.id)
    return found is not None and found.filed_by == ctx.contact.person_id


async def on_fixed(ctx: Context) -> None:
    """"fixed:NUMBER:yes|no" from the closing message."""
    found = await _own_case(ctx)
    if found is None:
        return
    stored, answer = found
    number = stored.case.number
    if answer == "yes":
        ctx.say("feedback_rate", [Choice(f"rate:{number}:{n}", "★" * n)
                                  for n in range(5, 0, -1)])
        return
    await _apply(ctx, stored, Event(EventKind.REOPEN, note=ctx.label("btn.fixed_no")))
    ctx.say("feedback_reopened", number=number)


async def on_rate(ctx: Context) -> None:
    """"rate:NUMBER:N": the resident's rating of the result."""
    found = await _own_case(ctx)
    if found is None or not found[1].isdigit():
        return
    stored, stars = found
    if await _apply(ctx, stored, Event(EventKind.RATE, rating=int(stars),
                                                note=stars)):
        ctx.say("feedback_thanks", rating=int(stars))


async def _apply(ctx: Context, stored: case_store.StoredCase, event: Event) -> bool:
    # The caller's answer recorded by the staff member who phoned the case in is the
    # reporter's own (the phone-in record keeps who recorded it).
    try:
        if stored.case.reporter_id != ctx.contact.person_id:
            _, notices = await phonein.record_caller_answer(
                ctx.conn, ctx.reference, stored, ctx.contact.person_id, event, ctx.now)
        else:
            actor = Actor(person_id=ctx.contact.person_id, role=Role.RESIDENT, scope=None)
            _, notices = await casework.apply_event(ctx.conn, ctx.reference, stored, event,
                                                    actor, ctx.now)
    except (workflow.TransitionRefused, CaseConflict, phonein.AnswerRefused):
        ctx.say("menu_stale")
        return False
    ctx.notices.extend(notices)
    return True

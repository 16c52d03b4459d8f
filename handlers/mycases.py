"""/mycases and /case N: a resident follows what they reported or +1'd."""

from __future__ import annotations

from bot.domain import workflow
from bot.domain.messages import Choice, Kind
from bot.domain.workflow import Actor, Event, EventKind, Role
from bot.services import casework
from handlers import common, staff
from handlers.base import Context, short_list_size
from store import cases as case_store
from store import media as media_store


async def list_cases(ctx: Context) -> None:
    """The person's cases, newest first, each a button that opens it."""
    found = await case_store.for_person(ctx.conn, ctx.contact.person_id, limit=10)
    if not found:
        ctx.say("mycases_empty")
        return
    rows = [{"number": c.number,
             "category": ctx.reference.catalog.get(c.category).name(ctx.locale),
             "state": ctx.label(f"state.{c.state.value}"),
             "created": c.created_at} for c in found]
    shown = found[:short_list_size(ctx)]
    ctx.say("mycases", [Choice(f"case:{c.number}", c.number) for c in shown],
            cases=rows[:len(shown)], total=len(found))


async def open_case(ctx: Context) -> None:
    """A pressed case number ("case:NUMBER"), from /mycases or /tasks."""
    assert ctx.option is not None
    await _show(ctx, ctx.option.split(":", 1)[1])


async def show_case(ctx: Context) -> None:
    """/case N: a case's state and timeline, for its reporter and followers."""
    number = common.case_number(ctx, ctx.msg.args)
    if number is not None:
        await _show(ctx, number)


async def _show(ctx: Context, number: str) -> None:
    stored = await case_store.get_by_number(ctx.conn, number)
    person = ctx.contact.person_id
    if stored is not None:
        actors = await casework.staff_actors(ctx.conn, person)
        if actors and casework.can_view(stored.case, actors):
            await staff.show_case(ctx, stored, actors)
            return
    if stored is None or stored.case.id is None or not (
        stored.case.reporter_id == person
        or await case_store.is_follower(ctx.conn, stored.case.id, person)
    ):
        # The same answer whether the case does not exist or is someone else's.
        ctx.say("case_not_found", number=number)
        return
    case = stored.case
    assert case.id is not None
    timeline = [{"at": e.at, "event": ctx.label(f"event.{e.event}"), "note": e.note}
                for e in await case_store.events(ctx.conn, case.id)]
    photos = [m.id for m in await media_store.for_case(ctx.conn, case.id)]
    choices = []
    if case.reporter_id == person and case.state.value in case_store.OPEN_STATES:
        choices.append(Choice(f"add:{case.number}", "@btn.add_to_case"))
    ctx.say("case_detail", choices, attach=photos[:1], number=case.number,
            category=ctx.reference.catalog.get(case.category).name(ctx.locale),
            state=ctx.label(f"state.{case.state.value}"), description=stored.details.description,
            deadline=case.deadline, area=ctx.reference.district.name(
                case.grid_code or case.street_code, ctx.locale),
            followers=await case_store.follower_count(ctx.conn, case.id), timeline=timeline)


async def on_add(ctx: Context) -> None:
    """"add:NUMBER": the reporter adds a comment or a photo to their open case."""
    assert ctx.option is not None
    number = ctx.option.split(":", 1)[1]
    stored = await case_store.get_by_number(ctx.conn, number)
    if stored is None or stored.case.reporter_id != ctx.contact.person_id:
        ctx.say("case_not_found", number=number)
        return
    ctx.finish()
    ctx.goto("add", "wait")
    ctx.data["number"] = number
    ctx.say("add_ask", number=number)


async def add_step(ctx: Context) -> bool:
    """Take the comment (text) or photo, record it on the case and tell the holder."""
    number = str(ctx.data.get("number", ""))
    stored = await case_store.get_by_number(ctx.conn, number)
    if stored is None or stored.case.id is None or ctx.msg.kind not in (Kind.TEXT, Kind.PHOTO):
        ctx.finish()
        return False
    note = ctx.msg.text.strip()[:500]
    if ctx.msg.kind == Kind.PHOTO and ctx.msg.photo is not None:
        photo = ctx.msg.photo
        media_id = await media_store.add(
            ctx.conn, ctx.msg.channel, ctx.now, provider_ref=photo.provider_ref,
            path=photo.path, sha256=photo.sha256, content_type=photo.content_type)
        await media_store.attach(ctx.conn, [media_id], stored.case.id)
        note = ctx.label("btn.photo_added")
    if not note:
        ctx.say("add_ask", number=number)
        return True
    actor = Actor(person_id=ctx.contact.person_id, role=Role.RESIDENT, scope=None)
    try:
        _, notices = await casework.apply_event(ctx.conn, ctx.reference, stored,
                                                Event(EventKind.COMMENT, note=note), actor,
                                                ctx.now)
    except (workflow.TransitionRefused, case_store.CaseConflict):
        ctx.finish()
        ctx.say("menu_stale")
        return True
    ctx.notices.extend(notices)
    ctx.finish()
    ctx.say("add_done", number=number)
    return True

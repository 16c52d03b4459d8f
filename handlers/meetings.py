"""/meeting: call a meeting (where, who, title, place, time, confirm); attend yes / no.

Grid chiefs and community and street staff may call meetings for the areas they work in.
The invitations go out right after the confirmation (sent by the scheduler), reminders a
day and an hour before; `/meeting` lists the organizer's meetings with the answers.
"""

from __future__ import annotations

from datetime import datetime

from bot.domain.messages import Choice, Kind
from bot.services import meetings, notices
from handlers.audience import ask_audience, ask_scope, pick_scope, preview_context
from handlers.base import Context
from store import meetings as meeting_store
from store import people as people_store

FLOW = "meeting"
MAX_TITLE = 60
MAX_PLACE = 60


async def begin(ctx: Context) -> None:
    """/meeting: call a meeting, or open one called before."""
    ctx.finish()
    roles = await people_store.roles_of(ctx.conn, ctx.contact.person_id)
    areas = notices.areas_for(ctx.reference.district, roles, notices.ORGANIZER_ROLES)
    if not areas:
        ctx.say("meeting_not_allowed")
        return
    ctx.goto(FLOW, "scope")
    ctx.data["areas"] = areas
    called = await meeting_store.by_organizer(ctx.conn, ctx.contact.person_id, limit=3)
    ask_scope(ctx, "meeting_scope", [Choice(f"mshow:{m.id}", m.title[:20]) for m in called])


async def handle(ctx: Context) -> bool:
    """One answer in the meeting dialogue."""
    await STEPS[ctx.conv.step or "scope"](ctx)
    return True


async def _on_scope(ctx: Context) -> None:
    scope = await pick_scope(ctx, notices.ORGANIZER_ROLES)
    if scope is None:
        ask_scope(ctx, "meeting_scope")
        return
    ctx.data["scope"] = scope.code
    ctx.goto(FLOW, "audience")
    ask_audience(ctx, "meeting_audience")


async def _on_audience(ctx: Context) -> None:
    if not (ctx.option and ctx.option.startswith("nto:")):
        ask_audience(ctx, "meeting_audience")
        return
    ctx.data["audience"] = ctx.option.split(":", 1)[1]
    ctx.goto(FLOW, "title")
    ctx.say("meeting_title")


def _typed(ctx: Context, limit: int) -> str:
    return ctx.msg.text.strip()[:limit] if ctx.msg.kind == Kind.TEXT else ""


async def _on_title(ctx: Context) -> None:
    title = _typed(ctx, MAX_TITLE)
    if not title:
        ctx.say("meeting_title")
        return
    ctx.data["title"] = title
    ctx.goto(FLOW, "place")
    ctx.say("meeting_place")


async def _on_place(ctx: Context) -> None:
    place = _typed(ctx, MAX_PLACE)
    if not place:
        ctx.say("meeting_place")
        return
    ctx.data["place"] = place
    ctx.goto(FLOW, "time")
    ctx.say("meeting_time")


async def _on_time(ctx: Context) -> None:
    moment = notices.parse_when(ctx.msg.text, ctx.reference.tz, ctx.now) \
        if ctx.msg.kind == Kind.TEXT else None
    if moment is None:
        ctx.say("notice_when_unclear")
        ctx.say("meeting_time")
        return
    ctx.data["starts_at"] = moment.isoformat()
    ctx.goto(FLOW, "confirm")
    await _ask_confirm(ctx)


async def _ask_confirm(ctx: Context) -> None:
    ctx.say("meeting_preview", [Choice("mconfirm:yes", ctx.label("bulk.send")),
                                Choice("mconfirm:no", ctx.label("btn.cancel"))],
            title=ctx.data["title"], place=ctx.data["place"],
            starts_at=datetime.fromisoformat(ctx.data["starts_at"]),
            **await preview_context(ctx))


async def _on_confirm(ctx: Context) -> None:
    if ctx.option == "mconfirm:no":
        ctx.finish()
        ctx.say("cancelled")
        return
    if ctx.option != "mconfirm:yes":
        ctx.say("choose_from_menu")
        await _ask_confirm(ctx)
        return
    starts_at = datetime.fromisoformat(ctx.data["starts_at"])
    if starts_at <= ctx.now:
        ctx.say("notice_when_unclear")
        ctx.goto(FLOW, "time")
        ctx.say("meeting_time")
        return
    meeting_id = await meeting_store.create(
        ctx.conn, organizer_id=ctx.contact.person_id, title=str(ctx.data["title"]),
        place=str(ctx.data["place"]), starts_at=starts_at, scope=str(ctx.data["scope"]),
        audience=str(ctx.data["audience"]), now=ctx.now)
    ctx.finish()
    ctx.say("meeting_queued", [Choice(f"mshow:{meeting_id}", ctx.label("bulk.answers"))],
            title=ctx.data.get("title", ""), id=meeting_id)


async def on_show(ctx: Context) -> None:
    """"mshow:ID": the answers so far, for the organizer."""
    assert ctx.option is not None
    part = ctx.option.split(":", 1)[1]
    meeting = await meeting_store.get(ctx.conn, int(part) if part.isdigit() else 0)
    ctx.finish()
    if meeting is None or meeting.organizer_id != ctx.contact.person_id:
        ctx.say("meeting_not_found")
        return
    ctx.say("meeting_answers", title=meeting.title, place=meeting.place,
            starts_at=meeting.starts_at, area="", **await meetings.summary(ctx.conn, meeting.id))


async def prompt(ctx: Context) -> None:
    """Ask the current question of the meeting dialogue again."""
    step = ctx.conv.step or "scope"
    if step == "scope":
        ask_scope(ctx, "meeting_scope")
    elif step == "audience":
        ask_audience(ctx, "meeting_audience")
    elif step in ("title", "place", "time"):
        ctx.say(f"meeting_{step}")
    elif step == "confirm":
        await _ask_confirm(ctx)


STEPS = {"scope": _on_scope, "audience": _on_audience, "title": _on_title, "place": _on_place,
         "time": _on_time, "confirm": _on_confirm}

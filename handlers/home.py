"""Residents choose: /home registers where they live, /mute and /unmute notices.

The grid of a resident's home decides which grid's notices reach them ("residents" of a
grid are the people whose home grid it is: set here, or where they last reported from
until they set one here). /mute stops notices and meeting invitations to residents; case
updates (their own reports, cases they follow) always come through.
"""

from __future__ import annotations

from bot.domain.messages import Kind
from handlers.base import Context
from handlers.report import valid_point
from store import notices as notice_store

FLOW = "home"


async def home(ctx: Context) -> None:
    """/home [building or address]: register it, or ask for it."""
    ctx.finish()
    if ctx.msg.args.strip():
        await _locate(ctx, ctx.msg.args)
        return
    grid, building_id = await notice_store.home_of(ctx.conn, ctx.contact.person_id)
    ctx.goto(FLOW, "where")
    ctx.say("home_ask", ask_location=True, current=_home_name(ctx, grid, building_id))


def _home_name(ctx: Context, grid: str | None, building_id: int | None) -> str:
    district = ctx.reference.district
    building = district.buildings.get(building_id) if building_id is not None else None
    if building is not None:
        return (f"{district.building_name(building.id, ctx.locale)}"
                f"（{district.name(building.grid_code, ctx.locale)}）")
    return district.name(grid, ctx.locale) if grid else ""


async def where(ctx: Context) -> bool:
    """The answer to "where do you live": a building, an address, a grid code or a pin."""
    if ctx.msg.kind == Kind.LOCATION and valid_point(ctx.msg.lat, ctx.msg.lon):
        assert ctx.msg.lat is not None and ctx.msg.lon is not None
        place = ctx.reference.district.locate_point(ctx.msg.lat, ctx.msg.lon)
        if place.grid_code is None:
            ctx.say("home_unknown")
            return True
        await _set(ctx, place.grid_code, None)
        return True
    if ctx.msg.kind == Kind.TEXT and ctx.msg.text.strip():
        await _locate(ctx, ctx.msg.text)
        return True
    return False


async def _locate(ctx: Context, text: str) -> None:
    place = ctx.reference.district.locate_text(text)
    if place is None or place.grid_code is None:
        ctx.goto(FLOW, "where")
        ctx.say("home_unknown")
        return
    await _set(ctx, place.grid_code, place.building_id)


async def _set(ctx: Context, grid: str, building_id: int | None) -> None:
    await notice_store.set_home(ctx.conn, ctx.contact.person_id, grid, building_id, ctx.now)
    ctx.finish()
    ctx.say("home_set", home=_home_name(ctx, grid, building_id))


async def prompt(ctx: Context) -> None:
    """Ask again where the person lives."""
    ctx.say("home_ask", ask_location=True, current="")


async def mute(ctx: Context) -> None:
    """/mute: no more notices or meeting invitations (case updates still come)."""
    await notice_store.set_muted(ctx.conn, ctx.contact.person_id, True)
    ctx.say("muted")


async def unmute(ctx: Context) -> None:
    """/unmute: notices again."""
    await notice_store.set_muted(ctx.conn, ctx.contact.person_id, False)
    ctx.say("unmuted")

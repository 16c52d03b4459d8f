"""The grid chief's own tools: /patrol, /opinion, /contact (/visit: handlers/visits.py)."""

from __future__ import annotations

from bot.domain.messages import Kind
from bot.services.notices import ORGANIZER_ROLES, SENDER_ROLES
from handlers import report
from handlers.base import Context
from store import media as media_store
from store import people as people_store
from store import staff as staff_store

FIELD_ROLES = {"grid_chief", "info_officer", "community_staff", "community_director",
               "dispatcher", "admin"}
MAX_TEXT = 1000
# Who files a case for a caller (bot/services/phonein.py) and who reads households
# (bot/services/households.py): kept here as names, for the menu only.
PHONEIN_ROLES = {"grid_chief", "community_staff", "community_director", "dispatcher", "admin"}
HOUSEHOLD_ROLES = PHONEIN_ROLES | {"supervisor"}


async def _field_role(ctx: Context) -> tuple[str, str | None] | None:
    """The person's first field role (role, scope), or None after telling them."""
    for role, scope in await people_store.roles_of(ctx.conn, ctx.contact.person_id):
        if role in FIELD_ROLES:
            return role, scope
    ctx.say("not_staff")
    return None


async def patrol(ctx: Context) -> None:
    """/patrol: report a problem found on patrol (the case is marked so)."""
    found = await _field_role(ctx)
    if found is None:
        return
    await report.begin(ctx)
    ctx.data["patrol"] = {"role": found[0], "scope": found[1]}


async def opinion(ctx: Context) -> None:
    """/opinion: a social-conditions and public-opinion report (社情民意)."""
    if await _field_role(ctx) is None:
        return
    text = ctx.msg.args.strip()
    if text:
        await _save_opinion(ctx, text)
        return
    ctx.finish()
    ctx.goto("opinion", "text")
    ctx.say("opinion_ask")


async def opinion_step(ctx: Context) -> bool:
    """Take the report text."""
    if ctx.msg.kind != Kind.TEXT or not ctx.msg.text.strip():
        ctx.say("opinion_ask")
        return True
    ctx.finish()
    await _save_opinion(ctx, ctx.msg.text.strip())
    return True


async def _save_opinion(ctx: Context, text: str) -> None:
    await staff_store.add_opinion(ctx.conn, ctx.contact.person_id, ctx.contact.grid_code,
                                  text[:MAX_TEXT], ctx.now)
    ctx.say("opinion_logged")


async def contact(ctx: Context) -> None:
    """/contact: show my card; /contact name|phone|duties VALUE changes it;
    /contact photo, then a photo, sets the picture."""
    if await _field_role(ctx) is None:
        return
    field, _, value = ctx.msg.args.strip().partition(" ")
    if field in ("name", "phone", "duties") and value.strip():
        await staff_store.update_card(ctx.conn, ctx.contact.person_id, field,
                                      value.strip()[:200])
    elif field == "photo":
        ctx.finish()
        ctx.goto("contact", "photo")
        ctx.say("contact_photo_ask")
        return
    person = await people_store.get_person(ctx.conn, ctx.contact.person_id)
    assert person is not None
    ctx.say("contact_card", attach=[person.photo_media_id] if person.photo_media_id else [],
            name=person.name or "", phone=person.phone or "", duties=person.duties or "",
            photo=person.photo_media_id is not None)


async def contact_step(ctx: Context) -> bool:
    """Take the card's photo."""
    if ctx.msg.kind != Kind.PHOTO or ctx.msg.photo is None:
        ctx.finish()
        return False
    photo = ctx.msg.photo
    media_id = await media_store.add(ctx.conn, ctx.msg.channel, ctx.now,
                                     provider_ref=photo.provider_ref, path=photo.path,
                                     sha256=photo.sha256, content_type=photo.content_type)
    await staff_store.update_card(ctx.conn, ctx.contact.person_id, "photo", media_id)
    ctx.finish()
    ctx.say("contact_photo_set")
    return True


def staff_menu(roles: list[str]) -> tuple[str, ...]:
    """The commands a staff member's Telegram menu lists, for their roles, in menu order."""
    held = set(roles)
    wanted = {
        "tasks": True, "case": True,
        "patrol": bool(held & FIELD_ROLES), "visit": bool(held & FIELD_ROLES),
        "phonein": bool(held & PHONEIN_ROLES), "household": bool(held & HOUSEHOLD_ROLES),
        "notice": bool(held & SENDER_ROLES), "meeting": bool(held & ORGANIZER_ROLES),
        "stats": True, "contact": bool(held & FIELD_ROLES), "console": True,
        "report": True, "cancel": True, "lang": True, "help": True,
    }
    return tuple(name for name, shown in wanted.items() if shown)

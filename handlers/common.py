"""/start, /help, /lang and /cancel."""

from __future__ import annotations

from bot.domain.messages import Choice
from bot.services.casework import STAFF_ROLES, parse_case_number
from handlers.base import Context
from handlers.chief import staff_menu
from handlers.join import join
from store import people as people_store

LANGUAGES = (("zh_CN", "中文"), ("en", "English"))
STAFF_ROLE_NAMES = frozenset(role.value for role in STAFF_ROLES)


async def start(ctx: Context) -> None:
    """Say what the bot does, with the grid chief's card once the person's grid is known;
    /start CODE (a Telegram deep link) redeems a staff invitation."""
    if ctx.msg.args.strip():
        await join(ctx, ctx.msg.args)
        return
    ctx.finish()
    chief = None
    grid = ctx.contact.grid_code
    if grid:
        chief = await people_store.holder_of(ctx.conn, "grid_chief", grid)
    ctx.say("welcome", attach=[chief.photo_media_id] if chief and chief.photo_media_id else [],
            grid=ctx.reference.district.name(grid, ctx.locale) if grid else "",
            chief=_card(chief) if chief else None)


def _card(person: people_store.Person) -> dict[str, str]:
    return {"name": person.name or "", "phone": person.phone or "",
            "duties": person.duties or ""}


# The commands every person has, listed by the help template itself.
RESIDENT_COMMANDS = frozenset({"report", "mycases", "case", "cancel", "lang", "home", "mute",
                               "unmute", "help"})


async def help_(ctx: Context) -> None:
    """List what a person can type: staff see their roles' commands (the same list as
    their Telegram command menu) before the residents' ones."""
    roles = [role for role, _ in await people_store.roles_of(ctx.conn, ctx.contact.person_id)
             if role in STAFF_ROLE_NAMES]
    if not roles:
        ctx.say("help")
        return
    commands = [{"name": name, "label": ctx.label(f"command.{name}")}
                for name in staff_menu(roles) if name not in RESIDENT_COMMANDS]
    ctx.say("help_staff", commands=commands)


async def cancel(ctx: Context) -> None:
    """Leave whatever dialogue is under way; nothing is filed."""
    if ctx.conv.flow is None:
        ctx.say("nothing_to_cancel")
        return
    ctx.finish()
    ctx.say("cancelled")


async def lang(ctx: Context) -> None:
    """Offer the languages (or switch at once with /lang en)."""
    wanted = ctx.msg.args.strip()
    codes = {code.lower(): code for code, _ in LANGUAGES} | {"zh": "zh_CN", "cn": "zh_CN"}
    if wanted.lower() in codes:
        await _set(ctx, codes[wanted.lower()])
        return
    ctx.finish()
    ctx.goto("lang", "choose")
    ctx.say("lang_choose", [Choice(f"lang:{code}", name) for code, name in LANGUAGES])


async def lang_step(ctx: Context) -> bool:
    """Take the chosen language; anything else ends the language menu."""
    if ctx.option and ctx.option.startswith("lang:"):
        ctx.finish()
        await _set(ctx, ctx.option.split(":", 1)[1])
        return True
    return False


async def _set(ctx: Context, locale: str) -> None:
    await people_store.set_locale(ctx.conn, ctx.contact.person_id, locale)
    ctx.locale = locale
    ctx.say("lang_set")


async def lang_prompt(ctx: Context) -> None:
    """Ask again for the language."""
    ctx.say("lang_choose", [Choice(f"lang:{code}", name) for code, name in LANGUAGES])


async def share_phone(ctx: Context) -> None:
    """/sharephone on|off: let the grid's staff see my phone number in full, or not."""
    choice = ctx.msg.args.strip().lower()
    if choice not in ("on", "off", "开", "关"):
        ctx.say("sharephone_usage")
        return
    visible = choice in ("on", "开")
    await people_store.set_phone_visible(ctx.conn, ctx.contact.person_id, visible)
    ctx.say("sharephone_set", visible=visible)


def case_number(ctx: Context, typed: str) -> str | None:
    """The case number typed after a command, or None after saying what is wrong: nothing
    written (how to use it), or something that is no case number ("999": the format)."""
    number = parse_case_number(typed)
    if number is None:
        given = typed.strip()
        if given:
            ctx.say("case_number_invalid", given=given[:20])
        else:
            ctx.say("case_usage")
    return number

"""Where and to whom: the scope and audience steps that notices and meetings share.

Both dialogues start with an area the person may address (a menu of their areas, or a
building typed by name), then who it is for (residents, grid chiefs, all staff); the
preview counts the recipients per channel the same way for both.
"""

from __future__ import annotations

from typing import Any

from bot.domain.messages import Choice, Kind
from bot.services import notices
from handlers.base import Context
from store import people as people_store


def ask_scope(ctx: Context, template: str, extra: list[Choice] | None = None) -> None:
    """Ask where: the areas this person may address (at most 12), then any extra choices."""
    district = ctx.reference.district
    choices = [Choice(f"nscope:{code}", district.label(code, ctx.locale))
               for code in ctx.data.get("areas", [])[:12]]
    ctx.say(template, [*choices, *(extra or [])])


def ask_audience(ctx: Context, template: str) -> None:
    """Ask who the message is for (notices and meetings alike)."""
    ctx.say(template, [Choice(f"nto:{to}", ctx.label(f"audience.{to}"))
                       for to in notices.AUDIENCES])


async def pick_scope(ctx: Context, roles_allowed: frozenset[str]) -> notices.Scope | None:
    """The scope chosen from the menu or typed (a building), if this person may address it."""
    district = ctx.reference.district
    if ctx.option and ctx.option.startswith("nscope:"):
        scope = notices.resolve_scope(district, ctx.option.split(":", 1)[1])
    elif ctx.msg.kind == Kind.TEXT and ctx.msg.text.strip():
        scope = notices.resolve_scope(district, ctx.msg.text)
    else:
        return None
    roles = await people_store.roles_of(ctx.conn, ctx.contact.person_id)
    if scope is None or notices.may_address(district, roles, scope, roles_allowed) is None:
        ctx.say("notice_scope_unknown")
        return None
    return scope


async def preview_context(ctx: Context) -> dict[str, Any]:
    """Scope, audience and recipients per channel of the message being composed."""
    scope = notices.resolve_scope(ctx.reference.district, str(ctx.data["scope"]))
    assert scope is not None
    counted = await notices.preview(ctx.conn, scope, str(ctx.data["audience"]))
    return {"scope": scope.name(ctx.reference.district, ctx.locale),
            "audience": ctx.label(f"audience.{ctx.data['audience']}"),
            "total": counted.total, "text_only": counted.text_only,
            "channels": [{"channel": ctx.label(f"channel.{name}"), "count": count}
                         for name, count in counted.channels.items()]}

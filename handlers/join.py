"""Joining as staff with a one-time invitation code: /join CODE, /start CODE, SMS JOIN CODE."""

from __future__ import annotations

from handlers.base import Context
from store import people as people_store
from store import staff as staff_store


async def join(ctx: Context, code: str | None = None) -> None:
    """Redeem an invitation: the person gets the role in its scope."""
    code = (code if code is not None else ctx.msg.args).strip()
    if not code:
        ctx.say("join_usage")
        return
    result = await staff_store.redeem_invite(ctx.conn, code, ctx.contact.person_id, ctx.now)
    if isinstance(result, str):
        ctx.say("join_refused", reason=ctx.label(f"join.{result}"))
        return
    await people_store.grant_role(ctx.conn, ctx.contact.person_id, result.role, result.scope,
                                  ctx.now)
    area = ctx.reference.district.areas.get(result.scope or "")
    if area is not None and area.level == "grid":
        await people_store.set_grid(ctx.conn, ctx.contact.person_id, area.code)
    ctx.say("join_done", role=ctx.label(f"role.{result.role}"),
            scope=ctx.reference.district.label(result.scope, ctx.locale) if result.scope
            else "")

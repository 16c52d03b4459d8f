"""/console: a staff member asks for a one-time sign-in link to the web console."""

from __future__ import annotations

from bot.services import console_auth
from handlers.base import Context


async def console_link(ctx: Context) -> None:
    """Send a sign-in link that works once, for this person, for 10 minutes."""
    try:
        url = await console_auth.issue_link(ctx.conn, ctx.contact.person_id, ctx.now,
                                            ctx.reference.public_url)
    except console_auth.SignInRefused:
        ctx.say("not_staff")
        return
    except console_auth.TooManyLinks:
        ctx.say("console_link_limit", per_hour=console_auth.LINKS_PER_HOUR)
        return
    ctx.say("console_link", url=url, minutes=console_auth.LINK_MINUTES)

"""/mydata: what gridbot stores about the person asking (bot/services/households.my_data)."""

from __future__ import annotations

from bot.services import households as household_service
from handlers.base import Context


async def mydata(ctx: Context) -> None:
    """/mydata: my contact details, my cases, and my household if my number is on file."""
    ctx.finish()
    found = await household_service.my_data(ctx.conn, ctx.reference, ctx.contact.person_id,
                                            ctx.locale)
    ctx.say("mydata", name=found.name, phone=found.phone, home=found.home,
            contact_channels=found.contacts, reported=found.reported, followed=found.followed,
            household=found.household)

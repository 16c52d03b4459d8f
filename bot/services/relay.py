"""Messages for the caller of a phoned-in case who wants no SMS: they go to the staff
member who filed it, marked as the caller's, to be passed on by phone.

A case phoned in with SMS on needs nothing here: the caller is its reporter and has an
SMS contact, so the usual notices reach them.
"""

from __future__ import annotations

from bot.domain.messages import Reply
from bot.services.notify import PersonalMessage
from bot.services.people import contact_line
from store import phonein as phonein_store
from store.db import Connection
from store.phonein import PhoneIn

RELAY_TEMPLATE = "phonein_relay"


async def relay_of(conn: Connection, case_id: int | None) -> PhoneIn | None:
    """The phone-in record when the case's reporter hears through its filer, else None."""
    if case_id is None:
        return None
    found = await phonein_store.get(conn, case_id)
    return found if found is not None and not found.sms else None


async def relayed(conn: Connection, relay: PhoneIn, reply: Reply) -> PersonalMessage:
    """The reporter's message, addressed to the filer with the caller named (the number
    in full: the filer calls it back)."""
    caller = await contact_line(conn, relay.caller_id, masked=False)
    return PersonalMessage(relay.filed_by, Reply(
        RELAY_TEMPLATE, {**reply.context, "inner": reply.template, "caller": caller},
        reply.choices, photos=reply.photos, location=reply.location))


async def to_reporter(conn: Connection, case_id: int | None, reporter_id: int,
                      reply: Reply) -> PersonalMessage:
    """A message for a case's reporter, or for its filer when the caller wants no SMS."""
    relay = await relay_of(conn, case_id)
    if relay is None:
        return PersonalMessage(reporter_id, reply)
    return await relayed(conn, relay, reply)

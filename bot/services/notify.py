"""Messages to people other than the sender: rendered where they last wrote from.

A personal message may carry choices (a grid chief's new case with its action buttons). Its menu
then becomes the recipient's current menu: the conversation of the contact it goes to is
updated in the same transaction, so a pressed button resolves against it like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.domain.channels import spec_for
from bot.domain.messages import Reply
from bot.services.render import Renderer
from store import conversations as conversation_store
from store import people as people_store
from store.db import Connection
from store.outbox import PRIORITY_REPLY, OutboundRow


@dataclass(frozen=True)
class PersonalMessage:
    """A message for one person, rendered in their own language and channel."""

    person_id: int
    reply: Reply


def open_menu(conv: conversation_store.Conversation, values: Sequence[str]) -> int:
    """Make `values` the conversation's current menu; return the menu's id."""
    menu_id = int(conv.data.get("_menu_seq", 0)) + 1
    conv.data["_menu_seq"] = menu_id
    conv.data["_menu"] = {"id": menu_id, "values": list(values)}
    return menu_id


async def render_personal(
    conn: Connection, renderer: Renderer, default_locale: str,
    messages: Sequence[PersonalMessage], now: datetime, *, priority: int = PRIORITY_REPLY,
    inbox_id: int | None = None,
) -> list[OutboundRow]:
    """Render each message for its person's last-used contact that has not opted out."""
    rows: list[OutboundRow] = []
    for message in messages:
        contact = next((c for c in await people_store.contacts_of(conn, message.person_id)
                        if not c.opted_out), None)
        if contact is None:
            continue
        menu_id = None
        if message.reply.choices:
            conv = await conversation_store.load(conn, contact.id)
            menu_id = open_menu(conv, [c.value for c in message.reply.choices])
            await conversation_store.save(conn, conv, now)
        for body, payload in renderer.render_all(message.reply, contact.locale or default_locale,
                                                 spec_for(contact.channel), menu_id):
            rows.append(OutboundRow(contact.channel, contact.address, message.person_id, body,
                                    payload, priority=priority, inbox_id=inbox_id))
    return rows

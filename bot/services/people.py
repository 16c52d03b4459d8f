"""How staff-facing lists and cards call a person."""

from __future__ import annotations

from bot.services.render import mask_phone
from store import people as people_store
from store.db import Connection

PHONE_CHANNELS = frozenset({"sms"})  # channels whose address is a phone number


async def display_name(conn: Connection, person_id: int, *,
                       masked: bool = True) -> str:
    """The person's name; without one, their contact: a phone (masked unless told
    otherwise, or the person agreed to show it), else a channel address; else "#ID"."""
    person = await people_store.get_person(conn, person_id)
    if person is None:
        return f"#{person_id}"
    if person.name:
        return person.name
    contacts = await people_store.contacts_of(conn, person_id)
    phone = person.phone or next((c.address for c in contacts
                                  if c.channel in PHONE_CHANNELS), None)
    if phone:
        return mask_phone(phone) if masked and not person.phone_visible else phone
    if contacts:
        return f"{contacts[0].channel} {contacts[0].address}"
    return f"#{person_id}"


async def contact_line(conn: Connection, person_id: int, *,
                       masked: bool = True) -> str:
    """Name and phone, as staff read who reported ("王阿姨 139****5678"): the phone on
    file or the SMS number, masked unless told otherwise or the person agreed to show it."""
    person = await people_store.get_person(conn, person_id)
    if person is None:
        return ""
    phone = person.phone
    if phone is None:
        phone = next((c.address for c in await people_store.contacts_of(conn, person_id)
                      if c.channel in PHONE_CHANNELS), None)
    shown = mask_phone(phone) if masked and not person.phone_visible else (phone or "")
    return " ".join(part for part in (person.name or "", shown) if part)

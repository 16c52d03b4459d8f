"""Phone numbers: E.164 with phonenumbers, and linking a shared number to its person.

SMS addresses are E.164 (+8613800001001). Numbers typed without a country code are read
in the default region (GRIDBOT_PHONE_REGION, CN). Staff files may hold national numbers
(13800001001); `spellings` lists the forms one number may be stored in.
"""

from __future__ import annotations

from datetime import datetime

import phonenumbers

from store import people as people_store
from store.db import Database


def to_e164(raw: str, region: str = "CN") -> str | None:
    """A phone number in E.164, or None when it is not a valid number.

    With a leading + the number is taken as international; without one, as a number of
    `region`. Short codes and alphanumeric senders are not phone numbers (None).
    """
    text = raw.strip()
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def spellings(e164: str) -> list[str]:
    """Other forms the same number may be stored in: national digits, without the +."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return []
    national = phonenumbers.national_significant_number(number)
    return [national, e164.lstrip("+")]


def sms_address(raw_from: str, region: str) -> str:
    """The address an SMS sender is known by: E.164 when it is a phone number, else as sent."""
    return to_e164(raw_from, region) or raw_from.strip()


async def link_shared_phone(db: Database, channel: str, address: str, raw_phone: str,
                            region: str, now: datetime) -> people_store.Linked | None:
    """For a channel's parser: the sender shared their own phone number; link the two.

    Call it only for the sender's own number (Telegram: a `contact` message whose
    `user_id` equals the sender's id), or anyone could take over another person's
    cases. Returns None when the number is not a valid phone number.
    """
    phone = to_e164(raw_phone, region)
    if phone is None:
        return None
    async with db.transaction() as conn:
        return await people_store.link_phone(conn, channel, address, phone, now,
                                             spellings(phone))

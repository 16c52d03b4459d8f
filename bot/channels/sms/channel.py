"""SMS through Twilio: webhook payloads in, the outbox out, delivery reports back.

The webhook (`bot.channels.sms_http`) stores the signed form under its MessageSid and
answers at once; `TwilioChannel.parse` then turns the stored form into what the flows
handle. An MMS becomes its text first, then one photo message per image, then a refusal
for what was not an image; all but the last are handled through `Engine.handle` under
ids derived from the MessageSid ("SM...#1"), so a crash in between repeats nothing.

The sender address is E.164 (`bot.services.phones`); a message from anything else (an
alphanumeric sender, a short code, a number with a NUL in it) is stored and refused, never
answered. A number that a person is already known by
(staff loaded from a file with their phone) is given to that person before its first
message is handled, so a grid chief texting in is the grid chief.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import httpx
from twilio.request_validator import RequestValidator

from bot.channels.sms.media import MediaFetcher
from bot.channels.sms.send import TwilioSender, describe
from bot.domain.clock import Clock
from bot.domain.messages import Inbound, Kind, Unreadable, parse_text
from bot.runtime.engine import Engine, InboundParser
from bot.runtime.outbox import ChannelSender
from bot.services import phones
from bot.settings import Settings
from handlers.sms_keywords import KEYWORD_COMMAND, MEDIA_COMMAND
from store import inbox as inbox_store
from store import outbox as outbox_store
from store import people as people_store

log = logging.getLogger(__name__)

CHANNEL = "sms"
INBOUND_PATH = "/sms/twilio"
STATUS_PATH = "/sms/twilio/status"

# Delivery statuses in the order they move; the final ones share the top rank.
RANKS = {"accepted": 1, "scheduled": 1, "queued": 1, "sending": 2, "sent": 3,
         "delivered": 9, "undelivered": 9, "failed": 9, "canceled": 9, "read": 9}


class TwilioChannel:
    """The SMS channel: parser, sender, and what its webhooks call."""

    name = CHANNEL

    def __init__(self, settings: Settings, engine: Engine, clock: Clock) -> None:
        assert settings.twilio_account_sid and settings.twilio_auth_token
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.validator = RequestValidator(settings.twilio_auth_token)
        self.http = httpx.AsyncClient(timeout=30.0)
        self.media = MediaFetcher(self.http, settings.twilio_api_base_url,
                                  (settings.twilio_account_sid, settings.twilio_auth_token),
                                  settings.media_dir)
        self._sender = TwilioSender(settings, settings.public_url + STATUS_PATH)

    def parser(self) -> InboundParser:
        """How the engine reads this channel's stored webhook forms."""
        return self.parse

    def sender(self) -> ChannelSender:
        """The Twilio Messages API sender."""
        return self._sender

    async def start(self) -> None:
        """Nothing to connect: Twilio calls the webhooks set on the number (docs/sms.md)."""
        log.info("SMS webhooks: %s%s and %s%s", self.settings.public_url, INBOUND_PATH,
                 self.settings.public_url, STATUS_PATH)

    async def stop(self) -> None:
        """Close the connections (the engine has stopped processing by now)."""
        await self._sender.close()
        await self.http.aclose()

    # --- inbound ---------------------------------------------------------------------

    def address_of(self, form: Mapping[str, str]) -> str:
        """The sender's address: E.164 for a phone number."""
        return phones.sms_address(form.get("From", ""), self.settings.phone_region)

    async def take(self, form: dict[str, str]) -> int | None:
        """Hand a webhook form to the engine under its MessageSid (None if seen before)."""
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        return await self.engine.take(CHANNEL, sid, self.address_of(form), form)

    async def parse(self, row: inbox_store.InboxRow) -> Inbound | None:
        """Turn a stored form into the message to handle (MMS parts before it go first)."""
        form = {str(k): str(v) for k, v in row.payload.items()}
        if phones.to_e164(row.address) != row.address:  # an E.164 number maps to itself
            # Nobody to answer: a reply would go to Twilio with this as its To.
            raise Unreadable(f"the sender is not a phone number: {form.get('From', '')!r}")
        await self._claim_address(row.address)
        parts = await self._parts(form, row.address)
        for index, part in enumerate(parts[:-1], start=1):
            await self.engine.handle(part, provider_id=f"{row.provider_id}#{index}")
        return parts[-1]

    async def _claim_address(self, address: str) -> None:
        """A number someone is known by (staff) becomes that person's SMS contact."""
        if not address.startswith("+"):
            return
        if await people_store.find_contact(self.engine.db.conn, CHANNEL, address) is not None:
            return
        async with self.engine.db.transaction() as conn:
            await people_store.claim_sms_address(conn, address, phones.spellings(address),
                                                 self.clock.now())

    async def _parts(self, form: Mapping[str, str], address: str) -> list[Inbound]:
        """The messages one webhook form stands for, in the order to handle them."""
        body = form.get("Body", "")
        opt_out_type = form.get("OptOutType", "").lower()  # Advanced Opt-Out's verdict
        if opt_out_type in ("stop", "start", "help"):
            return [Inbound(CHANNEL, address, Kind.COMMAND, text=body, command=KEYWORD_COMMAND,
                            args=opt_out_type)]
        fetched = await self.media.fetch(form)
        parts: list[Inbound] = []
        lost = fetched.refused or fetched.unreadable or fetched.failed
        if body.strip() or not (fetched.photos or lost):
            parts.append(parse_text(CHANNEL, address, body))
        parts += [Inbound(CHANNEL, address, Kind.PHOTO, photo=p) for p in fetched.photos]
        if lost:  # one answer for all that was not kept, naming the likeliest cause
            why = "" if fetched.refused else "unreadable" if fetched.unreadable else "failed"
            parts.append(Inbound(CHANNEL, address, Kind.COMMAND, command=MEDIA_COMMAND,
                                 args=", ".join(fetched.refused), text=why))
        return parts

    # --- delivery reports ----------------------------------------------------------------

    async def record_status(self, form: Mapping[str, str], message_id: int | None) -> bool:
        """Apply a status callback, forward only; 21610 also stops the number."""
        status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
        rank = RANKS.get(status)
        if rank is None:
            return False
        code = form.get("ErrorCode") or None
        async with self.engine.db.transaction() as conn:
            changed = await outbox_store.record_delivery(
                conn, CHANNEL, status, rank, message_id=message_id,
                provider_id=form.get("MessageSid") or None, error_code=code,
                error=describe(code) if code else None)
            if code == "21610" and form.get("To"):
                await people_store.set_opted_out(conn, CHANNEL, self.address_of(
                    {"From": form["To"]}), True)
        return changed

"""Reading a stored Telegram update into what the flows understand (`Inbound`).

The engine calls `UpdateReader.read` for each stored update, before its transaction, so
the I/O belongs here: a photo is downloaded (`getFile`) into the media folder, and in
polling mode a pressed button is answered (`answerCallbackQuery`) whatever becomes of it
(in webhook mode the webhook's own reply answers it).
Private chats are the main place; in groups only commands, mentions of the bot and replies
to it are read. Edited messages and kinds we cannot read get a short note, not silence;
update kinds we do not handle are ignored (None).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from telegram import (
    Bot,
    CallbackQuery,
    Chat,
    Location,
    Message,
    MessageEntity,
    PhotoSize,
    Update,
    User,
)
from telegram.constants import ChatType
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError

from bot.channels.telegram.send import retry_seconds
from bot.domain.channels import TELEGRAM
from bot.domain.messages import Inbound, Kind, Photo, Reply, parse_text
from bot.runtime.engine import Engine
from bot.services.mediafiles import MAX_PHOTO_BYTES, MediaRefused, save_photo
from bot.services.phones import link_shared_phone
from store import inbox as inbox_store
from store import outbox as outbox_store
from store import people as people_store
from store.inbox import InboxRow
from store.outbox import OutboundRow

log = logging.getLogger(__name__)

CHANNEL = "telegram"
MAX_DOWNLOAD_WAIT = 30.0  # seconds a photo download may wait when Telegram says 429
# What a message read by `read_plain` may hold; any other part (a photo, a caption, a
# venue, a reply, a forward...) sends it the long way.
_PLAIN_KEYS = frozenset({"message_id", "date", "chat", "from", "text", "entities",
                         "link_preview_options", "location"})


def chat_address(update: dict[str, object]) -> str:
    """The chat a raw update belongs to (the conversation's address), read without parsing."""
    for key in ("message", "edited_message", "callback_query"):
        part = update.get(key)
        if not isinstance(part, dict):
            continue
        message = part.get("message", part) if key == "callback_query" else part
        chat = message.get("chat") if isinstance(message, dict) else None
        if isinstance(chat, dict) and "id" in chat:
            return str(chat["id"])
        sender = part.get("from")
        if isinstance(sender, dict) and "id" in sender:
            return str(sender["id"])
    return "-"


class UpdateReader:
    """The Telegram parser: a stored update in, an `Inbound` (or None: ignore it) out."""

    # Waits between attempts to download a photo when the network fails (tests use 0).
    download_delays: Sequence[float] = (1.0, 4.0)

    def __init__(self, bot: Bot, engine: Engine, answer_buttons: bool = True,
                 phone_region: str = "CN") -> None:
        self.bot = bot
        self.engine = engine
        self.phone_region = phone_region
        # Whether pressed buttons are answered here; not when the webhook's reply does it.
        self.answer_buttons = answer_buttons

    async def read(self, row: InboxRow) -> Inbound | None:
        """Turn one stored update into an inbound message, or None when it is not for us."""
        pressed = row.payload.get("callback_query")
        if isinstance(pressed, dict):
            return await self._button(pressed)
        raw = row.payload.get("message")
        if isinstance(raw, dict) and (plain := self.read_plain(raw)) is not None:
            return plain
        return await self.read_whole(row)

    async def read_whole(self, row: InboxRow) -> Inbound | None:
        """Read any update the long way, through python-telegram-bot's `Update`."""
        update = Update.de_json(row.payload, self.bot)
        if update.edited_message is not None:
            edited = update.edited_message
            if edited.location is None and self._for_us(edited):  # live locations move
                await self._note(row, "edited_ignored")
            return None
        message = update.message
        if message is None or not self._for_us(message):
            return None
        return await self._message(row, message)

    async def _button(self, raw: dict[str, Any]) -> Inbound | None:
        """Answer the button press (if the webhook did not), then hand its data on.

        The message the button hangs on is the bot's own and only its chat is read, so it
        is left out of the parsing: a whole `Message` costs more to build than the rest.
        """
        query = CallbackQuery.de_json({k: v for k, v in raw.items() if k != "message"},
                                      self.bot)
        message = raw.get("message")
        chat = message.get("chat") if isinstance(message, dict) else None
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        if self.answer_buttons:
            try:
                await self.bot.answer_callback_query(query.id)
            except TelegramError as exc:  # too old, or the network: the press still counts
                log.info("could not answer callback query %s: %s", query.id, exc)
        if type(chat_id) is not int or query.data is None:  # an inline-mode message: no chat
            return None
        return Inbound(CHANNEL, str(chat_id), Kind.OPTION, option=query.data,
                       name=query.from_user.full_name)

    def read_plain(self, raw: dict[str, Any]) -> Inbound | None:
        """A text or a location in a private chat, the commonest updates by far, read from
        its parts (chat, sender, location, entities) without building the whole `Message`,
        which costs about 130 us, a fifth of handling the update; None for anything else,
        which `read_whole` reads. Both readings give the same (tests/test_telegram.py)."""
        chat, sender = raw.get("chat"), raw.get("from")
        if (not raw.keys() <= _PLAIN_KEYS or not isinstance(chat, dict)
                or not isinstance(sender, dict) or chat.get("type") != ChatType.PRIVATE):
            return None
        address = str(Chat.de_json(chat, self.bot).id)
        name = User.de_json(sender, self.bot).full_name
        text, location = raw.get("text"), raw.get("location")
        if isinstance(text, str) and location is None:
            entities = MessageEntity.de_list(raw.get("entities") or [], self.bot)
            if any(e.type in (MessageEntity.MENTION, MessageEntity.TEXT_MENTION)
                   for e in entities):
                return None  # mentions are cut out of the text: the long way does that
            return parse_text(CHANNEL, address, text, name)
        if isinstance(location, dict) and text is None:
            point = Location.de_json(location, self.bot)
            return Inbound(CHANNEL, address, Kind.LOCATION, lat=point.latitude,
                           lon=point.longitude, name=name)
        return None

    def _for_us(self, message: Message) -> bool:
        """In private chats everything is; in groups commands, mentions and replies to us."""
        if message.chat.type == ChatType.PRIVATE:
            return True
        text = message.text or message.caption or ""
        if text.startswith("/"):
            head = text.split(maxsplit=1)[0]
            _, at, target = head.partition("@")
            return not at or target.lower() == self._username().lower()
        if self._mentions(message):
            return True
        replied = message.reply_to_message
        return bool(replied and replied.from_user and replied.from_user.id == self._bot_id())

    def _username(self) -> str:
        try:
            return self.bot.username
        except RuntimeError:  # not initialized (getMe failed at start): nobody is us
            return "\0"

    def _mentions(self, message: Message) -> list[str]:
        """The texts of the message's mentions of this bot."""
        kinds: list[str | None] = [MessageEntity.MENTION, MessageEntity.TEXT_MENTION]
        entities = {**message.parse_entities(kinds), **message.parse_caption_entities(kinds)}
        me = "@" + self._username().lower()
        return [text for entity, text in entities.items()
                if (entity.type == MessageEntity.MENTION and text.lower() == me)
                or (entity.user is not None and entity.user.id == self._bot_id())]

    def _bot_id(self) -> int | None:
        try:
            return self.bot.id
        except RuntimeError:
            return None

    async def _message(self, row: InboxRow, message: Message) -> Inbound | None:
        address = str(message.chat.id)
        name = (message.from_user.full_name if message.chat.type == ChatType.PRIVATE
                and message.from_user else message.chat.title)
        if message.text is not None:
            text = message.text
            mentions = self._mentions(message)
            for mention in mentions:
                text = text.replace(mention, "")
            return parse_text(CHANNEL, address, text.strip() if mentions else text, name)
        if message.location is not None:  # a venue carries its location too
            return Inbound(CHANNEL, address, Kind.LOCATION, lat=message.location.latitude,
                           lon=message.location.longitude, name=name)
        photo = await self._photo(message)
        if photo is not None:
            return Inbound(CHANNEL, address, Kind.PHOTO, text=message.caption or "",
                           photo=photo, name=name)
        if message.contact is not None and message.chat.type == ChatType.PRIVATE:
            await self._shared_contact(row, message)
            return None
        if message.chat.type == ChatType.PRIVATE:
            await self._note(row, "unsupported_message")
        return None

    async def _shared_contact(self, row: InboxRow, message: Message) -> None:
        """A shared phone number: only the sender's own links their SMS number to them."""
        contact = message.contact
        assert contact is not None
        if message.from_user is None or contact.user_id != message.from_user.id:
            await self._note(row, "phone_not_own")
            return
        linked = await link_shared_phone(self.engine.db, CHANNEL, str(message.chat.id),
                                         contact.phone_number, self.phone_region,
                                         self.engine.clock.now())
        if linked is None or linked.conflict:
            await self._note(row, "phone_not_linked")
        else:
            await self._note(row, "phone_linked")

    async def _photo(self, message: Message) -> Photo | None:
        """Download a photo, or an image sent as a file, into the media folder."""
        if message.photo:
            best = _largest(message.photo)
            if best is None:
                return None
            return await self._download(best.file_id, "image/jpeg")
        document = message.document
        if (document is not None and (document.mime_type or "").startswith("image/")
                and (document.file_size or 0) <= MAX_PHOTO_BYTES):
            return await self._download(document.file_id, document.mime_type or "")
        return None

    async def _download(self, file_id: str, content_type: str) -> Photo | None:
        """getFile and fetch the bytes (retrying network failures), then keep them."""
        for delay in (*self.download_delays, None):
            try:
                file = await self.bot.get_file(file_id)
                data = bytes(await file.download_as_bytearray())
                break
            except BadRequest:  # a file_id Telegram does not know, a file too big: final
                raise
            except RetryAfter as exc:  # a short wait only: the person's next message waits too
                if delay is None or retry_seconds(exc) > MAX_DOWNLOAD_WAIT:
                    raise
                await asyncio.sleep(max(delay, retry_seconds(exc)))
            except NetworkError as exc:  # 5xx and timeouts
                if delay is None:
                    raise
                log.info("download of %s failed (%s); trying again", file_id, exc)
                await asyncio.sleep(delay)
        try:
            return await asyncio.to_thread(save_photo, self.engine.reference.media_dir, data,
                                           content_type, file_id)
        except MediaRefused as exc:
            log.info("photo %s not kept: %s", file_id, exc)
            return None

    async def _note(self, row: InboxRow, template: str) -> None:
        """Tell the person something short, and settle the update as ignored, in one go."""
        engine = self.engine
        now = engine.clock.now()
        async with engine.db.transaction() as conn:
            contact = await people_store.find_contact(conn, CHANNEL, row.address)
            locale = (contact.locale if contact else None) or engine.reference.default_locale
            body, payload = engine.renderer.render(Reply(template), locale, TELEGRAM, None)
            await outbox_store.enqueue(conn, [OutboundRow(
                CHANNEL, row.address, contact.person_id if contact else None, body, payload,
                inbox_id=row.id)], now)
            await inbox_store.mark(conn, row.id, "ignored", now)
        for wake in engine.on_queued:
            wake()


def _largest(sizes: Sequence[PhotoSize]) -> PhotoSize | None:
    """The biggest size of a photo within the download limit."""
    fitting = [s for s in sizes if (s.file_size or 0) <= MAX_PHOTO_BYTES]
    return max(fitting, key=lambda s: s.width * s.height, default=None)

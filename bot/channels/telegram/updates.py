"""Reading a stored Telegram update into what the flows understand (`Inbound`).

The engine calls `UpdateReader.read` for each stored update, before its transaction, so
the I/O belongs here: a photo is downloaded (`getFile`) into the media folder, and in
polling mode a pressed button is answered (`answerCallbackQuery`) whatever becomes of it
(in webhook mode the webhook's own reply answers it).
Private chats are the main place; in groups only commands, mentions of the bot and replies
to it are read. Edited messages and kinds we cannot read get a short note, not silence;
update kinds we do not handle are ignored (None). An update that breaks the Bot API in
what we read (a message that is a string, a text that is a number) is refused
(`Unreadable`, with the reason) before anything acts on it: no traceback, no reply.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
from bot.domain.messages import Inbound, Kind, Photo, Reply, Unreadable, parse_text
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

# The parts of an update the reader uses, with their JSON types (Bot API names in the
# comments): python-telegram-bot builds its objects from whatever it is given, so a text
# that is a number would only fail later, deep in a flow. Field: (type, required); a dict
# is an object, a one-item list an array of it, float any number (Float).
Shape = dict[str, tuple[Any, bool]]
_USER: Shape = {"id": (int, True), "is_bot": (bool, True), "first_name": (str, True),
                "last_name": (str, False), "username": (str, False)}
_CHAT: Shape = {"id": (int, True), "type": (str, True), "title": (str, False)}
_LOCATION: Shape = {"latitude": (float, True), "longitude": (float, True)}
_ENTITY: Shape = {"type": (str, True), "offset": (int, True), "length": (int, True),
                  "user": (_USER, False)}
_PHOTO_SIZE: Shape = {"file_id": (str, True), "file_unique_id": (str, True),
                      "width": (int, True), "height": (int, True), "file_size": (int, False)}
_MESSAGE: Shape = {
    "message_id": (int, True), "date": (int, True), "chat": (_CHAT, True),
    "from": (_USER, False), "text": (str, False), "caption": (str, False),
    "entities": ([_ENTITY], False), "caption_entities": ([_ENTITY], False),
    "location": (_LOCATION, False),
    "venue": ({"location": (_LOCATION, True), "title": (str, True),
               "address": (str, True)}, False),
    "photo": ([_PHOTO_SIZE], False),
    "document": ({"file_id": (str, True), "file_unique_id": (str, True),
                  "mime_type": (str, False), "file_size": (int, False)}, False),
    "contact": ({"phone_number": (str, True), "first_name": (str, True),
                 "user_id": (int, False)}, False),
}
_MESSAGE["reply_to_message"] = (_MESSAGE, False)
_CALLBACK_QUERY: Shape = {
    "id": (str, True), "from": (_USER, True), "chat_instance": (str, True),
    "data": (str, False), "message": ({"chat": (_CHAT, True)}, False),
}
_UPDATE: Shape = {"message": (_MESSAGE, False), "edited_message": (_MESSAGE, False),
                  "callback_query": (_CALLBACK_QUERY, False)}


def malformed(update: dict[str, Any]) -> str | None:
    """Why an update cannot be read as the Bot API describes it, or None if it can."""
    return _problem(update, _UPDATE, "update")


def _problem(value: Any, shape: Any, where: str) -> str | None:
    """The first part of `value` that is not of `shape`, said in a line; None if none."""
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where} is not an object"
        for name, (part, required) in shape.items():
            item = value.get(name)
            if item is None:
                if required:
                    return f"{where}.{name} is missing"
            elif (problem := _problem(item, part, f"{where}.{name}")) is not None:
                return problem
        return None
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{where} is not an array"
        return next((p for i, item in enumerate(value)
                     if (p := _problem(item, shape[0], f"{where}[{i}]")) is not None), None)
    numeric = (int, float) if shape is float else shape
    # JSON true is no Integer (bool is an int in Python); a str subclass (polling hands
    # over python-telegram-bot's enums, ChatType.PRIVATE) is a String.
    if not isinstance(value, numeric) or (shape is not bool and isinstance(value, bool)):
        shown = json.dumps(value, ensure_ascii=False, default=str)[:40]
        return f"{where} is not {_TYPE_NAMES[shape]}: {shown}"
    return None


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


@contextmanager
def _bot_api_objects() -> Iterator[None]:
    """python-telegram-bot building objects from parts `malformed` does not check: what it
    cannot build is an update that breaks the Bot API (Unreadable)."""
    try:
        yield
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise Unreadable(f"not a Bot API update: {type(exc).__name__}: {exc}") from None


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
        """Turn one stored update into an inbound message, or None when it is not for us;
        `Unreadable` when it breaks the Bot API."""
        if (problem := malformed(row.payload)) is not None:
            raise Unreadable(problem)
        pressed = row.payload.get("callback_query")
        if isinstance(pressed, dict):
            return await self._button(pressed)
        raw = row.payload.get("message")
        if isinstance(raw, dict) and (plain := self.read_plain(raw)) is not None:
            return plain
        return await self.read_whole(row)

    async def read_whole(self, row: InboxRow) -> Inbound | None:
        """Read any update the long way, through python-telegram-bot's `Update`."""
        with _bot_api_objects():
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
        with _bot_api_objects():
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
        try:
            photo = await self._photo(message)
        except MediaRefused as exc:  # not readable, too many pixels, too big: say which
            log.info("photo in inbox %s refused: %s", row.id, exc)
            await self._note(row, "photo_refused", error=f"photo refused: {exc}", why=exc.why)
            return None
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
        """Download a photo, or an image sent as a file, into the media folder; None if
        the message has neither, MediaRefused if it is no image we keep."""
        too_big = MediaRefused("bytes", f"over {MAX_PHOTO_BYTES // (1024 * 1024)} MB")
        if message.photo:
            best = _largest(message.photo)
            if best is None:
                raise too_big
            return await self._download(best.file_id, "image/jpeg")
        document = message.document
        if document is not None and (document.mime_type or "").startswith("image/"):
            if (document.file_size or 0) > MAX_PHOTO_BYTES:
                raise too_big
            return await self._download(document.file_id, document.mime_type or "")
        return None

    async def _download(self, file_id: str, content_type: str) -> Photo:
        """getFile and fetch the bytes (retrying network failures), then keep them if
        they are an image we keep (MediaRefused if not)."""
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
        return await asyncio.to_thread(save_photo, self.engine.reference.media_dir, data,
                                       content_type, file_id)

    async def _note(self, row: InboxRow, template: str, error: str | None = None,
                    **context: object) -> None:
        """Tell the person something short, and settle the update as ignored (with why,
        if given), in one go."""
        engine = self.engine
        now = engine.clock.now()
        async with engine.db.transaction() as conn:
            contact = await people_store.find_contact(conn, CHANNEL, row.address)
            locale = (contact.locale if contact else None) or engine.reference.default_locale
            body, payload = engine.renderer.render(Reply(template, context), locale,
                                                   TELEGRAM, None)
            await outbox_store.enqueue(conn, [OutboundRow(
                CHANNEL, row.address, contact.person_id if contact else None, body, payload,
                inbox_id=row.id)], now)
            await inbox_store.mark(conn, row.id, "ignored", now, error)
        for wake in engine.on_queued:
            wake()


def _largest(sizes: Sequence[PhotoSize]) -> PhotoSize | None:
    """The biggest size of a photo within the download limit."""
    fitting = [s for s in sizes if (s.file_size or 0) <= MAX_PHOTO_BYTES]
    return max(fitting, key=lambda s: s.width * s.height, default=None)

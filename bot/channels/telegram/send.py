"""Delivering one outbox row to Telegram: a place, photos, then the text (split), then the
keyboard.

The body is already HTML (templates render with autoescape), so it goes out with parse
mode HTML. Choices become an inline keyboard whose `callback_data` is the opaque
"MENU:INDEX" the engine resolves; a location request becomes a one-button reply keyboard
(private chats only), taken away again with the next plain message. Provider errors
become a `Delivery`: 429 waits `retry_after`, 403 stops the contact, 400 fails the row,
network and 5xx errors retry. A row sent in several calls remembers how far it got, so a
retry does not repeat the parts already delivered. A photo that cannot be sent (Telegram
refuses it: IMAGE_PROCESS_FAILED, or its file is gone) is left out and the text and its
buttons still go: a staff card without its picture can still be acted on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)

from bot.channels.telegram.api import BotApi
from bot.runtime.outbox import Delivery, Limits
from store import media as media_store
from store.db import Database
from store.media import MediaRow
from store.outbox import StoredOutbound

log = logging.getLogger(__name__)

# PTB 22 gives time periods (retry_after, ...) as numbers with a deprecation warning, or
# as timedelta when this is set: the latter is PTB's future and what we read.
os.environ.setdefault("PTB_TIMEDELTA", "true")

MAX_CAPTION = 1024  # a photo's caption, in UTF-16 units as the text limit
MAX_TEXT = 4096  # characters (UTF-16 code units) in one message
PRIVATE_CHAT_BURST = 3  # messages to one private chat at once, before one a second
Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove
Part = Callable[[], Awaitable[int | None]]  # the message id; None: a photo left out
_ENTITY_START = re.compile(r"&[#0-9A-Za-z]{0,10}$")


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _cut(line: str, limit: int) -> int:
    """Where to cut a line too long for one message: within the limit, not inside an
    HTML entity (&lt;), after a space if there is one in the last stretch."""
    cut = min(len(line), limit)
    while cut > 1 and utf16_len(line[:cut]) > limit:
        cut -= 1
    entity = _ENTITY_START.search(line[:cut])
    if entity and entity.start() > 0:
        cut = entity.start()
    space = line.rfind(" ", max(1, cut - 200), cut)
    return space + 1 if space > 0 else cut


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split a text into messages of at most `limit`, on line boundaries where possible."""
    if utf16_len(text) <= limit:
        return [text] if text.strip() else []
    chunks: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while utf16_len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            cut = _cut(line, limit)
            chunks.append(line[:cut])
            line = line[cut:]
        if utf16_len(current) + utf16_len(line) > limit:
            chunks.append(current)
            current = ""
        current += line
    chunks.append(current)
    return [c.rstrip("\n") for c in chunks if c.strip()]


def retry_seconds(exc: RetryAfter) -> float:
    """The wait Telegram asked for, in seconds (PTB 22 gives a timedelta or, without
    PTB_TIMEDELTA, a number)."""
    value: Any = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def delivery_for(exc: TelegramError) -> Delivery:
    """What a Bot API error means for the outbox row."""
    if isinstance(exc, RetryAfter):
        wait = retry_seconds(exc)
        return Delivery("retry", error=f"flood control: retry after {wait:g} s",
                        retry_after=wait)
    if isinstance(exc, Forbidden):  # blocked by the user, or the account is deactivated
        return Delivery("stopped", error=exc.message)
    if isinstance(exc, ChatMigrated):
        return Delivery("failed", error=f"the group moved to chat {exc.new_chat_id}")
    if isinstance(exc, BadRequest):
        return Delivery("failed", error=exc.message)
    if isinstance(exc, InvalidToken):
        log.error("Telegram refused the bot token (TELEGRAM_BOT_TOKEN): %s", exc.message)
    return Delivery("retry", error=f"{type(exc).__name__}: {exc.message}")


class TelegramSender:
    """Makes one delivery attempt of an outbox row through the Bot API."""

    channel = "telegram"

    def __init__(self, bot: Bot, db: Database, media_dir: Path, rate: float = 30.0,
                 api: BotApi | None = None) -> None:
        # Telegram's limits: 30 messages a second overall (GRIDBOT_TELEGRAM_RATE, raised
        # only against a test gateway), about one a second to the same chat, "short bursts
        # that go over this limit" allowed (a reply of up to three messages goes at once),
        # 20 a minute into one group (group chat ids are negative), without bursts.
        self.limits = Limits(per_second=rate, per_address_per_second=1,
                             per_group_per_minute=20, group_prefix="-",
                             per_address_burst=PRIVATE_CHAT_BURST)
        self.bot = bot
        # Texts go out as plain JSON posts (api.py); photos, venues and the rest with PTB.
        self.api = api or BotApi(bot.base_url, self.limits.concurrency)
        self.db = db
        self.media_dir = media_dir
        self._progress: dict[int, int] = {}  # outbox id -> parts delivered before a retry
        # Private chats known not to show our location keyboard. It starts empty, so after
        # a restart the first plain message to each chat also removes one left showing.
        self._keyboard_gone: set[str] = set()

    async def send(self, message: StoredOutbound) -> Delivery:
        """Try to deliver one message; never raise for provider errors."""
        try:
            chat_id = int(message.address)
        except ValueError:
            return Delivery("failed", error=f"not a Telegram chat id: {message.address!r}")
        markup = self._markup(message, chat_id)
        delivery: Delivery | None = None
        try:
            delivery = await self._deliver(message, chat_id, markup)
            return delivery
        finally:
            # A removal that no text part carried out (a failure, a photo alone) is not done.
            if isinstance(markup, ReplyKeyboardRemove) and not (
                    delivery is not None and delivery.status == "sent" and message.body.strip()):
                self._keyboard_gone.discard(message.address)

    async def _deliver(self, message: StoredOutbound, chat_id: int,
                       markup: Markup | None) -> Delivery:
        """Send the message's parts not yet delivered; the outcome of this attempt."""
        parts = await self._parts(message, chat_id, markup)
        done = self._progress.get(message.id, 0)
        last: int | None = None
        try:
            for index in range(done, len(parts)):
                last = await parts[index]() or last
                self._progress[message.id] = index + 1
        except (TelegramError, OSError) as exc:
            delivery = (delivery_for(exc) if isinstance(exc, TelegramError)
                        else Delivery("failed", error=f"media file unreadable: {exc}"))
            if delivery.status != "retry":
                self._progress.pop(message.id, None)
            return delivery
        self._progress.pop(message.id, None)
        if last is None and parts and done == 0:  # photos only, and none could be sent
            return Delivery("failed", error="no photo of the message could be sent")
        return Delivery("sent", provider_id=str(last) if last else None)

    def _markup(self, message: StoredOutbound, chat_id: int) -> Markup | None:
        buttons = message.payload.get("buttons") or []
        if buttons:
            return InlineKeyboardMarkup(
                [[InlineKeyboardButton(str(label), callback_data=str(data))]
                 for label, data in buttons])
        label = message.payload.get("request_location")
        if label and chat_id > 0:  # a reply-keyboard location button works in private chats
            self._keyboard_gone.discard(message.address)
            return ReplyKeyboardMarkup([[KeyboardButton(str(label), request_location=True)]],
                                       resize_keyboard=True, one_time_keyboard=True)
        if chat_id > 0 and message.address not in self._keyboard_gone:
            # Noted now, not after the send: the next message may be on its way meanwhile.
            self._keyboard_gone.add(message.address)
            return ReplyKeyboardRemove()
        return None

    async def _parts(self, message: StoredOutbound, chat_id: int,
                     markup: Markup | None) -> list[Part]:
        """The calls that make up this message: the place (a venue), each photo, then each
        piece of text; a text that fits a caption goes on the last photo instead."""
        parts: list[Part] = []
        where = message.payload.get("location")
        if isinstance(where, dict):
            parts.append(self._location_part(chat_id, where))
        photo_ids = [int(m) for m in message.payload.get("photos") or []]
        photos = []
        for row in await media_store.get_many(self.db.conn, photo_ids):
            if (row.channel == "telegram" and row.provider_ref) or row.path:
                photos.append(row)
            else:
                log.warning("media %s has neither a file nor a file_id; not sent", row.id)
        chunks = split_text(message.body)
        if photos and len(chunks) == 1 and message.body.strip() \
                and utf16_len(message.body) <= MAX_CAPTION:
            # The text (and its buttons) as the last photo's caption: one message to act on.
            parts += [self._photo_part(chat_id, row) for row in photos[:-1]]
            parts.append(self._captioned_part(chat_id, photos[-1], message.body, markup))
            return parts
        parts += [self._photo_part(chat_id, row) for row in photos]
        for index, chunk in enumerate(chunks):
            keyboard = markup if index == len(chunks) - 1 else None
            parts.append(self._text_part(chat_id, chunk, keyboard))
        return parts

    def _text_part(self, chat_id: int, text: str, markup: Markup | None) -> Part:
        def call() -> Awaitable[int]:
            return self._send_text(chat_id, text, markup)
        return call

    async def _send_text(self, chat_id: int, text: str, markup: Markup | None) -> int:
        """sendMessage in HTML, with its keyboard; the new message's id."""
        params: dict[str, Any] = {"chat_id": chat_id, "text": text,
                                  "parse_mode": ParseMode.HTML.value}
        if markup is not None:
            params["reply_markup"] = markup.to_dict()
        sent = await self.api.call("sendMessage", params)
        return int(sent["message_id"])

    async def close(self) -> None:
        """Close the connections of the text path."""
        await self.api.close()

    def _location_part(self, chat_id: int, where: dict[str, Any]) -> Part:
        """A venue (the point with what is there), or the bare point without a title."""
        lat, lon = float(where["lat"]), float(where["lon"])
        title, address = str(where.get("title") or ""), str(where.get("address") or "")

        async def call() -> int:
            if title:
                return (await self.bot.send_venue(chat_id, latitude=lat, longitude=lon,
                                                  title=title, address=address or title)
                        ).message_id
            return (await self.bot.send_location(chat_id, latitude=lat, longitude=lon)
                    ).message_id
        return call

    def _photo_part(self, chat_id: int, row: MediaRow) -> Part:
        async def call() -> int | None:
            try:
                return (await self._send_photo(chat_id, row)).message_id
            except (BadRequest, OSError) as exc:  # this photo, not the chat: go on without it
                log.warning("media %s not sent to %s (%s); the text goes without it",
                            row.id, chat_id, exc)
                return None
        return call

    def _captioned_part(self, chat_id: int, row: MediaRow, text: str,
                        markup: Markup | None) -> Part:
        async def call() -> int:
            try:
                return (await self._send_photo(chat_id, row, caption=text, markup=markup)
                        ).message_id
            except (BadRequest, OSError) as exc:  # the photo, not the chat: the text alone
                log.warning("media %s not sent to %s (%s); the text goes without it",
                            row.id, chat_id, exc)
                return await self._send_text(chat_id, text, markup)
        return call

    async def _send_photo(self, chat_id: int, row: MediaRow, caption: str | None = None,
                          markup: Markup | None = None) -> Message:
        """sendPhoto by file_id, else (or when Telegram forgot it) by uploading the file."""
        extra: dict[str, Any] = {} if caption is None else {
            "caption": caption, "parse_mode": ParseMode.HTML, "reply_markup": markup}
        if row.channel == "telegram" and row.provider_ref:
            try:
                return await self.bot.send_photo(chat_id, row.provider_ref, **extra)
            except BadRequest:
                if not row.path:
                    raise
                log.info("file_id of media %s refused; uploading the file", row.id)
        assert row.path is not None
        data = await asyncio.to_thread((self.media_dir / row.path).read_bytes)
        return await self.bot.send_photo(chat_id, InputFile(data, filename=Path(row.path).name),
                                         **extra)

"""The Telegram channel: python-telegram-bot as the transport, the engine for the rest.

On start it learns its own name (`getMe`, for mentions in groups), sets the command menu
in Chinese and English (`setMyCommands`; staff chats get their own, `menus.py`), and
either registers the webhook (`setWebhook` with the secret token and only the update kinds
we read) or removes it and polls (`getUpdates`). Both ways an update goes to the engine
with one call (`Engine.take`): stored in the inbox under its `update_id` first, processed
after in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from telegram import Bot, BotCommand
from telegram.error import InvalidToken, RetryAfter, TelegramError

from bot.channels.telegram.menus import StaffMenus
from bot.channels.telegram.send import TelegramSender, retry_seconds
from bot.channels.telegram.updates import UpdateReader, chat_address
from bot.domain.clock import Clock
from bot.runtime.engine import Engine, InboundParser
from bot.runtime.outbox import ChannelSender, backoff
from bot.runtime.supervisor import TRANSIENT_ERRORS, Health
from bot.settings import Settings

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
ALLOWED_UPDATES = ("message", "edited_message", "callback_query")
# Residents' menu; /mydata is there because what we keep about a person is theirs to see.
MENU_COMMANDS = ("report", "mycases", "case", "home", "mydata", "cancel", "lang", "help")
MENU_LANGUAGES = {"zh": "zh_CN", "en": "en"}  # Telegram language_code -> our locale
POLL_TIMEOUT = 30  # seconds a getUpdates call may wait for updates


def make_bot(settings: Settings) -> Bot:
    """A PTB Bot talking to TELEGRAM_API_BASE_URL (Telegram, a local Bot API, a fake)."""
    assert settings.telegram_token is not None
    base = settings.telegram_api_base_url
    return Bot(settings.telegram_token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot")


class TelegramChannel:
    """Telegram, plugged into the engine (parser) and the outbox (sender)."""

    name = "telegram"

    def __init__(self, settings: Settings, engine: Engine, clock: Clock,
                 bot: Bot | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.bot = bot or make_bot(settings)
        self.reader = UpdateReader(self.bot, engine,
                                   answer_buttons=settings.telegram_mode == "polling",
                                   phone_region=settings.phone_region)
        self._sender = TelegramSender(self.bot, engine.db, settings.media_dir,
                                      settings.telegram_rate)
        self.menus = StaffMenus(self.bot, engine.db, engine.renderer, clock, settings.locale)
        self.polling_health = Health(clock).reporter("telegram-polling")  # bootstrap's registry
        self._background: asyncio.Task[None] | None = None
        self._menus: asyncio.Task[None] | None = None

    @property
    def webhook_secret(self) -> str | None:
        """What Telegram must send in X-Telegram-Bot-Api-Secret-Token."""
        return self.settings.telegram_webhook_secret

    def parser(self) -> InboundParser:
        """How the engine reads this channel's stored updates."""
        return self.reader.read

    def sender(self) -> ChannelSender:
        """How queued messages reach Telegram."""
        return self._sender

    async def start(self) -> None:
        """Connect: getMe, the command menu, then the webhook or polling.

        A wrong token stops the start; an unreachable Telegram does not: connecting is
        retried in the background, and updates wait at Telegram meanwhile.
        """
        try:
            await self.connect()
        except InvalidToken:
            raise
        except TelegramError as exc:
            log.warning("Telegram not reachable at start (%s); retrying in the background", exc)
            self._background = asyncio.create_task(self._connect_later(), name="telegram")
            return
        if self.settings.telegram_mode == "polling":
            self._background = asyncio.create_task(self.poll(), name="telegram-polling")

    async def connect(self) -> None:
        """getMe, setMyCommands per language, then setWebhook (or deleteWebhook to poll)."""
        await self.bot.initialize()
        await self.set_commands()
        if self._menus is None:
            self._menus = asyncio.create_task(self.menus.run(), name="telegram-menus")
        if self.settings.telegram_mode == "webhook":
            await self.bot.set_webhook(
                url=self.settings.public_url + WEBHOOK_PATH,
                secret_token=self.webhook_secret, allowed_updates=list(ALLOWED_UPDATES))
        else:
            await self.bot.delete_webhook()

    async def _connect_later(self) -> None:
        attempt = 0
        while True:
            attempt += 1
            await asyncio.sleep(backoff(attempt, None))
            try:
                await self.connect()
            except TelegramError as exc:
                log.warning("Telegram still not reachable (%s)", exc)
                continue
            break
        if self.settings.telegram_mode == "polling":
            await self.poll()

    async def set_commands(self) -> None:
        """The command menu, in each language we speak and as the default."""
        renderer = self.engine.renderer
        for code, locale in (*MENU_LANGUAGES.items(), (None, self.settings.locale)):
            commands = [BotCommand(name, renderer.label(locale, f"command.{name}"))
                        for name in MENU_COMMANDS]
            await self.bot.set_my_commands(commands, language_code=code)

    async def stop(self) -> None:
        """Stop polling, let the updates under way finish (briefly), close the client."""
        for task in (self._background, self._menus):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._background = self._menus = None
        with contextlib.suppress(TelegramError, RuntimeError):
            await self.bot.shutdown()
        await self._sender.close()

    async def take(self, update: dict[str, Any], raw: str | None = None) -> int | None:
        """Hand an update to the engine under its update_id (webhook and polling alike)."""
        return await self.engine.take(self.name, str(update["update_id"]),
                                      chat_address(update), update, raw)

    async def poll_once(self, offset: int | None = None,
                        wait: int = POLL_TIMEOUT) -> int | None:
        """One getUpdates: store each update and process it; return the next offset."""
        updates = await self.bot.get_updates(offset=offset, timeout=wait,
                                             allowed_updates=list(ALLOWED_UPDATES))
        for update in updates:
            await self.take(update.to_dict())
            offset = update.update_id + 1
        return offset

    async def poll(self) -> None:
        """Long-poll until cancelled; errors wait and try again."""
        offset: int | None = None
        failures = 0
        while True:
            try:
                offset = await self.poll_once(offset=offset)
                failures = 0
                self.polling_health.ok()
            except TRANSIENT_ERRORS as exc:  # stored updates are skipped when fetched again
                await asyncio.sleep(self.polling_health.failed(exc))
            except RetryAfter as exc:
                await asyncio.sleep(retry_seconds(exc))
            except InvalidToken:
                log.error("Telegram refused the bot token; polling stops")
                raise
            except TelegramError as exc:
                failures += 1
                wait = min(backoff(failures, None), 60.0)
                log.warning("getUpdates failed (%s); again in %.0f s", exc, wait)
                await asyncio.sleep(wait)
            except Exception as exc:  # noqa: BLE001 - a bug must not end polling for good
                failures += 1
                log.exception("polling failed; again in a moment")
                await asyncio.sleep(self.polling_health.failed(exc))

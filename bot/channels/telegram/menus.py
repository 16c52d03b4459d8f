"""Staff get their own command menu in Telegram: /tasks, /patrol, /notice… as their roles allow.

Everyone else sees the default menu (`setMyCommands` at start). A staff member's private
chat is given a menu of its own (`setMyCommands` with a chat scope) in their language, and
a chat whose person is no longer staff goes back to the default (`deleteMyCommands`).

The database says who should have which menu; `telegram_menus` records what each chat
was given. `sync` sets only the differences, so it is cheap to run often: at start, and
then every `SYNC_SECONDS` (a new grid chief sees the menu within a minute of joining).
A chat Telegram refuses (blocked, gone) is recorded with the error and not tried again
until its menu changes; a chat that leaves the staff is cleared once, whatever Telegram
answers.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Bot, BotCommand, BotCommandScopeChat
from telegram.error import BadRequest, Forbidden, RetryAfter

from bot.channels.telegram.send import retry_seconds
from bot.domain.clock import Clock
from bot.runtime.supervisor import TRANSIENT_ERRORS, Health
from bot.services.render import Renderer
from handlers.chief import staff_menu
from store import menus as menu_store
from store.db import Database
from store.leader import Leadership

log = logging.getLogger(__name__)

SYNC_SECONDS = 60.0
PACE_SECONDS = 0.05  # between calls: far below the Bot API's limits, even for a big street


class StaffMenus:
    """Keeps each staff chat's command menu in line with the person's roles."""

    def __init__(self, bot: Bot, db: Database, renderer: Renderer, clock: Clock,
                 default_locale: str, pace: float = PACE_SECONDS) -> None:
        self.bot = bot
        self.db = db
        self.renderer = renderer
        self.clock = clock
        self.default_locale = default_locale
        self.pace = pace
        self.health = Health(clock).reporter("telegram-menus")  # the app's registry: bootstrap
        self.leadership: Leadership | None = None  # several processes: bootstrap hands it in

    async def sync(self) -> int:
        """Set or clear the menus that differ from what was recorded; return the calls made."""
        wanted = {address: self._menu(locale, roles)
                  for address, locale, roles in await menu_store.staff_chats(self.db.conn)}
        given = await menu_store.recorded(self.db.conn)
        calls = 0
        for address in sorted(set(wanted) | set(given)):
            menu = wanted.get(address)
            if menu == given.get(address):
                continue
            if calls:
                await asyncio.sleep(self.pace)
            calls += 1
            await self._apply(address, menu)
        return calls

    async def run(self) -> None:
        """Sync now and then every SYNC_SECONDS, until cancelled; errors wait for the next
        (a transient database error is reported to the health registry in one line)."""
        while True:
            try:
                # With several processes on PostgreSQL one of them keeps the menus.
                if self.leadership is None or await self.leadership.holds("telegram-menus"):
                    await self.sync()
            except RetryAfter as exc:
                await asyncio.sleep(retry_seconds(exc))
                continue
            except TRANSIENT_ERRORS as exc:
                await asyncio.sleep(self.health.failed(exc))
                continue
            except Exception:  # noqa: BLE001 - a menu is not worth stopping the bot for
                log.exception("syncing the staff command menus failed")
            else:
                self.health.ok()
            await asyncio.sleep(SYNC_SECONDS)

    def _menu(self, locale: str | None, roles: list[str]) -> str:
        """The recorded form of a menu: its locale and commands."""
        return f"{locale or self.default_locale}:{','.join(staff_menu(roles))}"

    async def _apply(self, address: str, menu: str | None) -> None:
        error = None
        try:
            scope = BotCommandScopeChat(int(address))
            if menu is None:
                await self.bot.delete_my_commands(scope=scope)
            else:
                locale, names = menu.split(":", 1)
                await self.bot.set_my_commands(
                    [BotCommand(name, self.renderer.label(locale, f"command.{name}"))
                     for name in names.split(",")], scope=scope)
        except RetryAfter:
            raise  # the whole sync waits, then starts again
        except (BadRequest, Forbidden, ValueError) as exc:  # this chat's own answer
            error = f"{type(exc).__name__}: {exc}"
            log.warning("Telegram refused the command menu of chat %s: %s", address, error)
        # Anything else (a timeout, the network, a 5xx) is not this chat's fault: it ends
        # the sync with nothing recorded for the chat, and the next sync tries again.
        async with self.db.transaction() as conn:
            if menu is None:  # back to the default, or gone: either way nothing more to do
                await menu_store.forget(conn, address)
            else:
                await menu_store.record(conn, address, menu, self.clock.now(), error)

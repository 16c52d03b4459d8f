"""gridbot with Telegram on, served by uvicorn on localhost, driven one step at a time.

The webhook is reached over real HTTP; the Bot API is the fake one (tests.fake_telegram).
A method Telegram is asked to run in the webhook's reply (answerCallbackQuery) is checked
against the spec like any call and kept in `answers`.
The outbox worker does not run by itself: `deliver()` waits for the updates posted so far
to be processed, then drains the outbox once per due batch, so what reached the fake API
is known exactly when the test looks. Pacing (30 msg/s, 1 per chat per second) is lifted
for the test's own sender so no test waits for the clock; the limits themselves are
checked separately.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bot.bootstrap import Gridbot, build
from bot.channels.telegram import TelegramChannel
from bot.domain.clock import FakeClock
from bot.entrypoints.http import create_app
from bot.runtime.outbox import Limits, OutboxWorker, RateLimiter
from bot.settings import Settings
from tests.fake_telegram import Call, FakeTelegram, listening_socket

SECRET = "webhook-secret_0123456789"
PUBLIC_URL = "https://gridbot.example.org"
SENDS = ("sendMessage", "sendPhoto")


def telegram_settings(folder: Path, fake: FakeTelegram, **extra: str) -> Settings:
    """Settings with Telegram on, in webhook mode, pointed at the fake Bot API."""
    return Settings.from_mapping({
        "GRIDBOT_DATABASE": str(folder / "gridbot.db"),
        "GRIDBOT_MEDIA_DIR": str(folder / "media"),
        "GRIDBOT_PUBLIC_URL": PUBLIC_URL,
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_API_BASE_URL": fake.base_url,
        **extra,
    })


@dataclass
class Harness:
    """A running gridbot, its Telegram channel and sender, and an HTTP client for it."""

    bot: Gridbot
    channel: TelegramChannel
    worker: OutboxWorker
    fake: FakeTelegram
    clock: FakeClock
    http: httpx.AsyncClient
    answers: list[Call] = field(default_factory=list)  # methods in the webhook's replies

    async def post(self, update: dict[str, Any] | bytes, secret: str | None = SECRET,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        """POST to the webhook as Telegram does (JSON, with the secret header)."""
        sent = {"Content-Type": "application/json", **(headers or {})}
        if secret is not None:
            sent["X-Telegram-Bot-Api-Secret-Token"] = secret
        body = update if isinstance(update, bytes) else httpx.Request(
            "POST", "/", json=update).content
        response = await self.http.post("/telegram/webhook", content=body, headers=sent)
        if response.headers.get("content-type", "").startswith("application/json"):
            self._check_answer(response.json())
        return response

    def _check_answer(self, reply: dict[str, Any]) -> None:
        """A method in the webhook's reply is a Bot API call too: check it the same way."""
        params = dict(reply)
        method = str(params.pop("method", ""))
        self.fake.violations += self.fake.checker.check_call(method, params)
        self.answers.append(Call(method, params))

    async def deliver(self) -> list[Call]:
        """Finish processing what was posted, send what is due; return the new sends."""
        await self.channel.engine.settle()
        before = len(self.fake.calls)
        while await self.worker.drain_once():
            pass
        return [c for c in self.fake.calls[before:] if c.method in SENDS and c.status == 200]

    async def send(self, update: dict[str, Any]) -> list[Call]:
        """Post an update (expecting 200) and return what the bot sent back."""
        response = await self.post(update)
        assert response.status_code == 200, response.text
        return await self.deliver()

    async def inbox(self) -> list[tuple[str, str]]:
        """(provider id, status) of every stored Telegram update."""
        rows = await self.bot.db.fetchall(
            "SELECT provider_id, status FROM inbox WHERE channel = 'telegram' ORDER BY id")
        return [(r[0], r[1]) for r in rows]


@asynccontextmanager
async def running_gridbot(settings: Settings, clock: FakeClock,
                          fake: FakeTelegram) -> AsyncIterator[Harness]:
    """Build and start gridbot, serve its app with uvicorn; stop all of it afterwards."""
    bot = await build(settings, clock)
    channel = bot.channel("telegram")
    assert isinstance(channel, TelegramChannel)
    channel.reader.download_delays = (0.0, 0.0)
    await bot.start()  # what the app's lifespan does: connect, then start the senders
    worker = bot.workers[0]
    await worker.stop()  # ...but here the test drives the sender
    worker.sender.limits = Limits(per_second=10_000, per_address_per_second=None)
    worker.limiter = RateLimiter(10_000)
    app = create_app(settings, bot)
    app.state.gridbot = bot
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning",
                                           access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[sock := listening_socket()]))
    port = sock.getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            yield Harness(bot, channel, worker, fake, clock, http)
    finally:
        server.should_exit = True
        await serving
        await bot.stop()
        await bot.close()

"""The web simulator served for real: gridbot (demo district, fake clock) under uvicorn on a
localhost port, for tests that talk to it over HTTP or drive it from a browser."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn

from bot.bootstrap import Gridbot, build
from bot.domain.clock import FakeClock
from bot.entrypoints.http import Server, create_app
from bot.settings import Settings
from tests.fake_telegram import listening_socket


@dataclass
class LiveSim:
    """A running gridbot and the address its simulator is served at."""

    bot: Gridbot
    url: str


@asynccontextmanager
async def serving(settings: Settings, clock: FakeClock) -> AsyncIterator[LiveSim]:
    """Build and start gridbot, serve its app on 127.0.0.1; stop all of it afterwards."""
    bot = await build(settings, clock)
    await bot.start()
    app = create_app(settings, bot)
    app.state.gridbot = bot
    server = Server(uvicorn.Config(app, lifespan="off", log_level="warning",
                                           access_log=False))
    sock = listening_socket()
    serving_task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield LiveSim(bot, f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        server.should_exit = True
        await serving_task
        await bot.stop()
        await bot.close()

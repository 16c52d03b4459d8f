"""The HTTP side: health check and the web simulator, on Starlette.

The lifespan builds gridbot (database, engine, channels), finishes what a crash left
(inbound not processed, outbound in flight), connects the channels and starts the
senders, serves, then stops all that in the reverse order and closes the database last.
Webhook routes are mounted from the settings; their endpoints find their channel in
`request.app.state.gridbot` at request time. The web simulator is in `bot.entrypoints.sim`.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.bootstrap import Gridbot, build
from bot.channels.registry import webhook_routes
from bot.entrypoints import console, metrics, open311
from bot.entrypoints.sim import SimAccess, sim_access, stop_polls
from bot.entrypoints.sim import install as install_simulator
from bot.services.links import routes as media_routes
from bot.settings import Settings
from store.db import UNREACHABLE


def create_app(settings: Settings, gridbot: Gridbot | None = None,
               sim: SimAccess | None = None) -> Starlette:
    """Build the Starlette app; pass a prebuilt `gridbot` to share it with a test, and the
    simulator's access (`sim_access(settings)` by default) when its start line was shown."""
    sim = sim or sim_access(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        bot = gridbot or await build(settings)
        app.state.gridbot = bot
        await bot.start()
        try:
            yield
        finally:
            await bot.stop()
            if gridbot is None:
                await bot.close()

    routes: list[BaseRoute] = [Route("/healthz", healthz), *media_routes(),
                              *webhook_routes(settings), *open311.routes(),
                              *console.routes(), *metrics.routes()]
    if not sim.on:
        routes.append(Route("/", front_page))
    # The database unreachable (PostgreSQL down): 503, so providers deliver again later.
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={error: metrics.unavailable for error in UNREACHABLE})
    install_simulator(app, sim)
    return app


class Server(uvicorn.Server):
    """uvicorn's server, answering the simulator's waiting long-polls as it stops, so that
    they do not hold the shutdown."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Answer the long-polls, then shut down as uvicorn does."""
        if isinstance(self.config.app, Starlette):
            stop_polls(self.config.app)
        await super().shutdown(sockets)


def _bot(request: Request) -> Gridbot:
    bot: Gridbot = request.app.state.gridbot
    return bot


async def front_page(request: Request) -> Response:
    """What someone who opens the server's address sees when the simulators are off."""
    return PlainTextResponse("gridbot is running. Health: /healthz\n"
                             "gridbot 正在运行。健康检查：/healthz\n")


async def healthz(request: Request) -> Response:
    """200 when the database answers and every background worker is well; 503 naming the
    workers failing or down otherwise. Each worker's state and last successful run."""
    bot = _bot(request)
    try:
        ok = await bot.db.ping()
    except Exception:  # noqa: BLE001 - any failure means unhealthy
        ok = False
    troubled = bot.health.unhealthy()
    healthy = ok and not troubled
    return JSONResponse({"status": "ok" if healthy else "error",
                         "process": metrics.process_name(),
                         "database": "ok" if ok else "unreachable",
                         "unhealthy": troubled,
                         "workers": bot.health.as_json()},
                        status_code=200 if healthy else 503)


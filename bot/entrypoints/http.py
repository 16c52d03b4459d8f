"""The HTTP side: health check and the web simulator, on Starlette.

The lifespan builds gridbot (database, engine, channels), finishes what a crash left
(inbound not processed, outbound in flight), connects the channels and starts the
senders, serves, then stops all that in the reverse order and closes the database last.
Webhook routes are mounted from the settings; their endpoints find their channel in
`request.app.state.gridbot` at request time.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Route

from bot.bootstrap import Gridbot, build
from bot.channels.registry import webhook_routes
from bot.domain.channels import SIMULATED
from bot.domain.messages import Inbound, Kind, parse_text
from bot.entrypoints import open311
from bot.services.links import routes as media_routes
from bot.services.mediafiles import MediaRefused, save_photo
from bot.settings import Settings
from store import outbox as outbox_store

STATIC = Path(__file__).resolve().parents[1] / "static"
MAX_SIM_TEXT = 20_000


def create_app(settings: Settings, gridbot: Gridbot | None = None) -> Starlette:
    """Build the Starlette app; pass a prebuilt `gridbot` to share it with a test."""

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
                              *webhook_routes(settings), *open311.routes()]
    if settings.simulators:
        routes += [
            Route("/", lambda request: RedirectResponse("/sim")),
            Route("/sim", sim_page),
            Route("/sim/api/send", sim_send, methods=["POST"]),
            Route("/sim/api/photo", sim_photo, methods=["POST"]),
            Route("/sim/api/messages", sim_messages),
        ]
    else:
        routes.append(Route("/", front_page))
    return Starlette(routes=routes, lifespan=lifespan)


def _bot(request: Request) -> Gridbot:
    bot: Gridbot = request.app.state.gridbot
    return bot


async def front_page(request: Request) -> Response:
    """What someone who opens the server's address sees when the simulators are off."""
    return PlainTextResponse("gridbot is running. Health: /healthz\n"
                             "gridbot 正在运行。健康检查：/healthz\n")


async def healthz(request: Request) -> Response:
    """200 when the database answers, 503 when it does not."""
    try:
        ok = await _bot(request).db.ping()
    except Exception:  # noqa: BLE001 - any failure means unhealthy
        ok = False
    return JSONResponse({"status": "ok" if ok else "error",
                         "database": "ok" if ok else "unreachable"},
                        status_code=200 if ok else 503)


async def sim_page(request: Request) -> Response:
    """The web chat page."""
    return HTMLResponse((STATIC / "sim.html").read_text(encoding="utf-8"))


def _sim_target(data: dict[str, Any]) -> tuple[str, str]:
    channel = str(data.get("channel", "sim-telegram"))
    address = str(data.get("address", "")).strip()[:64]
    if channel not in SIMULATED:
        raise ValueError(f"channel must be one of {', '.join(SIMULATED)}")
    if not address:
        raise ValueError("address is required")
    return channel, address


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def sim_send(request: Request) -> Response:
    """Take a text, a pressed button or a location from the web simulator."""
    try:
        data = await request.json()
        if not isinstance(data, dict):
            raise ValueError("send a JSON object")
        channel, address = _sim_target(data)
    except ValueError as exc:
        return _error(str(exc))
    inbound: Inbound
    if "option" in data:
        inbound = Inbound(channel, address, Kind.OPTION, option=str(data["option"]))
    elif "lat" in data or "lon" in data:
        try:
            lat, lon = float(data["lat"]), float(data["lon"])
        except (KeyError, TypeError, ValueError):
            return _error("lat and lon must both be numbers")
        inbound = Inbound(channel, address, Kind.LOCATION,
                          lat=lat if math.isfinite(lat) else 999.0,
                          lon=lon if math.isfinite(lon) else 999.0)
    else:
        text = str(data.get("text", ""))[:MAX_SIM_TEXT]
        inbound = parse_text(channel, address, text)
    await _bot(request).engine.handle(inbound)
    return JSONResponse({"ok": True})


async def sim_photo(request: Request) -> Response:
    """Take a photo uploaded from the web simulator (multipart: channel, address, file)."""
    bot = _bot(request)
    async with request.form(max_files=1, max_fields=5) as form:
        try:
            channel, address = _sim_target({"channel": form.get("channel"),
                                            "address": form.get("address")})
        except ValueError as exc:
            return _error(str(exc))
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return _error("attach the photo as the form field 'file'")
        data = await upload.read()
        content_type = upload.content_type or ""
    try:
        photo = save_photo(bot.settings.media_dir, data, content_type)
    except MediaRefused as exc:
        return _error(str(exc), 415)
    await bot.engine.handle(Inbound(channel, address, Kind.PHOTO, photo=photo))
    return JSONResponse({"ok": True})


async def sim_messages(request: Request) -> Response:
    """Messages queued for a simulated address after a given id; they count as delivered."""
    bot = _bot(request)
    try:
        channel, address = _sim_target(dict(request.query_params))
        after = int(request.query_params.get("after", "0"))
    except ValueError as exc:
        return _error(str(exc))
    rows = await outbox_store.for_address(bot.db.conn, channel, address, after)
    queued = [r.id for r in rows if r.status == "queued"]
    if queued:
        async with bot.db.transaction() as conn:
            await outbox_store.mark_sent(conn, queued, bot.clock.now())
    return JSONResponse({"messages": [
        {"id": r.id, "text": r.body, "buttons": r.payload.get("buttons", []),
         "request_location": r.payload.get("request_location"),
         "photos": r.payload.get("photos", [])} for r in rows]})

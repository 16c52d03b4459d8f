"""The web simulator at /sim: people in browser panes talk to the same engine as Telegram
and SMS, on the simulated channels `sim-telegram` and `sim-sms`.

Who may use it (`sim_access`): by default only a local demo has it, that is no real
channel (Telegram, Twilio) is configured and the server listens on loopback only. Turned
on explicitly (`GRIDBOT_SIMULATORS=true`) in any other setup, it asks for a secret: the
link `gridbot serve` prints (`/sim?key=…`, or `GRIDBOT_SIM_TOKEN`) sets it in an HttpOnly
cookie, and every simulator request without it is refused with 401. While a real channel
is on, the simulator plays residents only: a simulated address that belongs to anyone
holding a staff role (the demo's grid chiefs) is refused with 403, so no simulated person
acts on real people's cases.

New messages reach the page by long-polling `/sim/api/messages?wait=S`: the request
returns as soon as the engine or the scheduler queues something, and its successful
answers stay out of the access log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from bot.bootstrap import Gridbot
from bot.channels.http_input import BadInput, int_param, read_body, read_json
from bot.domain.channels import SIMULATED
from bot.domain.messages import Inbound, Kind, parse_text
from bot.runtime.supervisor import TRANSIENT_ERRORS
from bot.services import links
from bot.services.mediafiles import MAX_PHOTO_BYTES, MediaRefused, save_photo
from bot.settings import Settings
from store import outbox as outbox_store
from store import people as people_store

STATIC = Path(__file__).resolve().parents[1] / "static"
MAX_SIM_TEXT = 20_000
MAX_WAIT = 25.0  # seconds a long-poll may hold its request
COOKIE = "gridbot_sim"
# The page's default pin: in 翠苑一区第2网格 (33010600100102), whose chief has the second
# pane, and next to 翠苑一区7幢, which README's example report names.
DEFAULT_PIN = (30.2812, 120.1195)
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; object-src 'none';"
                               " base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
NEEDS_KEY = ("这个模拟器需要密钥：请打开 gridbot serve 启动时打印的链接（…/sim?key=…）。"
             " / This simulator needs its secret: open the link `gridbot serve` printed at"
             " start (…/sim?key=…).")
WRONG_KEY = "密钥不对 / this key is not the simulator's secret."


@dataclass(frozen=True)
class SimAccess:
    """Whether the simulator is served, behind which secret, and why (for the start line)."""

    on: bool
    reason: str
    token: str | None = None  # when set, every simulator request must carry it
    residents_only: bool = False  # a real channel is on: simulated people hold no roles

    def start_line(self, settings: Settings) -> str:
        """The one line `gridbot serve` prints about the simulator."""
        if not self.on:
            return f"simulator: off ({self.reason})"
        host = settings.host
        if host in ("0.0.0.0", "::", "[::]"):  # listening everywhere: this machine works
            host = "127.0.0.1"
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        url = f"http://{host}:{settings.port}/sim"
        if self.token is None:
            return f"simulator: on at {url} ({self.reason})"
        return f"simulator: on behind a secret ({self.reason}): open {url}?key={self.token}"


def sim_access(settings: Settings) -> SimAccess:
    """Decide from the settings whether and how the simulator is served."""
    real = settings.real_channels
    exposure = [f"{' and '.join(real)} configured"] if real else []
    if settings.listens_beyond_loopback:
        exposure.append(f"listening on {settings.host}, beyond this machine")
    if settings.simulators is False:
        return SimAccess(False, "GRIDBOT_SIMULATORS=false")
    if settings.simulators is None and exposure:
        return SimAccess(False, f"{'; '.join(exposure)}; GRIDBOT_SIMULATORS=true turns it on"
                                " behind a secret link")
    why = "GRIDBOT_SIMULATORS=true, " if settings.simulators else ""
    if not exposure and settings.sim_token is None:
        return SimAccess(True, f"{why}a local demo: no real channel, listening on"
                               f" {settings.host} only")
    token = settings.sim_token or secrets.token_urlsafe(24)
    reason = why + ("; ".join(exposure) if exposure else "GRIDBOT_SIM_TOKEN is set")
    if real:
        reason += "; it plays residents only"
    return SimAccess(True, reason, token=token, residents_only=bool(real))


def install(app: Starlette, access: SimAccess) -> None:
    """Serve the simulator on `app` when `access` says it is on."""
    app.state.sim_access = access
    app.state.sim_arrivals = Arrivals()
    if access.on:
        app.router.routes.extend(routes())
        quiet_polling_in_access_log()


def routes() -> list[BaseRoute]:
    """The simulator's page, its static files and its JSON API."""
    return [
        Route("/", lambda request: RedirectResponse("/sim")),
        Route("/sim", sim_page),
        Mount("/sim/static", StaticFiles(directory=STATIC), name="sim-static"),
        Route("/sim/api/cast", sim_cast),
        Route("/sim/api/send", sim_send, methods=["POST"]),
        Route("/sim/api/photo", sim_photo, methods=["POST"]),
        Route("/sim/api/messages", sim_messages),
    ]


class QuietPolling(logging.Filter):
    """Keeps the simulator's successful long-polls out of uvicorn's access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for `GET /sim/api/messages… 2xx/3xx`, True for everything else."""
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:  # client, method, path, http, status
            path, status = str(args[2]), args[4]
            if path.startswith("/sim/api/messages") and isinstance(status, int):
                return status >= 400
        return True


def quiet_polling_in_access_log() -> None:
    """Install `QuietPolling` on uvicorn's access logger (once)."""
    access_log = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, QuietPolling) for f in access_log.filters):
        access_log.addFilter(QuietPolling())


class Arrivals:
    """Wakes the long-polls whenever messages were queued (an engine/scheduler hook), and
    all of them at once when the server stops, so that no poll holds the shutdown."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.hooked: Gridbot | None = None  # the gridbot whose hooks call `tell`
        self.closed = False

    def tell(self) -> None:
        """Messages were queued: wake everyone waiting, and start a new round."""
        self._event.set()
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        """The event the next arrival sets; take it before looking in the database."""
        return self._event

    def close(self) -> None:
        """The server is stopping: answer every waiting poll now, and the next at once."""
        self.closed = True
        self._event.set()


def stop_polls(app: Starlette) -> None:
    """Answer the simulator's waiting long-polls now (call it when the server is told to
    exit, from the event loop's thread)."""
    arrivals: Arrivals | None = getattr(app.state, "sim_arrivals", None)
    if arrivals is not None:
        arrivals.close()


# --- access -----------------------------------------------------------------------------

def _access(request: Request) -> SimAccess:
    access: SimAccess = request.app.state.sim_access
    return access


def _bot(request: Request) -> Gridbot:
    bot: Gridbot = request.app.state.gridbot
    return bot


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _refused(request: Request) -> Response | None:
    """401 without the secret (when one is needed), 403 for a cross-site post; else None."""
    token = _access(request).token
    if token is not None and not secrets.compare_digest(
            request.cookies.get(COOKIE, "").encode(), token.encode()):
        return _error(NEEDS_KEY, 401)
    origin = request.headers.get("origin")
    if request.method != "GET" and origin is not None and \
            urlparse(origin).netloc != request.headers.get("host"):
        return _error("cross-site requests are refused / 拒绝跨站请求", 403)
    return None


def _over_https(request: Request) -> bool:
    """Whether the browser reached us over https (behind a trusted proxy: as it says)."""
    if request.url.scheme == "https":
        return True
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return _bot(request).settings.trust_proxy and forwarded == "https"


async def sim_page(request: Request) -> Response:
    """The web chat page; `?key=SECRET` stores the secret in a cookie and drops it from the
    address."""
    token = _access(request).token
    key = request.query_params.get("key")
    if token is not None and key is not None:
        if not secrets.compare_digest(key.encode(), token.encode()):
            return PlainTextResponse(WRONG_KEY, status_code=403, headers=PAGE_HEADERS)
        response = RedirectResponse("/sim", status_code=303, headers=PAGE_HEADERS)
        response.set_cookie(COOKIE, token, path="/sim", httponly=True, samesite="strict",
                            secure=_over_https(request))
        return response
    refused = _refused(request)
    if refused is not None:
        return PlainTextResponse(NEEDS_KEY, status_code=401, headers=PAGE_HEADERS)
    return HTMLResponse((STATIC / "sim.html").read_text(encoding="utf-8"),
                        headers=PAGE_HEADERS)


async def _player(request: Request, channel: str, address: str,
                  link: bool = False) -> Response | None:
    """Refuse to play staff while a real channel is on. With `link`, an address known on
    the other simulated channel becomes the same person on this one (a pane switched from
    Telegram to SMS stays who it was)."""
    bot = _bot(request)
    conn = bot.db.conn
    contact = await people_store.find_contact(conn, channel, address)
    if contact is None:
        for other in SIMULATED:
            contact = contact or await people_store.find_contact(conn, other, address)
        if contact is not None and link:
            async with bot.db.transaction() as tx:
                await people_store.add_contact(tx, contact.person_id, channel, address,
                                               bot.clock.now())
    if contact is None or not _access(request).residents_only:
        return None
    if await people_store.roles_of(conn, contact.person_id):
        return _error(f"{address} 是工作人员：接入 Telegram 或短信后，模拟器只扮演居民，"
                      f"真实事件只由真实工作人员处理。 / {address} is staff: while Telegram"
                      " or SMS is on, the simulator plays residents only; real cases are"
                      " handled by real staff.", 403)
    return None


def _sim_target(data: dict[str, Any]) -> tuple[str, str]:
    channel = str(data.get("channel", "sim-telegram"))
    address = str(data.get("address", "")).strip()[:64]
    if channel not in SIMULATED:
        raise ValueError(f"channel must be one of {', '.join(SIMULATED)}")
    if not address:
        raise ValueError("address is required")
    return channel, address


# --- the API ------------------------------------------------------------------------------

async def sim_cast(request: Request) -> Response:
    """Who the page can play: the staff with a simulated address (the demo's chiefs, each
    with their grid), the default chief (of the default pin's grid) and the default pin."""
    refused = _refused(request)
    if refused is not None:
        return refused
    bot = _bot(request)
    district = bot.reference.district
    staff: list[dict[str, Any]] = []
    if not _access(request).residents_only:
        grids = sorted(code for code, area in district.areas.items() if area.level == "grid")
        for code in grids:
            chief = await people_store.holder_of(bot.db.conn, "grid_chief", code)
            if chief is None:
                continue
            for contact in await people_store.contacts_of(bot.db.conn, chief.id):
                if contact.channel in SIMULATED and contact.address.startswith("web:"):
                    staff.append({"address": contact.address, "name": chief.name,
                                  "role": "grid_chief", "scope": code,
                                  "scope_name": district.name(code, "zh_CN"),
                                  "scope_name_en": district.name(code, "en")})
                    break
    pin_grid = district.locate_point(*DEFAULT_PIN).grid_code
    default_chief = next((s["address"] for s in staff if s["scope"] == pin_grid), None)
    return JSONResponse({"residents_only": _access(request).residents_only, "staff": staff,
                         "default_chief": default_chief,
                         "pin": {"lat": DEFAULT_PIN[0], "lon": DEFAULT_PIN[1],
                                 "grid": pin_grid}})


async def _handled(bot: Gridbot, inbound: Inbound) -> Response:
    """Hand a simulated message to the engine; a busy database is a 503 to try again."""
    try:
        await bot.engine.handle(inbound)
    except TRANSIENT_ERRORS as exc:
        return _error(f"the database is busy ({exc}); send again in a moment", 503)
    return JSONResponse({"ok": True})


async def sim_send(request: Request) -> Response:
    """Take a text, a pressed button or a location from the web simulator."""
    refused = _refused(request)
    if refused is not None:
        return refused
    try:
        data = await read_json(request)  # bounded in size and nesting (bot/channels/http_input)
    except BadInput as exc:
        return _error(str(exc), exc.status)
    try:
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
        if not text.strip():
            return _error("the message is empty / 消息是空的")
        inbound = parse_text(channel, address, text)
    refused = await _player(request, channel, address, link=True)
    if refused is not None:
        return refused
    return await _handled(_bot(request), inbound)


async def sim_photo(request: Request) -> Response:
    """Take a photo uploaded from the web simulator (multipart: channel, address, file)."""
    refused = _refused(request)
    if refused is not None:
        return refused
    bot = _bot(request)
    try:  # bounded before the form is parsed: Starlette does not limit a file part's size
        body = await read_body(request, MAX_PHOTO_BYTES + 64 * 1024)
    except BadInput as exc:
        return _error(str(exc), exc.status)
    request._body = body  # request.form() reads the body already read instead of the stream
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
    refused = await _player(request, channel, address, link=True)
    if refused is not None:
        return refused
    try:
        photo = save_photo(bot.settings.media_dir, data, content_type)
    except MediaRefused as exc:
        return _error(str(exc), 415)
    return await _handled(bot, Inbound(channel, address, Kind.PHOTO, photo=photo))


def _arrivals(request: Request) -> Arrivals:
    """The app's `Arrivals`, hooked to the engine and scheduler on first use (the app may
    be given a gridbot that was started without its lifespan)."""
    arrivals: Arrivals = request.app.state.sim_arrivals
    bot = _bot(request)
    if arrivals.hooked is not bot:
        arrivals.hooked = bot
        bot.engine.on_queued.append(arrivals.tell)
        if bot.scheduler is not None:
            bot.scheduler.on_queued.append(arrivals.tell)
    return arrivals


async def sim_messages(request: Request) -> Response:
    """Messages queued for a simulated address after a given id; they count as delivered.
    With `wait=S` (up to 25 s) the answer waits until there is one, or S seconds passed."""
    refused = _refused(request)
    if refused is not None:
        return refused
    bot = _bot(request)
    params = request.query_params
    try:
        channel, address = _sim_target(dict(params))
        after = int_param(params, "after", 0)
        wait = float(params.get("wait", "0"))
        if not 0 <= wait <= MAX_WAIT:
            raise ValueError(f"wait must be from 0 to {MAX_WAIT:g} seconds")
    except ValueError as exc:
        return _error(str(exc))
    refused = await _player(request, channel, address)
    if refused is not None:
        return refused
    arrivals = _arrivals(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        arrived = arrivals.current()
        rows = await outbox_store.for_address(bot.db.conn, channel, address, after)
        left = deadline - loop.time()
        if rows or left <= 0 or arrivals.closed:
            break
        try:
            await asyncio.wait_for(arrived.wait(), left)
        except TimeoutError:
            break
    queued = [r.id for r in rows if r.status == "queued"]
    if queued:
        async with bot.db.transaction() as conn:
            await outbox_store.mark_sent(conn, queued, bot.clock.now())
    now = bot.clock.now()
    return JSONResponse({"messages": [
        {"id": r.id, "text": r.body, "buttons": r.payload.get("buttons", []),
         "request_location": r.payload.get("request_location"),
         "time": _local_time(r.created_at, bot.settings),
         "photos": r.payload.get("photos", []),
         "location": r.payload.get("location"),
         "photo_urls": [_media_link(bot.settings, int(p), now)
                        for p in r.payload.get("photos", [])]} for r in rows]})


def _local_time(stamp: str, settings: Settings) -> str:
    """An outbox timestamp as the local HH:MM the page shows."""
    try:
        return datetime.fromisoformat(stamp).astimezone(settings.timezone).strftime("%H:%M")
    except ValueError:
        return ""


def _media_link(settings: Settings, media_id: int, now: datetime) -> str:
    """The signed media link, relative to this server (the page may not be where the
    public URL points)."""
    return links.media_url(settings, media_id, now).removeprefix(settings.public_url)

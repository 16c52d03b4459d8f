"""What every console page shares: the signed-in staff member, CSRF, the security headers,
the templates and their texts in two languages.

A page is `@staff_page async def view(request, staff) -> Response`: the decorator finds
the session from the signed cookie (no session: a GET is sent to the sign-in page, any
other request gets 401), refuses a state-changing request without the session's CSRF
token (form field `csrf` or header `X-CSRF-Token`) or from another origin with 403, and
passes a `Staff`. `render(request, staff, "page.html", **context)` renders a template
under bot/templates/console with the security headers.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from bot.bootstrap import Gridbot
from bot.channels.http_input import BadInput, read_body
from bot.domain.workflow import Actor, Role
from bot.services import console_auth
from bot.services.console_auth import SignedIn
from bot.services.mediafiles import MAX_PHOTO_BYTES
from bot.services.people import display_name
from bot.services.render import mask_phone
from store import people as people_store

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates" / "console"
STATIC = ROOT / "static"
COOKIE = "gridbot_console"
LINK_COOKIE = "gridbot_console_link"
COOKIE_PATH = "/console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
TOUCH_EVERY = timedelta(minutes=1)  # how often a session's last visit is written down
MAX_FORM_BYTES = MAX_PHOTO_BYTES + 64 * 1024  # a form with one photo of the result
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOCALES = ("zh_CN", "en")
# The console's navigation, in order: (key, path). A page whose path has no route yet is
# shown greyed out; adding its route is enough to make it a link (see __init__.py).
NAV = (("cases", "/console/cases"), ("map", "/console/map"),
       ("notices", "/console/notices"), ("meetings", "/console/meetings"),
       ("stats", "/console/stats"), ("staff", "/console/staff"),
       ("district", "/console/district"),
       ("phonein", "/console/phonein"), ("households", "/console/households"))
# Staff roles below the community see residents' phone numbers masked (as in the bot).
MASKED_ROLES = frozenset({Role.GRID_CHIEF, Role.INFO_OFFICER, Role.DEPARTMENT})


def content_security_policy(img_extra: str = "") -> str:
    """The pages' CSP: nothing inline, nothing from elsewhere (a map's tile server can be
    added to img-src)."""
    img = f"'self' data: blob:{' ' + img_extra if img_extra else ''}"
    return ("default-src 'self'; script-src 'self'; style-src 'self'; "
            f"img-src {img}; connect-src 'self'; font-src 'self'; object-src 'none'; "
            "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


SECURITY_HEADERS = {
    "Content-Security-Policy": content_security_policy(),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on a
    # form POST, and the origin check (`same_origin`) would refuse our own forms.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True)
class Staff:
    """The signed-in person: who, in which roles, their language, their CSRF token."""

    person_id: int
    name: str
    actors: list[Actor]
    locale: str
    csrf: str
    session: SignedIn

    @property
    def masked(self) -> bool:
        """Whether residents' phones are masked for this person (below the community)."""
        return all(a.role in MASKED_ROLES for a in self.actors)


def gridbot(request: Request) -> Gridbot:
    """The running gridbot."""
    bot: Gridbot = request.app.state.gridbot
    return bot


# --- texts ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _texts(locale: str) -> dict[str, Any]:
    return tomllib.loads((TEMPLATES / "i18n" / f"{locale}.toml").read_text(encoding="utf-8"))


def text(locale: str, key: str, **values: Any) -> str:
    """A console text by dotted key, in zh_CN or en (the key itself when missing)."""
    table: Any = _texts(locale if locale in LOCALES else "zh_CN")
    for part in key.split("."):
        if not isinstance(table, dict) or part not in table:
            return key
        table = table[part]
    return str(table).format(**values) if values else str(table)


def duration(seconds: int, locale: str) -> str:
    """A span of time as people read it: 2天3小时, 5h 10min, 45分钟."""
    minutes = max(0, int(seconds)) // 60
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    parts = [text(locale, f"duration.{unit}", n=n)
             for unit, n in (("days", days), ("hours", hours), ("minutes", mins)) if n]
    joiner = " " if locale == "en" else ""
    return joiner.join(parts[:2]) or text(locale, "duration.minutes", n=0)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["mask_phone"] = mask_phone
    env.filters["duration"] = duration
    env.globals["urlencode"] = urlencode
    return env


ENV = _environment()


def available_paths(request: Request) -> set[str]:
    """The paths the app has routes for (the navigation greys out the others)."""
    return {str(getattr(route, "path", "")) for route in request.app.routes}


def render(request: Request, staff: Staff | None, template: str, *, status: int = 200,
           locale: str | None = None, headers: Mapping[str, str] | None = None,
           **context: Any) -> HTMLResponse:
    """Render a console template (a page, or a fragment for htmx) with the security
    headers. Templates get `t(key)` (console texts), `label(key)` (the bot's labels:
    states, actions, levels), `localtime(moment)`, `staff`, `csrf` and `nav`."""
    bot = gridbot(request)
    lang = locale or (staff.locale if staff else bot.settings.locale)
    paths = available_paths(request)
    tz = bot.settings.timezone

    def localtime(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return moment.astimezone(tz).strftime(fmt) if moment else ""

    html = ENV.get_template(template).render(
        t=lambda key, **values: text(lang, key, **values),
        label=lambda key, **values: bot.renderer.label(lang, key, **values),
        localtime=localtime, locale=lang, staff=staff,
        csrf=staff.csrf if staff else "", csrf_field=CSRF_FIELD,
        nav=[{"key": key, "path": path, "on": path in paths} for key, path in NAV],
        area_name=lambda code: bot.reference.district.name(code, lang),
        request_path=request.url.path, **context)
    return HTMLResponse(html, status_code=status,
                        headers={**SECURITY_HEADERS, **(headers or {})})


def plain(message: str, status: int) -> Response:
    """A short plain-text answer with the security headers."""
    return PlainTextResponse(message, status_code=status, headers=SECURITY_HEADERS)


# --- sessions ---------------------------------------------------------------------------

def over_https(request: Request) -> bool:
    """Whether the browser reached us over https (behind a trusted proxy: as it says)."""
    if request.url.scheme == "https":
        return True
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return gridbot(request).settings.trust_proxy and forwarded == "https"


def same_origin(request: Request) -> bool:
    """Whether a request comes from a page of this server (Origin, else Referer; a
    request with neither, which browsers do not send for forms, is let through to the
    CSRF token check)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True
    return urlparse(source).netloc == request.headers.get("host")


def set_session_cookie(request: Request, response: Response, secret: str) -> None:
    """Give the browser its session: signed, HttpOnly, SameSite=Lax, Secure over https."""
    signer = console_auth.session_signer(gridbot(request).settings)
    response.set_cookie(COOKIE, console_auth.cookie_value(signer, secret), path=COOKIE_PATH,
                        httponly=True, samesite="lax", secure=over_https(request),
                        max_age=int(console_auth.IDLE.total_seconds()))


async def current_staff(request: Request) -> Staff | None:
    """The signed-in staff member of this request, or None."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    bot = gridbot(request)
    secret = console_auth.secret_from_cookie(console_auth.session_signer(bot.settings), raw)
    if secret is None:
        return None
    now = bot.clock.now()
    session = await console_auth.signed_in(bot.db.conn, secret, now)
    if session is None:
        return None
    if now - session.last_seen_at >= TOUCH_EVERY:
        async with bot.db.transaction() as conn:
            await console_auth.touch(conn, session, now)
    person = await people_store.get_person(bot.db.conn, session.person_id)
    locale = person.locale if person and person.locale in LOCALES else bot.settings.locale
    name = await display_name(bot.db.conn, session.person_id)
    return Staff(session.person_id, name, session.actors, locale, session.csrf, session)


Page = Callable[[Request, Staff], Awaitable[Response]]


def staff_page(page: Page) -> Callable[[Request], Awaitable[Response]]:
    """Make a page for signed-in staff only, with CSRF checked on state-changing
    requests (see the module docstring)."""

    @functools.wraps(page)
    async def endpoint(request: Request) -> Response:
        staff = await current_staff(request)
        if staff is None:
            if request.method in SAFE_METHODS and "hx-request" not in request.headers:
                return RedirectResponse("/console/login", status_code=303,
                                        headers=SECURITY_HEADERS)
            return plain("请先登录 / sign in first", 401)
        if request.method not in SAFE_METHODS:
            if not same_origin(request):
                return plain("拒绝跨站请求 / cross-site request refused", 403)
            try:  # bounded before any form is parsed (Starlette does not limit a file part)
                request._body = await read_body(request, MAX_FORM_BYTES)
            except BadInput as exc:
                return plain(str(exc), exc.status)
            given = request.headers.get(CSRF_HEADER)
            if given is None and request.headers.get("content-type", "").startswith(
                    ("application/x-www-form-urlencoded", "multipart/form-data")):
                form = await request.form()
                value = form.get(CSRF_FIELD)
                given = value if isinstance(value, str) else None
            if not console_auth.csrf_ok(staff.session, given):
                return plain("CSRF 校验失败，请刷新页面 / CSRF check failed: reload the page",
                             403)
        return await page(request, staff)

    return endpoint

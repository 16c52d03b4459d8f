"""Signing in with a one-time link, and signing out.

Opening the link (`/console/login?t=SECRET`) uses nothing yet: it keeps the secret in a
short-lived HttpOnly cookie for /console/login, drops it from the address, and shows
"sign in as NAME" with a button. Pressing it (a POST, from this origin) uses the link and
starts the session. Chat apps that fetch a link to preview it therefore cannot spend it,
and the secret is in no page and no later address bar.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.entrypoints.console import web
from bot.entrypoints.console.web import Staff, staff_page
from bot.services import console_auth
from bot.services.console_auth import FailedSignIns, SignInRefused
from bot.services.people import display_name

LOGIN = "/console/login"
STATUS = {"unknown": 404, "used": 410, "expired": 410, "not_staff": 403, "too_many": 429}


def routes() -> list[BaseRoute]:
    """The sign-in and sign-out routes."""
    return [
        Route("/console", lambda request: RedirectResponse("/console/cases", 303)),
        Route(LOGIN, login_page, methods=["GET"]),
        Route(LOGIN, login, methods=["POST"]),
        Route("/console/logout", logout, methods=["POST"]),
    ]


def _failures(request: Request) -> FailedSignIns:
    state = request.app.state
    failures: FailedSignIns | None = getattr(state, "console_failures", None)
    if failures is None:
        failures = state.console_failures = FailedSignIns()
    return failures


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"


def _refused(request: Request, reason: str) -> Response:
    """The page saying why a link does not work, and how to get a new one."""
    if reason != "too_many":
        _failures(request).failed(_client(request), web.gridbot(request).clock.now())
    response = web.render(request, None, "signin.html", status=STATUS.get(reason, 400),
                          reason=reason, name=None)
    response.delete_cookie(web.LINK_COOKIE, path=LOGIN)
    return response


async def login_page(request: Request) -> Response:
    """With `?t=`: keep the link in a cookie and come back without it. Without: "sign in
    as NAME" for a kept link, else how to get a link."""
    bot = web.gridbot(request)
    now = bot.clock.now()
    if _failures(request).blocked(_client(request), now):
        return _refused(request, "too_many")
    secret = request.query_params.get("t")
    if secret is not None:
        try:
            await console_auth.check_link(bot.db.conn, secret[:128], now)
        except SignInRefused as refused:
            return _refused(request, refused.reason)
        response = RedirectResponse(LOGIN, status_code=303, headers=web.SECURITY_HEADERS)
        response.set_cookie(web.LINK_COOKIE, secret, path=LOGIN, httponly=True,
                            samesite="lax", secure=web.over_https(request),
                            max_age=console_auth.LINK_MINUTES * 60)
        return response
    kept = request.cookies.get(web.LINK_COOKIE)
    if kept is None:
        if await web.current_staff(request) is not None:
            return RedirectResponse("/console/cases", status_code=303)
        return web.render(request, None, "signin.html", reason=None, name=None,
                          signed_out=request.query_params.get("out") == "1")
    try:
        person_id = await console_auth.check_link(bot.db.conn, kept, now)
    except SignInRefused as refused:
        return _refused(request, refused.reason)
    return web.render(request, None, "signin.html", reason=None,
                      name=await display_name(bot.db.conn, person_id))


async def login(request: Request) -> Response:
    """Use the kept link and start the session."""
    bot = web.gridbot(request)
    now = bot.clock.now()
    if _failures(request).blocked(_client(request), now):
        return _refused(request, "too_many")
    if not web.same_origin(request):
        return web.plain("拒绝跨站请求 / cross-site request refused", 403)
    kept = request.cookies.get(web.LINK_COOKIE)
    if kept is None:
        return _refused(request, "unknown")
    try:
        async with bot.db.transaction() as conn:
            session = await console_auth.redeem(conn, kept, now)
    except SignInRefused as refused:
        return _refused(request, refused.reason)
    response = RedirectResponse("/console/cases", status_code=303,
                                headers=web.SECURITY_HEADERS)
    response.delete_cookie(web.LINK_COOKIE, path=LOGIN)
    web.set_session_cookie(request, response, session.secret)
    return response


@staff_page
async def logout(request: Request, staff: Staff) -> Response:
    """End the session and forget its cookie."""
    bot = web.gridbot(request)
    async with bot.db.transaction() as conn:
        await console_auth.sign_out(conn, staff.session, bot.clock.now())
    response = RedirectResponse(LOGIN + "?out=1", status_code=303,
                                headers=web.SECURITY_HEADERS)
    response.delete_cookie(web.COOKIE, path=web.COOKIE_PATH)
    return response

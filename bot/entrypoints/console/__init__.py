"""The street command center's web console at /console (issue 13): server-rendered pages
(Starlette, jinja2) over the same services as the bot, htmx for partial updates.

How to add a console page
=========================

1. **A module** `bot/entrypoints/console/NAME.py` with a `routes()` returning Starlette
   routes, and its name added to `PAGES` below. Paths start with `/console/`. The
   navigation (`web.NAV`: cases, map, notices, meetings, stats, staff, district) links an
   entry as soon as a route with its path exists; until then it is greyed out.
2. **Staff only**: decorate each endpoint with `@web.staff_page`; it is called as
   `async def view(request: Request, staff: web.Staff) -> Response`. `staff.person_id`,
   `staff.name`, `staff.actors` (the person's roles as workflow `Actor`s, from
   `casework.staff_actors`), `staff.locale` ("zh_CN" or "en"), `staff.masked` (phones
   masked for this person). Scope: filter what you show with `caselist.scopes_for(actors)`
   (SQL) or `casework.can_view(case, actors)` (one case); a case outside the scope
   answers 404 exactly like a missing one (`caselist.visible_case`). Acting on a case
   goes through `bot.services.actions.act` (the bot's buttons call it too).
3. **CSRF**: every non-GET request must carry the session's token, as the form field
   `csrf` (`<input type="hidden" name="{{ csrf_field }}" value="{{ csrf }}">`) or the
   header `X-CSRF-Token`. htmx requests send the header by themselves: `base.html` puts
   `hx-headers` with it on `<body>`. `staff_page` refuses without it (403), and refuses a
   foreign `Origin` (403). GET must change nothing.
4. **Templates** in `bot/templates/console/`: `{% extends "base.html" %}` and fill
   `{% block title %}`, `{% block content %}` (and `{% block scripts %}` for a page's own
   script files). Render with `web.render(request, staff, "NAME.html", active="cases",
   **context)` (`active` is the nav key to highlight). Autoescape is on: never mark user
   text `|safe`. Templates get `t("key")` (console texts from
   `bot/templates/console/i18n/zh_CN.toml` and `en.toml`: add your keys to both),
   `label("state.closed")` (the bot's labels), `localtime(moment)`, `area_name(code)`,
   `staff`, `csrf`, `csrf_field`, `locale`.
5. **Static files and CSP**: scripts and styles are files only, no inline `<script>`,
   no `style=""`, no `on…=` attributes: the Content-Security-Policy (`web.SECURITY_HEADERS`)
   allows 'self' only. Your files go in `bot/static/console/` (served at
   `/console/static/`), front-end libraries in `bot/static/vendor/NAME/` (at
   `/console/vendor/NAME/`) copied from their npm package with their LICENSE beside them.
   A script reads its data from `data-*` attributes or fetches JSON. A page needing
   another image source (a tile server) passes
   `headers={"Content-Security-Policy": web.content_security_policy("https://tiles…")}`.
6. **Live updates**: poll with htmx, `hx-get=… hx-trigger="every 3s"`, answering 204 while
   nothing changed (`caselist.last_change(conn)` grows with every audit line).
7. **Tests**: `tests/console_harness.py` serves gridbot on a localhost port
   (`serving_console`) and, through `Console(bot)`, makes staff (`await
   console.staff(name, role, scope)`) and signs in from a test: `async with
   console.client() as client: await console.sign_in(person_id, client)` gives an
   in-process httpx client holding the session, with `client.csrf` and
   `client.post_form(url, data)`; `browser_sign_in(page, await console.link(person_id,
   live.url))` does it in Playwright through the real link.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from bot.entrypoints.console import (
    cases,
    district,
    households,
    map,
    meetings,
    notices,
    phonein,
    signin,
)
from bot.entrypoints.console import staff as staff_page
from bot.entrypoints.console import stats as stats_page
from bot.entrypoints.console.web import STATIC

# A new page module: add it here.
PAGES = (signin, cases, phonein, households, notices, meetings, district, map, stats_page,
         staff_page)


def routes() -> list[BaseRoute]:
    """Every console route, with its static files."""
    found: list[BaseRoute] = [
        Mount("/console/static", StaticFiles(directory=STATIC / "console"),
              name="console-static"),
        Mount("/console/vendor", StaticFiles(directory=STATIC / "vendor"),
              name="console-vendor"),
    ]
    for page in PAGES:
        found += page.routes()
    return found

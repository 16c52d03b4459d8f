"""The case list (filters, counts, countdowns, pages, CSV) and the case page.

The list polls `/console/cases/rows?…&since=N` every few seconds: the answer is 204 (htmx
leaves the page alone) until a case changed, then the fresh rows. The case page polls
`/console/cases/N/live?v=VERSION` the same way.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.domain.workflow import URGENCIES
from bot.entrypoints.console import web
from bot.entrypoints.console.web import Staff, staff_page
from bot.services import caselist, casework, links
from bot.services.caselist import Filters
from store.caselist import CasePage

CHANNELS = ("telegram", "sms", "open311", "sim-telegram", "sim-sms")
POLL_SECONDS = 3


def routes() -> list[BaseRoute]:
    """The list, its live rows, its CSV, and the case page."""
    return [
        Route("/console/cases", case_list, methods=["GET"]),
        Route("/console/cases/rows", case_rows, methods=["GET"]),
        Route("/console/cases.csv", case_csv, methods=["GET"]),
        Route("/console/cases/{number}", case_page, methods=["GET"]),
        Route("/console/cases/{number}/live", case_live, methods=["GET"]),
    ]


def filter_options(request: Request, staff: Staff) -> dict[str, Any]:
    """What the filter form offers: categories, urgencies, the communities and grids this
    person may see, channels, states, sorts."""
    bot = web.gridbot(request)
    district = bot.reference.district
    seen = caselist.scopes_for(staff.actors)
    everything = ("*", None) in seen
    codes = {value for _, value in seen}

    def visible(code: str) -> bool:
        if everything:
            return True
        return bool({code, district.ancestor(code, "community"),
                     district.ancestor(code, "street")} & codes)

    areas = sorted(district.areas.values(), key=lambda a: a.code)
    return {
        "categories": [(c.code, c.name(staff.locale)) for c in bot.reference.catalog.categories],
        "urgencies": URGENCIES,
        "communities": [(a.code, a.display(staff.locale)) for a in areas
                        if a.level == "community" and (visible(a.code) or any(
                            visible(g.code) for g in areas if g.parent == a.code))],
        "grids": [(a.code, a.display(staff.locale), a.parent) for a in areas
                  if a.level == "grid" and visible(a.code)],
        "channels": CHANNELS, "states": caselist.STATES,
        "statuses": tuple(caselist.STATUS_GROUPS), "sorts": caselist.SORTS,
    }


async def _rows_context(request: Request, staff: Staff, filters: Filters
                        ) -> dict[str, Any]:
    bot = web.gridbot(request)
    now = bot.clock.now()
    conn = bot.db.conn
    since = await caselist.last_change(conn)
    found: CasePage = await caselist.list_cases(conn, filters, staff.actors, now,
                                                bot.settings.timezone)
    clocks = await caselist.countdowns(conn, [c.case for c in found.cases], now)
    pages = max(1, -(-found.total // caselist.PAGE_SIZE))
    return {"found": found, "clocks": clocks, "filters": filters, "since": since,
            "now": now, "pages": pages, "poll": POLL_SECONDS,
            "query": filters.as_params(),
            "category_name": lambda code: _category_name(request, code, staff.locale)}


def _category_name(request: Request, code: str, locale: str) -> str:
    try:
        return web.gridbot(request).reference.catalog.get(code).name(locale)
    except KeyError:
        return code


@staff_page
async def case_list(request: Request, staff: Staff) -> Response:
    """The list page: filters, counts per state, the cases, pages."""
    filters = Filters.from_params(request.query_params)
    context = await _rows_context(request, staff, filters)
    return web.render(request, staff, "cases.html", active="cases",
                      options=filter_options(request, staff), **context)


@staff_page
async def case_rows(request: Request, staff: Staff) -> Response:
    """The list's rows for htmx: 204 while nothing changed since `since`."""
    bot = web.gridbot(request)
    since = request.query_params.get("since", "")
    if since.isdigit() and await caselist.last_change(bot.db.conn) <= int(since):
        return Response(status_code=204, headers=web.SECURITY_HEADERS)
    filters = Filters.from_params(request.query_params)
    context = await _rows_context(request, staff, filters)
    return web.render(request, staff, "_case_rows.html", **context)


@staff_page
async def case_csv(request: Request, staff: Staff) -> Response:
    """The filtered list (every page) as CSV, UTF-8 with a BOM so that Excel reads the
    Chinese."""
    bot = web.gridbot(request)
    now = bot.clock.now()
    filters = Filters.from_params(request.query_params)
    cases = await caselist.export_cases(bot.db.conn, filters, staff.actors, now,
                                        bot.settings.timezone)
    clocks = await caselist.countdowns(bot.db.conn, [c.case for c in cases], now)
    tz = bot.settings.timezone
    district = bot.reference.district

    def when(moment: datetime | None) -> str:
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else ""

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([web.text(staff.locale, f"csv.{key}") for key in (
        "number", "state", "category", "urgency", "community", "grid", "address",
        "description", "channel", "created", "deadline", "overdue", "changed")])
    for item in cases:
        case = item.case
        writer.writerow([
            case.number, bot.renderer.label(staff.locale, f"state.{case.state.value}"),
            _category_name(request, case.category, staff.locale), case.urgency,
            district.name(case.community_code, staff.locale),
            district.name(case.grid_code, staff.locale), item.address or "",
            item.description, item.source_channel or "", when(case.created_at),
            when(case.deadline), "1" if clocks[case.number].colour == "red" else "",
            when(item.changed_at)])
    stamp = now.astimezone(tz).strftime("%Y%m%d-%H%M")
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={**web.SECURITY_HEADERS,
                             "Content-Disposition": f'attachment; filename="cases-{stamp}.csv"'})


async def _visible_view(request: Request, staff: Staff, number: str
                        ) -> tuple[casework.CaseView, Any] | None:
    """The case as this person may read it, or None when it is not theirs to see (the
    page then answers 404, as for a case that does not exist)."""
    bot = web.gridbot(request)
    parsed = casework.parse_case_number(number)
    if parsed is None:
        return None
    stored = await caselist.visible_case(bot.db.conn, parsed, staff.actors)
    if stored is None:
        return None
    view = await casework.case_view(bot.db.conn, bot.reference, parsed, bot.clock.now(),
                                    masked=staff.masked, locale=staff.locale)
    return (view, stored) if view is not None else None


def _photo_links(request: Request, photo_ids: list[int]) -> list[str]:
    bot = web.gridbot(request)
    now = bot.clock.now()
    return [links.media_url(bot.settings, media_id, now).removeprefix(bot.settings.public_url)
            for media_id in photo_ids]


async def _case_context(request: Request, staff: Staff, view: casework.CaseView,
                        stored: Any) -> dict[str, Any]:
    bot = web.gridbot(request)
    now = bot.clock.now()
    clock = (await caselist.countdowns(bot.db.conn, [stored.case], now))[stored.case.number]
    return {"view": view, "case": stored.case, "clock": clock, "now": now,
            "photos": _photo_links(request, view.photo_ids), "poll": POLL_SECONDS}


@staff_page
async def case_page(request: Request, staff: Staff) -> Response:
    """One case: the card, the timeline, the photos, the actions."""
    found = await _visible_view(request, staff, request.path_params["number"])
    if found is None:
        return web.render(request, staff, "not_found.html", status=404, active="cases")
    view, stored = found
    context = await _case_context(request, staff, view, stored)
    return web.render(request, staff, "case.html", active="cases", **context)


@staff_page
async def case_live(request: Request, staff: Staff) -> Response:
    """The case page's changing part for htmx: 204 while the case is at version `v`."""
    found = await _visible_view(request, staff, request.path_params["number"])
    if found is None:
        return web.plain("not found", 404)
    view, stored = found
    given = request.query_params.get("v", "")
    if given.isdigit() and stored.case.version == int(given):
        return Response(status_code=204, headers=web.SECURITY_HEADERS)
    context = await _case_context(request, staff, view, stored)
    return web.render(request, staff, "_case_live.html", **context)

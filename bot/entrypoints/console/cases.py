"""The case list (filters, counts, countdowns, pages, CSV) and the case page.

The list polls `/console/cases/rows?…&since=N` every few seconds: the answer is 204 (htmx
leaves the page alone) until a case changed, then the fresh rows. The case page polls
`/console/cases/N/live?v=VERSION` the same way.
"""

from __future__ import annotations

import csv
import functools
import io
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.domain.workflow import URGENCIES, EventKind
from bot.entrypoints.console import web
from bot.entrypoints.console.web import Staff, staff_page
from bot.services import actions, caselist, casework, console_cases, links
from bot.services.caselist import Filters
from bot.services.mediafiles import MediaRefused, save_photo
from store.caselist import CasePage
from store.cases import StoredCase

CHANNELS = ("telegram", "sms", "phone", "open311", "sim-telegram", "sim-sms")
POLL_SECONDS = 3


def routes() -> list[BaseRoute]:
    """The list, its live rows, its CSV, and the case page."""
    return [
        Route("/console/cases", case_list, methods=["GET"]),
        Route("/console/cases/rows", case_rows, methods=["GET"]),
        Route("/console/cases.csv", case_csv, methods=["GET"]),
        Route("/console/cases/{number}", case_page, methods=["GET"]),
        Route("/console/cases/{number}/live", case_live, methods=["GET"]),
        Route("/console/cases/{number}/act", case_act, methods=["POST"]),
        Route("/console/cases/{number}/note", case_note, methods=["POST"]),
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
    grids = [a for a in areas if a.level == "grid" and visible(a.code)]
    with_grids = {g.parent for g in grids}
    return {
        "categories": [(c.code, c.name(staff.locale)) for c in bot.reference.catalog.categories],
        "urgencies": URGENCIES,
        "communities": [(a.code, a.display(staff.locale)) for a in areas
                        if a.level == "community" and (a.code in with_grids
                                                       or visible(a.code))],
        "grids": [(a.code, a.display(staff.locale), a.parent) for a in grids],
        "grid_options": grid_options(tuple((a.code, a.display(staff.locale), a.parent or "")
                                           for a in grids)),
        "channels": CHANNELS, "states": caselist.STATES,
        "statuses": tuple(caselist.STATUS_GROUPS), "sorts": caselist.SORTS,
    }


@functools.lru_cache(maxsize=64)
def grid_options(grids: tuple[tuple[str, str, str], ...]) -> Markup:
    """The grid filter's options, escaped once for a person's scope and language: a
    district's thousand grids escaped on every page cost more than its queries."""
    return Markup("").join(
        Markup('<option value="{0}" data-community="{2}">{1}</option>').format(*grid)
        for grid in grids)


def chosen_filter_options(request: Request, staff: Staff, filters: Filters
                          ) -> dict[str, Any]:
    """The filter form's choices with the grid asked for selected (the list and the map)."""
    options = filter_options(request, staff)
    options["grid_options"] = _selected(options["grid_options"], filters.grid)
    return options


def _selected(options: Markup, value: str) -> Markup:
    """The options with `value` chosen."""
    if not value:
        return options
    marked = str(Markup(' value="{0}"').format(value))
    return Markup(str(options).replace(marked + " ", marked + " selected ", 1))


async def _rows_context(request: Request, staff: Staff, filters: Filters
                        ) -> dict[str, Any]:
    bot = web.gridbot(request)
    now = bot.clock.now()
    conn = bot.db.conn
    since = await caselist.last_change(conn)
    found: CasePage = await caselist.list_cases(conn, filters, staff.actors, now,
                                                bot.settings.timezone)
    clocks = await caselist.countdowns(conn, bot.reference,
                                      [(c.case, c.subcategory) for c in found.cases], now)
    pages = max(1, -(-found.total // caselist.PAGE_SIZE))
    return {"found": found, "states": caselist.STATES, "cap": found.cap,
            "clocks": clocks, "filters": filters, "since": since,
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
    options = chosen_filter_options(request, staff, filters)
    return web.render(request, staff, "cases.html", active="cases", options=options,
                      **context)


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
            when(case.deadline), "1" if caselist.overdue(case, now) else "",
            when(item.changed_at)])
    stamp = now.astimezone(tz).strftime("%Y%m%d-%H%M")
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={**web.SECURITY_HEADERS,
                             "Content-Disposition": f'attachment; filename="cases-{stamp}.csv"'})


async def _visible_view(request: Request, staff: Staff, number: str
                        ) -> tuple[casework.CaseView, StoredCase] | None:
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


def _photo_link(request: Request, media_id: int) -> str:
    bot = web.gridbot(request)
    return links.media_url(bot.settings, media_id, bot.clock.now()).removeprefix(
        bot.settings.public_url)


async def _case_context(request: Request, staff: Staff, view: casework.CaseView,
                        stored: StoredCase) -> dict[str, Any]:
    bot = web.gridbot(request)
    now = bot.clock.now()
    conn = bot.db.conn
    clock = (await caselist.countdowns(conn, bot.reference,
                                      [(stored.case, stored.details.subcategory)], now)
             )[stored.case.number]
    data = await console_cases.page_data(conn, bot.reference, view, stored, staff.actors,
                                         staff.locale, masked=staff.masked)
    photos = [{"url": _photo_link(request, p.media_id), "role": p.role} for p in data.photos]
    return {"view": view, "case": stored.case, "clock": clock, "now": now, "page": data,
            "photos": photos, "poll": POLL_SECONDS,
            "sketch": await console_cases.place_sketch(conn, stored),
            "max_message": console_cases.MAX_MESSAGE, "max_note": actions.MAX_NOTE,
            "max_days": actions.MAX_DAYS,
            "flash": _flash(request)}


def _flash(request: Request) -> dict[str, str] | None:
    """What the last action did, from the address it was sent back to (?done= or
    ?refused=)."""
    params = request.query_params
    for outcome in ("done", "refused"):
        value = params.get(outcome, "")
        if value and value.replace("_", "").isalpha() and len(value) <= 32:
            return {"outcome": outcome, "code": value, "state": params.get("state", "")[:32]}
    return None


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
    """The case page's changing part for htmx: 204 while the case and its notes are as
    the page showed them (`s`)."""
    found = await _visible_view(request, staff, request.path_params["number"])
    if found is None:
        return web.plain("not found", 404)
    view, stored = found
    if request.query_params.get("s") == await console_cases.stamp(web.gridbot(request).db.conn,
                                                                 stored):
        return Response(status_code=204, headers=web.SECURITY_HEADERS)
    context = await _case_context(request, staff, view, stored)
    return web.render(request, staff, "_case_live.html", **context)


def _back(number: str, **outcome: str) -> Response:
    """Back to the case page, saying what happened (POST, redirect, GET)."""
    query = urlencode({k: v for k, v in outcome.items() if v})
    return RedirectResponse(f"/console/cases/{number}?{query}#outcome", status_code=303,
                            headers=web.SECURITY_HEADERS)


def _wake(request: Request) -> None:
    """Messages were queued: let the senders know (as the engine does after a commit)."""
    for callback in web.gridbot(request).engine.on_queued:
        callback()


def _field(form: Any, name: str, limit: int = 2000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


@staff_page
async def case_act(request: Request, staff: Staff) -> Response:
    """Apply one action from the case page, through the same service as the bot's
    buttons: role, scope, state and the version the page showed are checked."""
    bot = web.gridbot(request)
    number = casework.parse_case_number(request.path_params["number"]) or ""
    form = await request.form(max_files=1, max_fields=20)
    try:
        kind = EventKind(_field(form, "kind", 40))
    except ValueError:
        return _back(number, refused="incomplete")
    version = _field(form, "version", 12)
    days = _field(form, "days", 3)
    now = bot.clock.now()
    upload = form.get("photo")
    photo = None
    if upload is not None and not isinstance(upload, str) and upload.filename:
        try:
            photo = save_photo(bot.settings.media_dir, await upload.read(),
                               upload.content_type or "")
        except MediaRefused:
            return _back(number, refused="photo")
    try:
        async with bot.db.transaction() as conn:
            photos = (await actions.keep_photo(conn, "console", photo, now),) if photo else ()
            acted = await actions.act(
                conn, bot.reference, staff.person_id, number, kind,
                actions.Given(note=_field(form, "note"), target=_field(form, "target", 80),
                              merge_into=_field(form, "merge_into", 20),
                              days=int(days) if days.isdigit() else None, photos=photos),
                now, seen_version=int(version) if version.isdigit() else None)
            queued = await actions.queue(conn, bot.renderer, bot.reference, acted.notices, now)
    except actions.ActionRefused as refused:
        if refused.code == "not_found" and kind != EventKind.MERGE:
            return web.render(request, staff, "not_found.html", status=404, active="cases")
        return _back(number, refused=refused.code, state=refused.state or "")
    if queued:
        _wake(request)
    return _back(number, done=kind.value)


@staff_page
async def case_note(request: Request, staff: Staff) -> Response:
    """An internal note (`kind=internal`) or a message to the resident (`kind=message`)."""
    bot = web.gridbot(request)
    number = casework.parse_case_number(request.path_params["number"]) or ""
    form = await request.form(max_files=0, max_fields=10)
    kind = _field(form, "kind", 10)
    text = _field(form, "text", console_cases.MAX_INTERNAL + 1)
    now = bot.clock.now()
    queued = 0
    try:
        async with bot.db.transaction() as conn:
            stored = await caselist.visible_case(conn, number, staff.actors)
            if stored is None:
                return web.render(request, staff, "not_found.html", status=404,
                                  active="cases")
            if kind == "message":
                told = await console_cases.message_resident(conn, stored, staff.person_id,
                                                            text, now)
                queued = await actions.queue(conn, bot.renderer, bot.reference, told, now)
            else:
                await console_cases.add_internal_note(conn, stored, staff.person_id, text, now)
    except console_cases.NoteRefused:
        return _back(number, refused="note")
    if queued:
        _wake(request)
    return _back(number, done="message" if kind == "message" else "internal")

"""The household archive in the console (issue 17): households per grid and building, a
household's page, logging a visit, the due visits, deleting a household (the street), and
on the case page linking a case to a household. Every read goes through
bot/services/households.py, which checks scope and logs it as the bot does.

Only those who read households (the grid's staff and the levels above) reach these pages;
anyone else, department staff included, gets 404 as for a page that does not exist.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.domain.households import mask_name
from bot.entrypoints.console import web
from bot.entrypoints.console.web import Staff, staff_page
from bot.services import caselist, casework
from bot.services import households as household_service

MAX_RAISED = 500
MAX_FOLLOW_UP = 200


def routes() -> list[BaseRoute]:
    """The household list, the due visits, a household's page and its actions, and the
    case page's link to a household."""
    return [
        Route("/console/households", household_list, methods=["GET"]),
        Route("/console/households/due", due_list, methods=["GET"]),
        Route("/console/households/{hid:int}", household_page, methods=["GET"]),
        Route("/console/households/{hid:int}/visit", household_visit, methods=["POST"]),
        Route("/console/households/{hid:int}/delete", household_delete, methods=["POST"]),
        Route("/console/cases/{number}/household", case_link, methods=["POST"]),
    ]


def _not_found(request: Request, staff: Staff) -> Response:
    return web.render(request, staff, "not_found.html", status=404, active="households")


def _field(form: Any, name: str, limit: int) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _redirect(path: str, **params: str) -> Response:
    query = urlencode({k: v for k, v in params.items() if v})
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303,
                            headers=web.SECURITY_HEADERS)


@staff_page
async def household_list(request: Request, staff: Staff) -> Response:
    """The grids this person reads; with `grid` (and `building`), their households."""
    bot = web.gridbot(request)
    district = bot.reference.district
    grids = household_service.grids_of(district, staff.actors)
    if not household_service.is_reader(staff.actors) or not grids:
        return _not_found(request, staff)
    grid = request.query_params.get("grid", "")
    building = request.query_params.get("building", "")
    building_id = int(building) if building.isdigit() else None
    if building_id is not None and building_id in district.buildings:
        grid = district.buildings[building_id].grid_code
    shown = None
    if grid:
        async with bot.db.transaction() as conn:
            shown = await household_service.in_grid(conn, bot.reference, grid, staff.actors,
                                                    bot.clock.now(), staff.locale,
                                                    building_id)
        if shown is None:
            return _not_found(request, staff)
    return web.render(request, staff, "households.html", active="households",
                      grids=[(g, district.name(g, staff.locale)) for g in grids],
                      grid=grid, shown=shown, tags=bot.reference.household_tags,
                      mask_name=mask_name,
                      flash=request.query_params.get("done", "")[:20])


@staff_page
async def due_list(request: Request, staff: Staff) -> Response:
    """The households due a visit by tonight in this person's grids, longest waiting
    first."""
    bot = web.gridbot(request)
    if not household_service.is_reader(staff.actors):
        return _not_found(request, staff)
    async with bot.db.transaction() as conn:
        due = await household_service.due_for(conn, bot.reference, staff.actors,
                                              bot.clock.now(), staff.locale)
    return web.render(request, staff, "households_due.html", active="households", due=due)


@staff_page
async def household_page(request: Request, staff: Staff) -> Response:
    """One household: door, head, phone (masked for a grid chief, as in the bot), size,
    tags, visits, linked cases; the read logged."""
    bot = web.gridbot(request)
    now = bot.clock.now()
    async with bot.db.transaction() as conn:
        found = await household_service.readable(conn, bot.reference,
                                                 request.path_params["hid"], staff.actors)
        if found is None:
            return _not_found(request, staff)
        household, actor = found
        view = await household_service.view(conn, bot.reference, household, actor,
                                            staff.locale, now, what="console")
        visits = await household_service.visit_lines(conn, household.id)
    return web.render(request, staff, "household.html", active="households", h=view,
                      visits=visits, max_raised=MAX_RAISED, max_follow_up=MAX_FOLLOW_UP,
                      can_delete=household_service.can_delete(bot.reference, household,
                                                              staff.actors),
                      flash=request.query_params.get("done", "")[:20])


@staff_page
async def household_visit(request: Request, staff: Staff) -> Response:
    """Log a visit against the household: what was raised, the follow-up if any."""
    bot = web.gridbot(request)
    form = await request.form(max_files=0, max_fields=10)
    raised = _field(form, "raised", MAX_RAISED)
    follow_up = _field(form, "follow_up", MAX_FOLLOW_UP) or None
    hid = request.path_params["hid"]
    async with bot.db.transaction() as conn:
        found = await household_service.readable(conn, bot.reference, hid, staff.actors)
        if found is None:
            return _not_found(request, staff)
        if not raised:
            return _redirect(f"/console/households/{hid}", done="empty")
        household, _ = found
        await household_service.log_visit(
            conn, bot.reference, staff.person_id, None, bot.clock.now(), raised=raised,
            follow_up=follow_up, building_id=household.building_id, household=household)
    return _redirect(f"/console/households/{hid}", done="visit")


@staff_page
async def household_delete(request: Request, staff: Staff) -> Response:
    """The street deletes a household (an audit line without personal data stays)."""
    bot = web.gridbot(request)
    hid = request.path_params["hid"]
    async with bot.db.transaction() as conn:
        found = await household_service.readable(conn, bot.reference, hid, staff.actors)
        if found is None:
            return _not_found(request, staff)
        grid = found[0].grid_code
        if not await household_service.delete(conn, bot.reference, hid, staff.actors,
                                              bot.clock.now()):
            return _redirect(f"/console/households/{hid}", done="not_deleted")
    return _redirect("/console/households", grid=grid, done="deleted")


@staff_page
async def case_link(request: Request, staff: Staff) -> Response:
    """Link the case to a household (both in this person's scope)."""
    bot = web.gridbot(request)
    number = casework.parse_case_number(request.path_params["number"]) or ""
    form = await request.form(max_files=0, max_fields=10)
    chosen = _field(form, "household_id", 12)
    async with bot.db.transaction() as conn:
        stored = await caselist.visible_case(conn, number, staff.actors)
        if stored is None:
            return web.render(request, staff, "not_found.html", status=404, active="cases")
        outcome = "no_household"
        if chosen.isdigit():
            outcome = await household_service.link_case(conn, bot.reference, number,
                                                        int(chosen), staff.actors,
                                                        bot.clock.now())
    return RedirectResponse(f"/console/cases/{number}?{urlencode({'household': outcome})}"
                            "#household", status_code=303, headers=web.SECURITY_HEADERS)

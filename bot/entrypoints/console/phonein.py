"""Phone-in in the console (issue 17): a staff member files a case for a caller on the
phone, and on the case page sees who phoned it in and records the answer of a caller who
hears by phone. The filing is bot/services/phonein.py `file_for_caller` (the same
`casework.file_case` and `phonein.mark` as the bot's /phonein); the answer is
`phonein.record_caller_answer` (as the bot's "fixed?" buttons pressed by the filer).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.domain.workflow import Event, EventKind
from bot.entrypoints.console import web
from bot.entrypoints.console.web import Staff, staff_page
from bot.services import actions, caselist, casework, phonein, phones
from bot.services import households as household_service
from bot.services.districts import Place

MAX_DESCRIPTION = 500


def routes() -> list[BaseRoute]:
    """The phone-in form, and the case page's phone-in part and caller's answer."""
    return [
        Route("/console/phonein", phonein_form, methods=["GET"]),
        Route("/console/phonein", phonein_file, methods=["POST"]),
        Route("/console/cases/{number}/phonein", case_phonein, methods=["GET"]),
        Route("/console/cases/{number}/answer", case_answer, methods=["POST"]),
    ]


def _field(form: Any, name: str, limit: int) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _places(request: Request, staff: Staff) -> list[tuple[str, str]]:
    """What the place menu offers: the buildings, then the grids, of this person's area."""
    bot = web.gridbot(request)
    district = bot.reference.district
    grids = household_service.grids_of(district, staff.actors)
    buildings = sorted((b for b in district.buildings.values() if b.grid_code in grids),
                       key=lambda b: (b.grid_code, b.name, b.id))
    return ([(f"b:{b.id}", f"{district.building_name(b.id, staff.locale)} · "
              f"{district.name(b.grid_code, staff.locale)}") for b in buildings]
            + [(f"g:{g}", district.name(g, staff.locale)) for g in grids])


def _place(request: Request, staff: Staff, value: str) -> Place | None:
    if value not in {v for v, _ in _places(request, staff)}:
        return None
    district = web.gridbot(request).reference.district
    kind, _, code = value.partition(":")
    return district.building_place(int(code)) if kind == "b" else Place(code, address=code)


async def _form(request: Request, staff: Staff, *, status: int = 200, refused: str = "",
                values: dict[str, str] | None = None) -> Response:
    bot = web.gridbot(request)
    given = dict(values or {})
    phone = given.get("phone") or request.query_params.get("phone", "")[:30]
    given["phone"] = phone
    households = []
    e164 = phones.to_e164(phone, bot.reference.phone_region) if phone else None
    if e164 is not None:
        async with bot.db.transaction() as conn:
            found = await phonein.households_for(conn, bot.reference, e164, staff.actors,
                                                 bot.clock.now())
        district = bot.reference.district
        households = [(h.id, f"{district.building_name(h.building_id, staff.locale)} "
                       f"{household_service.short_label(bot.reference, h, staff.locale)}")
                      for h in found]
    return web.render(
        request, staff, "phonein.html", status=status, active="phonein",
        categories=[(c.code, c.name(staff.locale)) for c in bot.reference.catalog.categories],
        places=_places(request, staff), households=households, given=given,
        refused=refused, filed=request.query_params.get("filed", "")[:12],
        filed_sms=request.query_params.get("sms") == "1", max_description=MAX_DESCRIPTION)


@staff_page
async def phonein_form(request: Request, staff: Staff) -> Response:
    """The phone-in form; `?phone=` offers the households on file with that number."""
    if phonein.filer_actor(staff.actors) is None:
        return web.render(request, staff, "not_found.html", status=404, active="phonein")
    return await _form(request, staff)


@staff_page
async def phonein_file(request: Request, staff: Staff) -> Response:
    """File the case for the caller, then back to an empty form saying the case number."""
    bot = web.gridbot(request)
    if phonein.filer_actor(staff.actors) is None:
        return web.render(request, staff, "not_found.html", status=404, active="phonein")
    form = await request.form(max_files=0, max_fields=20)
    values = {name: _field(form, name, limit) for name, limit in (
        ("phone", 30), ("sms", 3), ("category", 40), ("description", MAX_DESCRIPTION),
        ("place", 30), ("household", 12))}
    categories = {c.code for c in bot.reference.catalog.categories}
    place = _place(request, staff, values["place"])
    if values["category"] not in categories or not values["description"] or place is None \
            or values["sms"] not in ("yes", "no"):
        return await _form(request, staff, status=400, refused="incomplete", values=values)
    draft = casework.Draft(values["category"], None, values["description"], place, (),
                           phonein.CHANNEL)
    household = int(values["household"]) if values["household"].isdigit() else None
    now = bot.clock.now()
    try:
        async with bot.db.transaction() as conn:
            done = await phonein.file_for_caller(conn, bot.reference, staff.actors,
                                                 values["phone"], values["sms"] == "yes",
                                                 draft, now, household)
            queued = await actions.queue(conn, bot.renderer, bot.reference, done.notices, now)
    except phonein.PhoneInRefused as refused:
        return await _form(request, staff, status=400, refused=refused.code, values=values)
    if queued:
        for callback in bot.engine.on_queued:
            callback()
    query = urlencode({"filed": done.filed.case.number,
                       "sms": "1" if values["sms"] == "yes" else "0"})
    return RedirectResponse(f"/console/phonein?{query}", status_code=303,
                            headers=web.SECURITY_HEADERS)


@staff_page
async def case_phonein(request: Request, staff: Staff) -> Response:
    """The case page's phone-in and household part (loaded by htmx): who phoned it in,
    whether the caller hears by SMS, the caller's answer for the filer to record, and the
    household linked or to link."""
    bot = web.gridbot(request)
    number = casework.parse_case_number(request.path_params["number"]) or ""
    async with bot.db.transaction() as conn:
        stored = await caselist.visible_case(conn, number, staff.actors)
        if stored is None or stored.case.id is None:
            return web.plain("not found", 404)
        info = await phonein.view(conn, stored.case, staff.person_id)
        linked = None
        choices: list[tuple[int, str]] = []
        if household_service.is_reader(staff.actors):
            linked = await household_service.linked_to(conn, bot.reference, stored.case.id,
                                                       staff.actors)
            if linked is None:
                district = bot.reference.district
                choices = [(h.id, f"{district.building_name(h.building_id, staff.locale)} "
                            f"{household_service.short_label(bot.reference, h, staff.locale)}")
                           for h in await household_service.link_choices(
                               conn, bot.reference, stored.case.grid_code,
                               stored.details.building_id, staff.actors, bot.clock.now())]
    return web.render(request, staff, "_case_phonein.html", info=info, case=stored.case,
                      linked=linked, choices=choices,
                      outcome=request.query_params.get("household", "")[:20])


@staff_page
async def case_answer(request: Request, staff: Staff) -> Response:
    """Record the caller's answer to "fixed?", taken by phone: `answer=no` reopens the
    case, `answer=1`…`5` rates it, both as the caller's own."""
    bot = web.gridbot(request)
    number = casework.parse_case_number(request.path_params["number"]) or ""
    form = await request.form(max_files=0, max_fields=10)
    answer = _field(form, "answer", 3)
    if answer == "no":
        event = Event(EventKind.REOPEN, note=bot.renderer.label(staff.locale, "btn.fixed_no"))
    elif answer in ("1", "2", "3", "4", "5"):
        event = Event(EventKind.RATE, rating=int(answer), note=answer)
    else:
        return RedirectResponse(f"/console/cases/{number}?refused=incomplete",
                                status_code=303, headers=web.SECURITY_HEADERS)
    now = bot.clock.now()
    try:
        async with bot.db.transaction() as conn:
            stored = await caselist.visible_case(conn, number, staff.actors)
            if stored is None:
                return web.render(request, staff, "not_found.html", status=404,
                                  active="cases")
            _, notices = await phonein.record_caller_answer(conn, bot.reference, stored,
                                                            staff.person_id, event, now)
            queued = await actions.queue(conn, bot.renderer, bot.reference, notices, now)
    except phonein.AnswerRefused:
        return RedirectResponse(f"/console/cases/{number}?refused=not_allowed", status_code=303,
                                headers=web.SECURITY_HEADERS)
    if queued:
        for callback in bot.engine.on_queued:
            callback()
    return RedirectResponse(f"/console/cases/{number}?done={event.kind.value}",
                            status_code=303, headers=web.SECURITY_HEADERS)

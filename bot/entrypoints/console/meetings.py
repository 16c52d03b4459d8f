"""Meetings in the console (issue 14): call one (title, place, time, invitees by area and
role), then follow the invitees' answers (yes, no, no answer) live, and the reminders a
day and an hour before, through `bot.services.meetings` as `/meeting` and `gridbot
meeting` do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.entrypoints.console import web
from bot.entrypoints.console.map import map_headers
from bot.entrypoints.console.notices import (
    FORM_FIELDS,
    scope_field,
    scope_picker,
    stamp,
    unchanged,
)
from bot.entrypoints.console.web import Staff, staff_page
from bot.services import meetings, notices
from store import meetings as meeting_store
from store import people as people_store
from store.meetings import MeetingRow

POLL_SECONDS = 3


def routes() -> list[BaseRoute]:
    """The meetings pages."""
    return [
        Route("/console/meetings", meeting_list, methods=["GET"]),
        Route("/console/meetings", meeting_call, methods=["POST"]),
        Route("/console/meetings/{id:int}", meeting_page, methods=["GET"]),
        Route("/console/meetings/{id:int}/live", meeting_live, methods=["GET"]),
    ]


async def _roles(request: Request, staff: Staff) -> list[tuple[str, str | None]]:
    return await people_store.roles_of(web.gridbot(request).db.conn, staff.person_id)


def _organizer(roles: list[tuple[str, str | None]]) -> bool:
    return any(role in meetings.ORGANIZER_ROLES for role, _ in roles)


def _refuse(request: Request, staff: Staff, status: int = 403) -> Response:
    return web.render(request, staff, "notices_refused.html", status=status,
                      active="meetings")


def _field(form: Any, name: str, limit: int) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


async def _list_context(request: Request, staff: Staff, roles: list[tuple[str, str | None]],
                        given: dict[str, str], errors: list[str]) -> dict[str, Any]:
    bot = web.gridbot(request)
    district = bot.reference.district
    found = await meetings.visible_meetings(bot.db.conn, district, roles)
    rows = []
    for meeting in found:
        answers = await meetings.summary(bot.db.conn, meeting.id)
        rows.append({"meeting": meeting,
                     "scope": notices.scope_name(district, meeting.scope, staff.locale),
                     "yes": len(answers["yes"]), "no": len(answers["no"]),
                     "none": len(answers["unanswered"]), "invited": answers["invited"]})
    picker = scope_picker(request, roles, staff.locale, given["scope"],
                          meetings.ORGANIZER_ROLES)
    return {**picker, "rows": rows, "audiences": notices.AUDIENCES, "given": given,
            "errors": errors, "max_title": meetings.MAX_TITLE,
            "max_place": meetings.MAX_PLACE}


def _local_time(text: str, tz: Any) -> datetime | None:
    """A datetime-local value ("2026-11-24T14:30") in the bot's time zone, or None."""
    try:
        return datetime.fromisoformat(text).replace(tzinfo=tz)
    except ValueError:
        return None


@staff_page
async def meeting_list(request: Request, staff: Staff) -> Response:
    """The meetings this person may see, and the form to call one."""
    roles = await _roles(request, staff)
    if not _organizer(roles):
        return _refuse(request, staff)
    given = {"scope": "", "audience": "chiefs", "title": "", "place": "", "starts_at": ""}
    return web.render(request, staff, "meetings.html", active="meetings",
                      headers=map_headers(request),
                      **await _list_context(request, staff, roles, given, []))


@staff_page
async def meeting_call(request: Request, staff: Staff) -> Response:
    """Call a meeting: the invitations are queued at once. The invitees are the areas and
    buildings ticked in the tree (or on the map), each within one of the organizer's."""
    bot = web.gridbot(request)
    roles = await _roles(request, staff)
    if not _organizer(roles):
        return _refuse(request, staff)
    form = await request.form(max_files=0, max_fields=FORM_FIELDS + notices.MAX_SCOPE_PARTS)
    given = {"scope": scope_field(form), "audience": _field(form, "audience", 20),
             "title": _field(form, "title", meetings.MAX_TITLE),
             "place": _field(form, "place", meetings.MAX_PLACE),
             "starts_at": _field(form, "starts_at", 20)}
    district = bot.reference.district
    now = bot.clock.now()
    errors = []
    scope = notices.resolve_scope(district, given["scope"]) if given["scope"] else None
    refusal = notices.scope_refusal(district, roles, scope, meetings.ORGANIZER_ROLES)
    if refusal is not None:
        errors.append(refusal)
    if given["audience"] not in notices.AUDIENCES:
        errors.append("audience")
    if not given["title"]:
        errors.append("title")
    if not given["place"]:
        errors.append("place")
    starts_at = _local_time(given["starts_at"], bot.settings.timezone)
    if starts_at is None or starts_at <= now:
        errors.append("starts_at")
    if errors or scope is None or starts_at is None:
        return web.render(request, staff, "meetings.html", active="meetings", status=400,
                          headers=map_headers(request),
                          **await _list_context(request, staff, roles, given, errors))
    outreach = notices.Outreach(bot.renderer, bot.reference, bot.settings.quiet_hours)
    async with bot.db.transaction() as conn:
        meeting, count = await meetings.call(
            conn, outreach, organizer_id=staff.person_id, title=given["title"],
            place=given["place"], starts_at=starts_at, scope=scope,
            audience=given["audience"], now=now)
    if count:
        for callback in bot.engine.on_queued:
            callback()
    return RedirectResponse(f"/console/meetings/{meeting.id}?done=called", status_code=303,
                            headers=web.SECURITY_HEADERS)


async def _visible(request: Request, staff: Staff) -> MeetingRow | None:
    bot = web.gridbot(request)
    meeting = await meeting_store.get(bot.db.conn, int(request.path_params["id"]))
    if meeting is None:
        return None
    roles = await _roles(request, staff)
    return meeting if meetings.visible_to(bot.reference.district, roles, meeting) else None


async def _page_context(request: Request, staff: Staff, meeting: MeetingRow
                        ) -> dict[str, Any]:
    bot = web.gridbot(request)
    answers = await meeting_store.answers(bot.db.conn, meeting.id)
    groups: dict[str, list[dict[str, Any]]] = {"yes": [], "no": [], "none": []}
    for person_id, name, grid, answer in answers:
        groups[answer or "none"].append({
            "id": person_id, "name": name or f"#{person_id}",
            "grid": bot.reference.district.name(grid, staff.locale) if grid else ""})
    return {"meeting": meeting, "groups": groups, "invited": len(answers),
            "reminders": meetings.reminders(meeting),
            "stamp": stamp((meeting, groups)),
            "to_remind": len(groups["yes"]) + len(groups["none"]),
            "scope": notices.scope_name(bot.reference.district, meeting.scope, staff.locale),
            "poll": POLL_SECONDS, "flash": request.query_params.get("done", "")[:20]}


@staff_page
async def meeting_page(request: Request, staff: Staff) -> Response:
    """One meeting: the answers and the reminders."""
    meeting = await _visible(request, staff)
    if meeting is None:
        return _refuse(request, staff, 404)
    return web.render(request, staff, "meeting.html", active="meetings",
                      **await _page_context(request, staff, meeting))


@staff_page
async def meeting_live(request: Request, staff: Staff) -> Response:
    """The meeting page's changing part, for htmx polling."""
    meeting = await _visible(request, staff)
    if meeting is None:
        return web.plain("not found", 404)
    context = await _page_context(request, staff, meeting)
    return unchanged(request, context["stamp"]) or web.render(
        request, staff, "_meeting_live.html", **context)

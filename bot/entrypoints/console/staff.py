"""The staff page: invite (a role and a scope, then the code, the Telegram deep link and
its QR code to print), the staff with their roles, scopes, channels and last activity,
revoking a role, and the departments. Only administrators and dispatchers (for their
street) manage staff (`staff_invites.may_manage`); everyone else gets 404.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.bootstrap import Gridbot
from bot.channels.telegram import TelegramChannel
from bot.domain.clock import parse_iso
from bot.entrypoints.console import web
from bot.entrypoints.console.web import Staff, staff_page
from bot.services import staff_invites
from store import staff as staff_store


def routes() -> list[BaseRoute]:
    """The staff list, inviting, revoking."""
    return [
        Route("/console/staff", staff_list, methods=["GET"]),
        Route("/console/staff/invite", staff_invite, methods=["POST"]),
        Route("/console/staff/{role_id:int}/revoke", staff_revoke, methods=["POST"]),
    ]


def telegram_username(bot: Gridbot) -> str | None:
    """The bot's Telegram username (learnt by getMe at start), None without Telegram."""
    for channel in bot.channels:
        if isinstance(channel, TelegramChannel):
            try:
                return str(channel.bot.username)
            except RuntimeError:  # not connected yet
                return None
    return None


def _scopes(request: Request, staff: Staff) -> list[tuple[str, str, str]]:
    """The scopes the person may invite to: (code, name, kind), areas then departments."""
    bot = web.gridbot(request)
    reference = bot.reference
    offered: list[tuple[str, str, str]] = []
    order = {"street": 1, "community": 2, "grid": 3}
    for area in sorted(reference.district.areas.values(),
                       key=lambda a: (order.get(a.level, 9), a.code)):
        if area.level in order and staff_invites.may_manage(staff.actors, reference,
                                                            "grid_chief", area.code):
            offered.append((area.code, area.display(staff.locale), area.level))
    for department in reference.departments:
        if staff_invites.may_manage(staff.actors, reference, "department", department.code):
            offered.append((department.code, department.name(staff.locale), "department"))
    return offered


def _roles(staff: Staff) -> list[str]:
    return [role for role in staff_invites.STAFF_ROLE_NAMES
            if any(a.role.value == "admin" for a in staff.actors)
            or role not in staff_invites.UNSCOPED_ROLES]


async def _context(request: Request, staff: Staff) -> dict[str, Any]:
    bot = web.gridbot(request)
    reference = bot.reference
    conn = bot.db.conn
    activity = await staff_store.staff_activity(conn)
    rows = []
    for row in await staff_store.list_staff(conn):
        if not staff_invites.may_manage(staff.actors, reference, row.role, row.scope):
            continue
        seen = activity.get(row.person_id)
        departments = {d.code: d.name(staff.locale) for d in reference.departments}
        rows.append({
            "role_id": row.role_id, "person_id": row.person_id, "name": row.name or "",
            "role": row.role, "scope": row.scope,
            "scope_name": departments.get(row.scope or "") or reference.district.name(
                row.scope, staff.locale),
            "channels": seen.channels if seen else (),
            "last_seen": parse_iso(seen.last_seen) if seen and seen.last_seen else None,
            "granted_at": parse_iso(row.granted_at),
        })
    return {"rows": rows, "roles": _roles(staff), "scopes": _scopes(request, staff),
            "departments": [(d.code, d.name(staff.locale), d.categories,
                             d.open311 is not None) for d in reference.departments],
            "categories": {c.code: c.name(staff.locale) for c in reference.catalog.categories},
            "revoked": request.query_params.get("revoked", "")}


def _refused(request: Request, staff: Staff) -> Response:
    return web.render(request, staff, "staff_none.html", status=404, active="staff")


@staff_page
async def staff_list(request: Request, staff: Staff) -> Response:
    """The invite form, the staff list and the departments."""
    if not staff_invites.manages_anyone(staff.actors):
        return _refused(request, staff)
    return web.render(request, staff, "staff.html", active="staff",
                      **await _context(request, staff), invitation=None, error="")


@staff_page
async def staff_invite(request: Request, staff: Staff) -> Response:
    """Make an invitation and show its code, deep link and QR code (once)."""
    if not staff_invites.manages_anyone(staff.actors):
        return _refused(request, staff)
    bot = web.gridbot(request)
    form = await request.form()
    role = str(form.get("role", ""))
    scope = str(form.get("scope", "")).strip() or None
    error, invitation = "", None
    if not staff_invites.may_manage(staff.actors, bot.reference, role, scope):
        error = "not_allowed"
    else:
        try:
            async with bot.db.transaction() as conn:
                invitation = await staff_invites.create_invite(
                    conn, bot.reference, role, scope, bot.clock.now())
        except staff_invites.InviteRefused as refused:
            error = refused.code
    username = telegram_username(bot)
    link = staff_invites.deep_link(username, invitation.code) if invitation and username \
        else ""
    return web.render(request, staff, "staff.html", active="staff",
                      status=400 if error else 200, **await _context(request, staff),
                      invitation=invitation, link=link,
                      qr=staff_invites.qr_data_uri(link) if link else "", error=error)


@staff_page
async def staff_revoke(request: Request, staff: Staff) -> Response:
    """End one role (if it is this person's to end), then back to the list."""
    bot = web.gridbot(request)
    role_id = int(request.path_params["role_id"])
    async with bot.db.transaction() as conn:
        done = await staff_invites.revoke(conn, bot.reference, staff.actors, role_id,
                                          bot.clock.now())
    if not done:
        return web.render(request, staff, "staff_none.html", status=404, active="staff")
    return RedirectResponse(f"/console/staff?revoked={role_id}", status_code=303,
                            headers=web.SECURITY_HEADERS)

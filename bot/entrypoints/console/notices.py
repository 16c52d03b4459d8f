"""Notices in the console (issue 14): compose (where, to whom, the text in Chinese and
English, a photo, a time), a preview (recipients per channel, the SMS text and its
segments), confirm; the list with delivery progress and acknowledgements per grid, live;
remind those who have not acknowledged; cancel a scheduled notice.

Everything goes through `bot.services.notices`, as the bot's /notice and `gridbot notice`
do: `create_notice` stores (and queues) it, `remind` and `cancel` act on one.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from bot.entrypoints.console import web
from bot.entrypoints.console.map import map_headers, map_settings
from bot.entrypoints.console.web import Staff, staff_page
from bot.services import notices
from bot.services.mediafiles import MediaRefused, save_photo
from store import media as media_store
from store import notices as notice_store
from store import people as people_store
from store.notices import NoticeRow

POLL_SECONDS = 3


def routes() -> list[BaseRoute]:
    """The notices pages."""
    return [
        Route("/console/notices", notice_list, methods=["GET"]),
        Route("/console/notices/live", notice_list_live, methods=["GET"]),
        Route("/console/notices/new", notice_new, methods=["GET"]),
        Route("/console/notices/preview", notice_preview, methods=["POST"]),
        Route("/console/notices/send", notice_send, methods=["POST"]),
        Route("/console/notices/{id:int}", notice_page, methods=["GET"]),
        Route("/console/notices/{id:int}/live", notice_live, methods=["GET"]),
        Route("/console/notices/{id:int}/remind", notice_remind, methods=["POST"]),
        Route("/console/notices/{id:int}/cancel", notice_cancel, methods=["POST"]),
    ]


def stamp(value: Any) -> str:
    """A short fingerprint of what a live fragment shows: a poll that sends back the same
    one is answered 204 (see `unchanged`)."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def unchanged(request: Request, current: str) -> Response | None:
    """204 when the poll's `s` is the fragment's current stamp (htmx then leaves the page
    alone), else None."""
    if request.query_params.get("s") == current:
        return Response(status_code=204, headers=web.SECURITY_HEADERS)
    return None


async def _roles(request: Request, staff: Staff) -> list[tuple[str, str | None]]:
    return await people_store.roles_of(web.gridbot(request).db.conn, staff.person_id)


def scope_tree(request: Request, roles: list[tuple[str, str | None]], locale: str,
               allowed: frozenset[str] = notices.SENDER_ROLES) -> list[dict[str, Any]]:
    """The areas and buildings this person may address, as the form's tree."""
    return notices.scope_tree(web.gridbot(request).reference.district, roles, locale,
                              allowed)


def _outreach(request: Request) -> notices.Outreach:
    bot = web.gridbot(request)
    return notices.Outreach(bot.renderer, bot.reference, bot.settings.quiet_hours)


def _wake(request: Request) -> None:
    """Messages were queued: let the senders know (as the engine does after a commit)."""
    for callback in web.gridbot(request).engine.on_queued:
        callback()


def _field(form: Any, name: str, limit: int) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


# The form's fields besides the tree's (or the map's) ticked areas and buildings.
FORM_FIELDS = 20


def scope_field(form: Any) -> str:
    """The ticked areas and buildings (one "scope" field each, or one field of them joined,
    as the confirmation carries them), joined by the scope separator."""
    values = [v.strip()[:40] for v in form.getlist("scope") if isinstance(v, str)]
    parts = [p for v in values for p in v.split(notices.SCOPE_SEPARATOR) if p.strip()]
    return notices.SCOPE_SEPARATOR.join(parts[:notices.MAX_SCOPE_PARTS + 1])


def _send_at(request: Request, text: str, now: datetime) -> datetime | None:
    """A datetime-local value ("2026-11-24T09:00") in the bot's time zone; `now` when
    empty; None when unreadable or past."""
    if not text:
        return now
    try:
        moment = datetime.fromisoformat(text).replace(tzinfo=web.gridbot(request).settings.timezone)
    except ValueError:
        return None
    return moment if moment > now else None


async def _views(request: Request, found: list[NoticeRow], locale: str
                 ) -> list[dict[str, Any]]:
    """Each notice with its delivery (queued, sent, failed) and acknowledgements per grid."""
    bot = web.gridbot(request)
    conn = bot.db.conn
    district = bot.reference.district
    delivery = await notice_store.delivery(conn, [n.id for n in found])
    views = []
    for notice in found:
        counts = await notices.acknowledgements(conn, notice.id)
        grids = [{"code": g.code, "name": district.name(g.code, locale) if g.code else "-",
                  "recipients": g.recipients, "acknowledged": g.acknowledged,
                  "percent": g.percent} for g in counts]
        acked = sum(g.acknowledged for g in counts)
        views.append({
            "notice": notice, "text": notice.text(locale),
            "scope": notices.scope_name(district, notice.scope, locale),
            "delivery": delivery[notice.id], "grids": grids, "acknowledged": acked,
            "percent": round(100 * acked / notice.recipients) if notice.recipients else 0,
        })
    return views


def _refuse(request: Request, staff: Staff, status: int = 403) -> Response:
    return web.render(request, staff, "notices_refused.html", status=status,
                      active="notices")


@staff_page
async def notice_list(request: Request, staff: Staff) -> Response:
    """The latest notices this person may see, with their delivery and acknowledgements."""
    roles = await _roles(request, staff)
    if not notices.sender_roles(roles):
        return _refuse(request, staff)
    return web.render(request, staff, "notices.html", active="notices",
                      **await _list_context(request, staff, roles))


async def _list_context(request: Request, staff: Staff,
                        roles: list[tuple[str, str | None]]) -> dict[str, Any]:
    bot = web.gridbot(request)
    found = await notices.visible_notices(bot.db.conn, bot.reference.district, roles)
    views = await _views(request, found, staff.locale)
    return {"views": views, "poll": POLL_SECONDS, "stamp": stamp(views),
            "flash": request.query_params.get("done", "")[:20]}


@staff_page
async def notice_list_live(request: Request, staff: Staff) -> Response:
    """The list's rows for htmx polling."""
    roles = await _roles(request, staff)
    if not notices.sender_roles(roles):
        return web.plain("forbidden", 403)
    context = await _list_context(request, staff, roles)
    return unchanged(request, context["stamp"]) or web.render(
        request, staff, "_notice_rows.html", **context)


def scope_picker(request: Request, roles: list[tuple[str, str | None]], locale: str,
                 ticked: str, allowed: frozenset[str]) -> dict[str, Any]:
    """What _scope_picker.html shows: the tree of areas and buildings, which of them are
    ticked (`ticked`, as `scope_field` joined them) and the map's tiles."""
    return {"tree": scope_tree(request, roles, locale, allowed),
            "chosen": set(ticked.split(notices.SCOPE_SEPARATOR)),
            "tiles": map_settings(request)}


def _compose_context(request: Request, staff: Staff, roles: list[tuple[str, str | None]],
                     given: dict[str, str], errors: list[str]) -> dict[str, Any]:
    return {**scope_picker(request, roles, staff.locale, given["scope"], notices.SENDER_ROLES),
            "audiences": notices.AUDIENCES, "given": given, "errors": errors,
            "max_text": notices.MAX_TEXT}


@staff_page
async def notice_new(request: Request, staff: Staff) -> Response:
    """The compose form."""
    roles = await _roles(request, staff)
    if not notices.sender_roles(roles):
        return _refuse(request, staff)
    given = {"scope": request.query_params.get("scope", "")[:40], "audience": "residents",
             "body": "", "body_en": "", "send_at": ""}
    return web.render(request, staff, "notice_new.html", active="notices",
                      headers=map_headers(request),
                      **_compose_context(request, staff, roles, given, []))


async def _read_draft(request: Request, staff: Staff, roles: list[tuple[str, str | None]],
                      form: Any) -> tuple[notices.Draft | None, datetime | None,
                                          dict[str, str], list[str]]:
    """The draft a compose form describes, its time, what was typed, and what is wrong."""
    bot = web.gridbot(request)
    district = bot.reference.district
    given = {"scope": scope_field(form), "audience": _field(form, "audience", 20),
             "body": _field(form, "body", notices.MAX_TEXT + 1),
             "body_en": _field(form, "body_en", notices.MAX_TEXT + 1),
             "send_at": _field(form, "send_at", 20), "photo_id": _field(form, "photo_id", 12)}
    errors = []
    scope = notices.resolve_scope(district, given["scope"]) if given["scope"] else None
    issuer = notices.may_address(district, roles, scope, notices.SENDER_ROLES) \
        if scope else None
    refusal = notices.scope_refusal(district, roles, scope, notices.SENDER_ROLES)
    if refusal is not None:
        errors.append(refusal)
    if given["audience"] not in notices.AUDIENCES:
        errors.append("audience")
    if not given["body"]:
        errors.append("body")
    if len(given["body"]) > notices.MAX_TEXT or len(given["body_en"]) > notices.MAX_TEXT:
        errors.append("too_long")
    send_at = _send_at(request, given["send_at"], bot.clock.now())
    if send_at is None:
        errors.append("send_at")
    if errors or scope is None or issuer is None:
        return None, send_at, given, errors
    given["scope"] = scope.code  # as it is stored: parts inside other parts dropped
    return (notices.Draft(scope, given["audience"], issuer, given["body"],
                          given["body_en"] or None, bool(given["photo_id"])),
            send_at, given, errors)


@staff_page
async def notice_preview(request: Request, staff: Staff) -> Response:
    """Check the form and show what sending would do; nothing is sent yet (a photo is
    kept, to be sent with the notice)."""
    bot = web.gridbot(request)
    roles = await _roles(request, staff)
    if not notices.sender_roles(roles):
        return _refuse(request, staff)
    form = await request.form(max_files=1, max_fields=FORM_FIELDS + notices.MAX_SCOPE_PARTS)
    draft, send_at, given, errors = await _read_draft(request, staff, roles, form)
    upload = form.get("photo")
    photo = None
    if upload is not None and not isinstance(upload, str) and upload.filename:
        try:
            photo = save_photo(bot.settings.media_dir, await upload.read(),
                               upload.content_type or "")
        except MediaRefused:
            errors.append("photo")
    if draft is None or errors:
        return web.render(request, staff, "notice_new.html", active="notices", status=400,
                          headers=map_headers(request),
                          **_compose_context(request, staff, roles, given, errors))
    if photo is not None:
        async with bot.db.transaction() as conn:
            given["photo_id"] = str(await media_store.add(
                conn, "console", bot.clock.now(), path=photo.path, sha256=photo.sha256,
                content_type=photo.content_type))
        draft = notices.Draft(draft.scope, draft.audience, draft.issuer, draft.body,
                              draft.body_en, True)
    shown = await notices.preview_draft(bot.db.conn, _outreach(request), draft)
    return web.render(request, staff, "notice_preview.html", active="notices",
                      given=given, draft=draft, preview=shown, send_at=send_at,
                      later=send_at is not None and send_at > bot.clock.now(),
                      scope_name=draft.scope.name(bot.reference.district, staff.locale))


@staff_page
async def notice_send(request: Request, staff: Staff) -> Response:
    """Confirm: store the notice through the same service as /notice and `gridbot notice`
    (queued at once when due now, else the scheduler sends it at its time)."""
    bot = web.gridbot(request)
    roles = await _roles(request, staff)
    if not notices.sender_roles(roles):
        return _refuse(request, staff)
    form = await request.form(max_files=0, max_fields=FORM_FIELDS + notices.MAX_SCOPE_PARTS)
    draft, send_at, given, errors = await _read_draft(request, staff, roles, form)
    if draft is None or send_at is None or errors:
        return web.render(request, staff, "notice_new.html", active="notices", status=400,
                          headers=map_headers(request),
                          **_compose_context(request, staff, roles, given, errors))
    photo_id = int(given["photo_id"]) if given["photo_id"].isdigit() else None
    kept = await media_store.get(bot.db.conn, photo_id) if photo_id is not None else None
    if kept is None or kept.channel != "console" or kept.case_id is not None:
        photo_id = None  # only a photo uploaded here for a notice, never a case's
    now = bot.clock.now()
    async with bot.db.transaction() as conn:
        notice, count = await notices.create_notice(
            conn, sender_id=staff.person_id, issuer=draft.issuer, scope=draft.scope.code,
            audience=draft.audience, body=draft.body, body_en=draft.body_en,
            photo_id=photo_id, send_at=send_at, now=now, outreach=_outreach(request))
    if count:
        _wake(request)
    return RedirectResponse(f"/console/notices/{notice.id}?done="
                            f"{'queued' if count is not None else 'scheduled'}",
                            status_code=303, headers=web.SECURITY_HEADERS)


async def _visible(request: Request, staff: Staff, manage: bool = False
                   ) -> NoticeRow | None:
    """The notice of the path if this person may see it (and, with `manage`, remind or
    cancel it), else None (answered 404, as a missing one)."""
    bot = web.gridbot(request)
    notice = await notice_store.get(bot.db.conn, int(request.path_params["id"]))
    if notice is None or notice.kind != "notice":
        return None
    roles = await _roles(request, staff)
    district = bot.reference.district
    if not notices.visible_to(district, roles, notice):
        return None
    if manage and not notices.may_manage(district, roles, staff.person_id, notice):
        return None
    return notice


async def _page_context(request: Request, staff: Staff, notice: NoticeRow) -> dict[str, Any]:
    view = (await _views(request, [notice], staff.locale))[0]
    roles = await _roles(request, staff)
    manage = notices.may_manage(web.gridbot(request).reference.district, roles,
                                staff.person_id, notice)
    return {"view": view, "notice": notice, "poll": POLL_SECONDS, "manage": manage,
            "stamp": stamp((view, manage)),
            "flash": request.query_params.get("done", "")[:20]}


@staff_page
async def notice_page(request: Request, staff: Staff) -> Response:
    """One notice: delivery, acknowledgements per grid as bars, remind, cancel."""
    notice = await _visible(request, staff)
    if notice is None:
        return _refuse(request, staff, 404)
    return web.render(request, staff, "notice.html", active="notices",
                      **await _page_context(request, staff, notice))


@staff_page
async def notice_live(request: Request, staff: Staff) -> Response:
    """The notice page's changing part, for htmx polling."""
    notice = await _visible(request, staff)
    if notice is None:
        return web.plain("not found", 404)
    context = await _page_context(request, staff, notice)
    return unchanged(request, context["stamp"]) or web.render(
        request, staff, "_notice_live.html", **context)


def _back(notice_id: int, done: str) -> Response:
    return RedirectResponse(f"/console/notices/{notice_id}?done={done}", status_code=303,
                            headers=web.SECURITY_HEADERS)


@staff_page
async def notice_remind(request: Request, staff: Staff) -> Response:
    """Send the notice again to those who have not acknowledged it (as `--remind`)."""
    bot = web.gridbot(request)
    notice = await _visible(request, staff, manage=True)
    if notice is None:
        return _refuse(request, staff, 404)
    if notice.status != "sent":
        return _back(notice.id, "not_sent")
    async with bot.db.transaction() as conn:
        count = await notices.remind(conn, _outreach(request), notice, bot.clock.now())
    if count:
        _wake(request)
    return _back(notice.id, "reminded")


@staff_page
async def notice_cancel(request: Request, staff: Staff) -> Response:
    """Cancel a scheduled notice before it goes."""
    bot = web.gridbot(request)
    notice = await _visible(request, staff, manage=True)
    if notice is None:
        return _refuse(request, staff, 404)
    async with bot.db.transaction() as conn:
        done = await notices.cancel(conn, notice.id)
    return _back(notice.id, "cancelled" if done else "not_cancelled")

"""The district in the console (issue 14): upload a GeoJSON of areas or a CSV of
buildings, checked as `gridbot import-grids` / `import-buildings` check them (errors by
feature or line, numbered from 1); a preview drawn over the stored areas; then apply.
Applying reloads the running server's district (grid index, buildings) at once: the next
report is routed by the new boundaries, without a restart.

Street dispatchers and administrators only.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.entrypoints.console import web
from bot.entrypoints.console.web import Staff, staff_page
from bot.services import district_preview
from bot.services.districts import check_buildings, check_geojson, import_buildings, import_geojson
from store import people as people_store

EDITOR_ROLES = frozenset({"dispatcher", "admin"})
KINDS = ("areas", "buildings")


def routes() -> list[BaseRoute]:
    """The district pages."""
    return [
        Route("/console/district", district_page, methods=["GET"]),
        Route("/console/district/check", district_check, methods=["POST"]),
        Route("/console/district/apply", district_apply, methods=["POST"]),
    ]


async def _editor(request: Request, staff: Staff) -> bool:
    roles = await people_store.roles_of(web.gridbot(request).db.conn, staff.person_id)
    return any(role in EDITOR_ROLES for role, _ in roles)


def _refused(request: Request, staff: Staff) -> Response:
    return web.render(request, staff, "district.html", active="district", status=403,
                      allowed=False, error=None, kind="areas")


def _kind_of(filename: str, text: str) -> str:
    """A file's kind by its name (.csv: buildings), else by its first character."""
    name = filename.lower()
    if name.endswith(".csv"):
        return "buildings"
    if name.endswith((".geojson", ".json")):
        return "areas"
    return "areas" if text.lstrip().startswith("{") else "buildings"


async def _check(request: Request, kind: str, text: str) -> tuple[Any, str | None]:
    """(the checked features or buildings, None) or (None, what is wrong)."""
    db = web.gridbot(request).db
    if kind == "areas":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, f"not JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
        try:
            return await check_geojson(db, data), None
        except ValueError as exc:  # GeoImportError names the feature, from 1
            return None, str(exc)
    try:
        return await check_buildings(db, text), None
    except ValueError as exc:  # names the line, from 1
        return None, str(exc)


@staff_page
async def district_page(request: Request, staff: Staff) -> Response:
    """The upload form."""
    if not await _editor(request, staff):
        return _refused(request, staff)
    return web.render(request, staff, "district.html", active="district", allowed=True,
                      error=None, kind="areas")


@staff_page
async def district_check(request: Request, staff: Staff) -> Response:
    """Check an uploaded file and show it over the stored areas; nothing is written."""
    if not await _editor(request, staff):
        return _refused(request, staff)
    form = await request.form(max_files=1, max_fields=5)
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return web.render(request, staff, "district.html", active="district", status=400,
                          allowed=True, error=web.text(staff.locale, "district.no_file"),
                          kind="areas")
    raw = await upload.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return web.render(request, staff, "district.html", active="district", status=400,
                          allowed=True, error=web.text(staff.locale, "district.not_utf8"),
                          kind="areas")
    kind = _kind_of(upload.filename, text)
    checked, error = await _check(request, kind, text)
    if error is not None:
        return web.render(request, staff, "district.html", active="district", status=400,
                          allowed=True, error=error, kind=kind, filename=upload.filename)
    conn = web.gridbot(request).db.conn
    preview = (await district_preview.of_areas(conn, checked) if kind == "areas"
               else await district_preview.of_buildings(conn, checked))
    return web.render(request, staff, "district_preview.html", active="district",
                      kind=kind, content=text, filename=upload.filename, preview=preview,
                      count=len(checked))


@staff_page
async def district_apply(request: Request, staff: Staff) -> Response:
    """Apply a checked file (checked again: the stored areas may have changed since), then
    reload the server's district so that reports are routed by it at once."""
    if not await _editor(request, staff):
        return _refused(request, staff)
    bot = web.gridbot(request)
    form = await request.form(max_files=0, max_fields=5)
    kind = form.get("kind")
    text = form.get("content")
    if kind not in KINDS or not isinstance(text, str):
        return web.render(request, staff, "district.html", active="district", status=400,
                          allowed=True, error=web.text(staff.locale, "district.no_file"),
                          kind="areas")
    try:
        if kind == "areas":
            count = await import_geojson(bot.db, json.loads(text), bot.clock.now())
        else:
            count = await import_buildings(bot.db, text)
    except ValueError as exc:  # json.JSONDecodeError and GeoImportError are ValueErrors
        return web.render(request, staff, "district.html", active="district", status=400,
                          allowed=True, error=str(exc), kind=str(kind))
    await bot.reference.reload_district(bot.db)
    return web.render(request, staff, "district.html", active="district", allowed=True,
                      error=None, kind=str(kind), applied=count)

"""The console's map page (/console/map): the grids as polygons coloured by their open and
overdue counts and the cases as clustered markers, under the list's filters; and the data
both it and the case page's small map draw (Leaflet, bot/static/console/map.js).

`/console/map/data.json?…filters` answers with an ETag (with `layer=grids`, the grids'
outlines and names alone: the notice composer's map of its audience); the page polls it every few
seconds with If-None-Match and gets 304 until a case changes (or a minute passes: cases
turn overdue with time alone). Past `casemap.POINTS_AT_ONCE` cases it holds the grids'
counts only, and the page then adds its view's bounds (`&bbox=west,south,east,north`).
No tile layer unless GRIDBOT_MAP_TILES is set; then the CSP
lets that host's images in, on the map pages only.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.entrypoints.console import cases, web
from bot.entrypoints.console.web import Staff, staff_page
from bot.services import caselist, casemap, casework
from bot.services.caselist import Filters

POLL_SECONDS = 3


def routes() -> list[BaseRoute]:
    """The map page, its data, and a case's small map."""
    return [
        Route("/console/map", map_page, methods=["GET"]),
        Route("/console/map/data.json", map_json, methods=["GET"]),
        Route("/console/map/place/{number}.json", place_json, methods=["GET"]),
    ]


def map_headers(request: Request) -> dict[str, str]:
    """The security headers, with the tile server's images allowed when one is set."""
    source = web.gridbot(request).settings.map_tile_source
    if source is None:
        return dict(web.SECURITY_HEADERS)
    return {**web.SECURITY_HEADERS,
            "Content-Security-Policy": web.content_security_policy(source)}


def map_settings(request: Request) -> dict[str, str]:
    """What the map script needs to know beyond the data: the tile layer, if any."""
    settings = web.gridbot(request).settings
    return {"tiles": settings.map_tiles or "", "attribution": settings.map_attribution}


@staff_page
async def map_page(request: Request, staff: Staff) -> Response:
    """The map with the list's filter form."""
    filters = Filters.from_params(request.query_params)
    query = filters.as_params(page=1)
    query.pop("sort", None)
    return web.render(request, staff, "map.html", active="map", filters=filters,
                      options=cases.chosen_filter_options(request, staff, filters), query=query,
                      poll=POLL_SECONDS, tiles=map_settings(request),
                      headers=map_headers(request))


def _json(data: Any, status: int = 200, etag: str | None = None) -> JSONResponse:
    headers = dict(web.SECURITY_HEADERS)
    if etag:
        headers["ETag"] = f'"{etag}"'
    return JSONResponse(data, status_code=status, headers=headers)


@staff_page
async def map_json(request: Request, staff: Staff) -> Response:
    """The grids and points for these filters, within the person's scope (the grids alone
    with `layer=grids`); 304 while the ETag the browser holds is still current."""
    bot = web.gridbot(request)
    filters = Filters.from_params(request.query_params)
    within = casemap.bounds_from_param(request.query_params.get("bbox", ""))
    with_cases = request.query_params.get("layer") != "grids"
    now = bot.clock.now()
    version = await casemap.map_version(bot.db.conn, bot.reference.district, filters,
                                        staff.actors, now, staff.locale, within, with_cases)
    if request.headers.get("if-none-match", "").strip('W/"') == version:
        return Response(status_code=304, headers={**web.SECURITY_HEADERS,
                                                  "ETag": f'"{version}"'})
    data = await casemap.map_data(bot.db.conn, bot.reference.district, filters,
                                  staff.actors, now, bot.settings.timezone, staff.locale,
                                  within, with_cases)
    return Response(data.json_text(), media_type="application/json",
                    headers={**web.SECURITY_HEADERS, "ETag": f'"{version}"'})


@staff_page
async def place_json(request: Request, staff: Staff) -> Response:
    """One case's grid outline and point, when the person may see the case (else 404,
    as for a case that does not exist)."""
    bot = web.gridbot(request)
    number = casework.parse_case_number(request.path_params["number"])
    stored = (await caselist.visible_case(bot.db.conn, number, staff.actors)
              if number else None)
    if stored is None:
        return _json({"error": "not found"}, 404)
    return _json(await casemap.place(bot.db.conn, stored))

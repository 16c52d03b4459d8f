"""The statistics page: the month's indicators (the same report as `gridbot stats`)
overall, per community, grid and person in charge; the charts (their data from
/console/stats/data.json, drawn by Chart.js from bot/static/console/stats.js); CSV and
XLSX exports; a print-friendly layout (stats.css). Scope: the areas the person's roles
cover (`console_stats.may_read`); another area answers 404.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.domain import stats
from bot.entrypoints.console import web
from bot.entrypoints.console.web import Staff, staff_page
from bot.services import console_stats
from bot.services.stats import MonthReport


def routes() -> list[BaseRoute]:
    """The page, its chart data and its two exports."""
    return [
        Route("/console/stats", stats_page, methods=["GET"]),
        Route("/console/stats/data.json", stats_data, methods=["GET"]),
        Route("/console/stats/export.csv", stats_csv, methods=["GET"]),
        Route("/console/stats/export.xlsx", stats_xlsx, methods=["GET"]),
    ]


async def _report(request: Request, staff: Staff) -> MonthReport | None:
    """The month and area the query string asks for, if the person may read it."""
    bot = web.gridbot(request)
    district = bot.reference.district
    allowed = console_stats.readable_scopes(staff.actors)
    if not allowed:
        return None
    asked = request.query_params.get("scope", "").strip()[:32]
    scope = asked or allowed[0]
    if not console_stats.may_read(scope, staff.actors, district):
        return None
    tz = bot.settings.timezone
    start, end = console_stats.parse_month(request.query_params.get("month"),
                                           bot.clock.now(), tz)
    return await console_stats.report(bot.db, start, end, scope, bot.clock.now(),
                                      memory(request))


def memory(request: Request) -> console_stats.ReportMemory:
    """The app's memory of month reports (one per running app)."""
    kept = getattr(request.app.state, "stats_memory", None)
    if kept is None:
        kept = request.app.state.stats_memory = console_stats.ReportMemory()
    return kept


def _naming(request: Request, staff: Staff) -> console_stats.Naming:
    bot = web.gridbot(request)
    catalog = {c.code: c.name(staff.locale) for c in bot.reference.catalog.categories}
    return console_stats.Naming(
        area=lambda code: bot.reference.district.name(code, staff.locale),
        category=lambda code: catalog.get(code, code),
        indicator=lambda key: web.text(staff.locale, f"stats.column.{key}"))


def _refused(request: Request, staff: Staff) -> Response:
    return web.render(request, staff, "stats_none.html", status=404, active="stats")


@staff_page
async def stats_page(request: Request, staff: Staff) -> Response:
    """The month's indicators as tables, charts and export links."""
    found = await _report(request, staff)
    if found is None:
        return _refused(request, staff)
    bot = web.gridbot(request)
    district = bot.reference.district
    report = found.report
    naming = _naming(request, staff)

    def row(label: str, figures: stats.Figures, code: str = "") -> dict[str, Any]:
        return {"label": label, "code": code, "due": figures.due, "closed": figures.closed,
                "registered": figures.registered, "rates": stats.shown_rates(figures)}

    query = {"month": found.month, "scope": found.scope or ""}
    context = {
        "month": found.month, "scope": found.scope,
        "scope_name": district.name(found.scope, staff.locale) if found.scope else "",
        "choices": console_stats.choices(staff.actors, district, staff.locale),
        "columns": stats.COLUMNS[2:],
        "total": row(web.text(staff.locale, "stats.total"), report.total),
        "communities": [row(district.name(code, staff.locale), f, code)
                        for code, f in sorted(report.by_community.items())],
        "grids": [row(district.name(code, staff.locale), f, code)
                  for code, f in sorted(report.by_grid.items())],
        "people": [row(found.names.get(pid, str(pid)), f, str(pid))
                   for pid, f in sorted(report.by_person.items())],
        "appraisal": found.as_json()["appraisal"], "target": stats.APPRAISAL_TARGET,
        "categories": [(naming.category(code), n) for code, n in report.by_category.items()],
        "channels": list(report.by_channel.items()),
        "query": query,
    }
    return web.render(request, staff, "stats.html", active="stats", **context)


@staff_page
async def stats_data(request: Request, staff: Staff) -> Response:
    """What the charts draw, as JSON (the page's script fetches it: no inline data)."""
    found = await _report(request, staff)
    if found is None:
        return web.plain("not found", 404)
    bot = web.gridbot(request)
    months = await console_stats.trend(bot.db, found, bot.settings.timezone,
                                       bot.clock.now(), memory(request))
    data = console_stats.chart_data(found, months, _naming(request, staff))
    return JSONResponse(data, headers=web.SECURITY_HEADERS)


def _filename(found: MonthReport, table: str, suffix: str) -> str:
    return f"{table}-{found.month}{'-' + found.scope if found.scope else ''}.{suffix}"


@staff_page
async def stats_csv(request: Request, staff: Staff) -> Response:
    """One table as CSV (UTF-8 with a BOM), the cells of `gridbot stats --csv`."""
    found = await _report(request, staff)
    if found is None:
        return web.plain("not found", 404)
    table = "appraisal" if request.query_params.get("table") == "appraisal" else "indicators"
    rows = found.appraisal_table() if table == "appraisal" else found.indicator_table()
    return Response(console_stats.csv_bytes(rows), media_type="text/csv; charset=utf-8",
                    headers={**web.SECURITY_HEADERS, "Content-Disposition":
                             f'attachment; filename="{_filename(found, table, "csv")}"'})


@staff_page
async def stats_xlsx(request: Request, staff: Staff) -> Response:
    """The month as an XLSX workbook (indicators, appraisal, categories, channels)."""
    found = await _report(request, staff)
    if found is None:
        return web.plain("not found", 404)
    titles = {key: web.text(staff.locale, f"stats.xlsx.{key}")
              for key in ("indicators", "appraisal", "by_category", "by_channel",
                          "registered")}
    for key in ("group", "code", "name", "chief", "grid", "handled", "target", "met",
                *stats.COUNTS, *console_stats.RATES):
        titles[key] = web.text(staff.locale, f"stats.column.{key}")
    for group in ("total", "grid", "person", "community"):
        titles[f"group.{group}"] = web.text(staff.locale, f"stats.group.{group}")
    body = console_stats.xlsx_bytes(found, _naming(request, staff), titles)
    return Response(body, media_type="application/vnd.openxmlformats-officedocument."
                    "spreadsheetml.sheet",
                    headers={**web.SECURITY_HEADERS, "Content-Disposition":
                             f'attachment; filename="{_filename(found, "stats", "xlsx")}"'})

"""The console's statistics: which areas a person may read the indicators of, the month's
report (`stats.kept_month_report`: the figures of `stats.month_report`, which /stats and
`gridbot stats` call, a finished month's kept in the database), the 12-month
trend, the chart data, and the exports (CSV with a byte-order mark, XLSX).

Nothing here computes an indicator: the figures are those of `bot.domain.stats`.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import xlsxwriter

from bot.domain import stats
from bot.domain.clock import iso
from bot.domain.workflow import Actor, Role
from bot.services import caselist
from bot.services.districts import District
from bot.services.stats import MonthFacts, MonthReport, kept_month_report, month_of
from store.db import Database

TREND_MONTHS = 12
RATES = ("closing_rate", "on_time_closing_rate", "on_time_signing_rate", "rework_rate",
         "self_handling_rate", "satisfaction", "average_handling_hours")
AREA_ROLES = {Role.GRID_CHIEF, Role.COMMUNITY_STAFF, Role.COMMUNITY_DIRECTOR,
              Role.DISPATCHER, Role.INFO_OFFICER, Role.SUPERVISOR}


def readable_scopes(actors: Sequence[Actor]) -> list[str | None]:
    """The areas whose indicators a person may read, from their roles: None for the whole
    district (an administrator, or a supervisor without an area); department staff read
    none (their work is counted in the areas it belongs to)."""
    found: list[str | None] = []
    for actor in actors:
        if actor.role == Role.ADMIN or (actor.role == Role.SUPERVISOR and actor.scope is None):
            return [None]
        if actor.role in AREA_ROLES and actor.scope is not None and actor.scope not in found:
            found.append(actor.scope)
    return found


def may_read(code: str | None, actors: Sequence[Actor], district: District) -> bool:
    """Whether the person may read the indicators of this area (None: the district)."""
    allowed = readable_scopes(actors)
    if None in allowed:
        return code is None or code in district.areas
    if code is None or code not in district.areas:
        return False
    chain: set[str] = set()
    current: str | None = code
    while current is not None and current not in chain:
        chain.add(current)
        area = district.areas.get(current)
        current = area.parent if area else None
    return any(scope in chain for scope in allowed)


def choices(actors: Sequence[Actor], district: District, locale: str
            ) -> list[tuple[str | None, str, str]]:
    """The areas the page offers to pick, as (code, name, level), streets before their
    communities before their grids."""
    order = {"district": 0, "street": 1, "community": 2, "grid": 3}
    offered: list[tuple[str | None, str, str]] = []
    if None in readable_scopes(actors):
        offered.append((None, "", "all"))
    for area in sorted(district.areas.values(),
                       key=lambda a: (order.get(a.level, 9), a.code)):
        if area.level in ("street", "community", "grid") and may_read(area.code, actors,
                                                                      district):
            offered.append((area.code, area.display(locale), area.level))
    return offered


def parse_month(text: str | None, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The month asked for as YYYY-MM (this month when missing or malformed), [start, end)."""
    try:
        year, month = (int(part) for part in (text or "").split("-"))
        return month_of(datetime(year, month, 1, 12, tzinfo=tz), tz)
    except ValueError:
        return month_of(now, tz)


class ReportMemory:
    """The month reports computed lately, per (area, month), with the newest audit line
    at the time (`caselist.last_change`): one is taken from here only while no case has
    changed since, and for KEEP_SECONDS at most (a role granted or revoked, a visit
    logged, writes no audit line). Behind it, finished months are kept in the database
    (`stats.kept_month_report`), and the facts of the months not finished yet in
    `facts` (`stats.MonthFacts`: after a change, only the cases changed are read)."""

    KEEP_SECONDS = 60.0
    SIZE = 256

    def __init__(self) -> None:
        self._kept: dict[tuple[str | None, str, bool], tuple[int, float, MonthReport]] = {}
        self.facts = MonthFacts()

    def get(self, scope: str | None, start: datetime, basis: int,
            named: bool = True) -> MonthReport | None:
        """A kept report, if computed at this basis within KEEP_SECONDS (named or not)."""
        kept = self._kept.get((scope, iso(start), named))
        if kept is None or time.monotonic() - kept[1] >= self.KEEP_SECONDS:
            return None
        return kept[2] if kept[0] == basis else None

    def put(self, found: MonthReport, basis: int, named: bool = True) -> None:
        """Keep a report computed at this basis (the oldest goes when full)."""
        if len(self._kept) >= self.SIZE:
            del self._kept[next(iter(self._kept))]
        self._kept[(found.scope, iso(found.start), named)] = (basis, time.monotonic(), found)


async def report(db: Database, start: datetime, end: datetime, scope: str | None,
                 now: datetime, memory: ReportMemory | None = None,
                 named: bool = True) -> MonthReport:
    """The month's report, exactly as `gridbot stats --month … --scope …` computes it
    (the same report again while nothing changed, when given a memory)."""
    basis = await caselist.last_change(db.conn)
    if memory is not None:
        kept = memory.get(scope, start, basis, named)
        if kept is not None:
            return kept
    found = await kept_month_report(db, start, end, scope, now, named,
                                    memory.facts if memory is not None else None)
    if memory is not None:
        memory.put(found, basis, named)
    return found


async def trend(db: Database, found: MonthReport, tz: ZoneInfo, now: datetime,
                memory: ReportMemory, months: int = TREND_MONTHS) -> list[MonthReport]:
    """The reports of the `months` months up to the shown one (oldest first), the shown
    month being `found`: the earlier ones finished, kept in the database."""
    reports = [found]
    start = found.start
    for _ in range(months - 1):
        start, end = month_of(start - timedelta(days=1), tz)
        reports.append(await report(db, start, end, found.scope, now, memory, named=False))
    return list(reversed(reports))


@dataclass(frozen=True)
class Naming:
    """How the page and the exports call things, in the reader's language."""

    area: Any  # code → name
    category: Any  # code → name
    indicator: Any  # key → name


def chart_data(found: MonthReport, months: Sequence[MonthReport], naming: Naming
               ) -> dict[str, Any]:
    """What the charts draw: the indicators per grid, the trend, the appraisal against
    its target, cases by category and by channel (rates as percentages)."""

    def shown(value: float | None, key: str) -> float | None:
        if value is None:
            return None
        return value if key == "average_handling_hours" else round(value * 100, 1)

    grids = sorted(found.report.by_grid.items())
    appraisal = found.as_json()["appraisal"]
    return {
        "month": found.month,
        "labels": {key: naming.indicator(key) for key in RATES},
        "grids": {
            "labels": [naming.area(code) for code, _ in grids],
            "values": {key: [shown(f.rates()[key], key) for _, f in grids] for key in RATES},
        },
        "trend": {
            "labels": [m.month for m in months],
            "values": {key: [shown(m.report.total.rates()[key], key) for m in months]
                       for key in RATES if key != "average_handling_hours"},
        },
        "appraisal": {"labels": [row["name"] for row in appraisal],
                      "handled": [row["handled"] for row in appraisal],
                      "target": stats.APPRAISAL_TARGET},
        "categories": {"labels": [naming.category(c) for c in found.report.by_category],
                       "values": list(found.report.by_category.values())},
        "channels": {"labels": list(found.report.by_channel),
                     "values": list(found.report.by_channel.values())},
    }


def csv_bytes(rows: Sequence[Sequence[str]]) -> bytes:
    """Rows as CSV in UTF-8 with a byte-order mark (so that Excel shows the Chinese), as
    `gridbot stats --csv` writes them."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def xlsx_bytes(found: MonthReport, naming: Naming, titles: dict[str, str]) -> bytes:
    """The month as a workbook: the indicators (counts, and rates as Excel percentages),
    the appraisal, and the cases by category and by channel; one sheet each."""
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    bold = book.add_format({"bold": True, "bg_color": "#E8EEF4", "border": 1})
    share = book.add_format({"num_format": "0.0%"})
    one_decimal = book.add_format({"num_format": "0.0"})
    data = found.as_json()

    sheet = book.add_worksheet(titles["indicators"][:31])
    header = ["group", "code", "name", *stats.COUNTS, *RATES]
    sheet.write_row(0, 0, [titles.get(h, h) for h in header], bold)
    for r, row in enumerate(data["indicators"], start=1):
        code = row.get("code") or (str(row["person_id"]) if "person_id" in row else "")
        name = (row.get("name") or "") if row["group"] == "person" else (
            naming.area(code) if code else "")
        sheet.write_row(r, 0, [titles.get(f"group.{row['group']}", row["group"]), code, name])
        for c, key in enumerate(stats.COUNTS, start=3):
            sheet.write_number(r, c, row[key])
        for c, key in enumerate(RATES, start=3 + len(stats.COUNTS)):
            if row[key] is not None:
                sheet.write_number(r, c, row[key],
                                   one_decimal if key == "average_handling_hours" else share)
    sheet.set_column(0, 2, 16)
    sheet.set_column(3, len(header), 11)
    sheet.freeze_panes(1, 3)

    sheet = book.add_worksheet(titles["appraisal"][:31])
    sheet.write_row(0, 0, [titles.get(h, h) for h in stats.APPRAISAL_COLUMNS], bold)
    for r, row in enumerate(data["appraisal"], start=1):
        sheet.write_row(r, 0, [row["name"], row["grid"]])
        sheet.write_number(r, 2, row["handled"])
        sheet.write_number(r, 3, row["target"])
        sheet.write_boolean(r, 4, row["met"])
    sheet.set_column(0, 1, 18)

    for key, counts, name in (("by_category", data["by_category"], naming.category),
                              ("by_channel", data["by_channel"], str)):
        sheet = book.add_worksheet(titles[key][:31])
        sheet.write_row(0, 0, [titles[key], titles["registered"]], bold)
        for r, (code, count) in enumerate(counts.items(), start=1):
            sheet.write_string(r, 0, name(code))
            sheet.write_number(r, 1, count)
        sheet.set_column(0, 0, 20)
    book.close()
    return out.getvalue()

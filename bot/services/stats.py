"""The month's indicators for a scope, with the people in them named: for /stats and
`gridbot stats` alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain import stats
from bot.domain.clock import iso
from bot.services.people import display_name
from store import stats as stats_store
from store.db import Connection


@dataclass(frozen=True)
class MonthReport:
    """One month's report and how to call the people in it."""

    start: datetime  # local midnight of the first day
    end: datetime  # local midnight of the first day of the next month
    scope: str | None
    report: stats.Report
    names: dict[int, str]  # person in charge or chief → name (or masked contact)
    chiefs: dict[int, tuple[str, str]]  # grid chief → (name as in `names`, grid code)

    @property
    def month(self) -> str:
        """The month as YYYY-MM."""
        return f"{self.start:%Y-%m}"

    def indicator_table(self) -> list[list[str]]:
        """The indicators as rows of text (header first)."""
        return stats.indicator_table(self.report, self.names)

    def appraisal_table(self) -> list[list[str]]:
        """The appraisal as rows of text (header first)."""
        return stats.appraisal_table(self.report, self.chiefs)

    def source_table(self) -> list[list[str]]:
        """Cases registered in the month by source, as rows of text (header first)."""
        return stats.source_table(self.report)

    def visit_table(self) -> list[list[str]]:
        """The month's household visits, as rows of text (header first)."""
        return stats.visit_table(self.report)

    def as_json(self) -> dict[str, Any]:
        """Everything, for scripts (docs/cli.md)."""
        return {"month": self.month, "scope": self.scope, "start": iso(self.start),
                "end": iso(self.end), **stats.as_json(self.report, self.names, self.chiefs)}


def month_of(moment: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The local month a moment falls in, as [start, end)."""
    local = moment.astimezone(tz)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


async def month_report(conn: Connection, start: datetime, end: datetime,
                       scope: str | None = None) -> MonthReport:
    """Compute the indicators for [start, end) in a scope (all when None), naming the
    people; a person without a name is called by a contact, phones masked."""
    cases, events = await stats_store.facts(conn, start, end, scope)
    chief_rows = await stats_store.chief_names(conn, scope)
    visits = await stats_store.visits(conn, start, end, scope)
    report = stats.compute(cases, events, start, end, chief_rows, visits)
    names: dict[int, str] = {}
    for person_id in sorted(set(report.by_person) | set(chief_rows)):
        stored = chief_rows.get(person_id, ("", ""))[0]
        names[person_id] = stored or await display_name(conn, person_id)
    chiefs = {pid: (names[pid], grid) for pid, (_, grid) in chief_rows.items()}
    return MonthReport(start, end, scope, report, names, chiefs)

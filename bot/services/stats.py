"""The month's indicators for a scope, with the people in them named: for /stats and
`gridbot stats` alike."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain import stats
from bot.domain.clock import iso
from bot.services.people import display_name
from store import caselist as caselist_store
from store import stats as stats_store
from store.db import Connection, Database


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
    return await _with_people(conn, start, end, scope,
                              stats.case_figures(stats.compute(cases, events, start, end)))


@dataclass
class _Read:
    """A period's facts per case (in case order when read whole), when the period was
    last read whole, and the audit lines it was read at: (when, the newest line then),
    oldest first, from the last taken LOOK_BACK_SECONDS ago or more."""

    read_whole_at: float
    cases: dict[int, stats.CaseFacts]
    events: dict[int, list[stats.EventFacts]]
    bases: list[tuple[float, int]]

    def look_back(self, now: float, window: float) -> int:
        """The newest audit line known `window` seconds ago (the oldest kept, if none
        is that old), dropping the older ones no later call needs."""
        while len(self.bases) > 1 and self.bases[1][0] <= now - window:
            del self.bases[0]
        return self.bases[0][1]


def _by_case(events: list[stats.EventFacts]) -> dict[int, list[stats.EventFacts]]:
    return {case_id: list(lines) for case_id, lines in groupby(events, lambda e: e.case_id)}


class MonthFacts:
    """The facts of the months being counted (`store.stats.facts`) as last read, per
    area and month, brought up to date by reading again only the cases that changed
    since (`store.stats.changed_cases`): a street's month is some 10,000 cases, read
    whole in ~90 ms at 1,000,000 cases, its few changes in a few ms. What it gives is
    what reading whole gives (the same cases, in case order, and their audit lines).

    What changed is asked since the newest audit line known LOOK_BACK_SECONDS before,
    not since the last call's: PostgreSQL numbers audit lines as the transactions that
    write them start, not as they commit, so a line committed late comes under a number
    below the newest seen meanwhile (a transaction of gridbot's writes its lines within
    a second of committing). The cases changed in the last minute are thus read again
    at each call, a few. A period is read whole again when more than MAX_CHANGED cases
    changed, and every FULL_READ_SECONDS, a precaution."""

    LOOK_BACK_SECONDS = 60.0
    FULL_READ_SECONDS = 900.0
    MAX_CHANGED = 500
    SIZE = 8

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._kept: dict[tuple[str | None, str, str], _Read] = {}

    async def facts(self, db: Database, start: datetime, end: datetime, scope: str | None
                    ) -> tuple[list[stats.CaseFacts], list[stats.EventFacts]]:
        """The period's facts, as `store.stats.facts` reads them now."""
        key = (scope, iso(start), iso(end))
        # Inside the write lock: no other transaction of this connection is half done,
        # so what is read, and the basis kept with it, is committed.
        async with db.transaction() as conn:
            basis = await caselist_store.last_change(conn)
            now = self._clock()
            kept = self._kept.get(key)
            changed = None
            if kept is not None and now - kept.read_whole_at < self.FULL_READ_SECONDS:
                changed = await stats_store.changed_cases(
                    conn, kept.look_back(now, self.LOOK_BACK_SECONDS), self.MAX_CHANGED)
            if kept is None or changed is None:
                cases, events = await stats_store.facts(conn, start, end, scope)
                kept = _Read(now, {c.id: c for c in cases}, _by_case(events), [])
                self._kept.pop(key, None)
                if len(self._kept) >= self.SIZE:
                    del self._kept[next(iter(self._kept))]
                self._kept[key] = kept
            elif changed:
                cases, events = await stats_store.facts(conn, start, end, scope, changed)
                for case_id in changed:
                    kept.cases.pop(case_id, None)
                    kept.events.pop(case_id, None)
                kept.cases.update((c.id, c) for c in cases)
                kept.events.update(_by_case(events))
            kept.bases.append((now, basis))
        return ([kept.cases[case_id] for case_id in sorted(kept.cases)],
                [e for case_id in sorted(kept.events) for e in kept.events[case_id]])


async def current_month_report(db: Database, start: datetime, end: datetime,
                               scope: str | None, memory: MonthFacts,
                               named: bool = True) -> MonthReport:
    """The report `month_report` computes, from the facts `memory` keeps up to date."""
    cases, events = await memory.facts(db, start, end, scope)
    figures = stats.case_figures(stats.compute(cases, events, start, end))
    return await _with_people(db.conn, start, end, scope, figures, named)


async def kept_month_report(db: Database, start: datetime, end: datetime,
                            scope: str | None, now: datetime,
                            named: bool = True, memory: MonthFacts | None = None
                            ) -> MonthReport:
    """The report `month_report` computes; a finished month's figures of its cases are
    kept in the database and read back while no case that could count in it has
    changed since (`store.stats.changed_since`), the chiefs, names and visits read
    afresh; a month not finished yet is computed from the facts `memory` keeps, when
    given. Unnamed (`named=False`): people without a stored name stay unnamed (the
    trend line needs no names)."""
    if end > now:
        if memory is not None:
            return await current_month_report(db, start, end, scope, memory, named)
        return await month_report(db.conn, start, end, scope)
    month = f"{start:%Y-%m}"
    # Inside the write lock: no other transaction of this connection is half done, so
    # what is read (and the basis kept with it) is committed.
    async with db.transaction() as conn:
        basis = await caselist_store.last_change(conn)
        kept = await stats_store.kept_month(conn, scope, month)
        if kept is not None and not await stats_store.changed_since(conn, kept[0], end):
            figures = kept[1]
            if kept[0] < basis:  # the next look checks only the audit lines after this
                await stats_store.keep_month(conn, scope, month, basis, None, now)
        else:
            cases, events = await stats_store.facts(conn, start, end, scope)
            figures = stats.case_figures(stats.compute(cases, events, start, end))
            await stats_store.keep_month(conn, scope, month, basis, figures, now)
        return await _with_people(conn, start, end, scope, figures, named)


async def _with_people(conn: Connection, start: datetime, end: datetime, scope: str | None,
                       figures: dict[str, Any], named: bool = True) -> MonthReport:
    """The report from its cases' figures, with the chiefs, names and visits of now."""
    chief_rows = await stats_store.chief_names(conn, scope)
    visits = await stats_store.visits(conn, start, end, scope)
    report = stats.with_people(figures, chief_rows, visits)
    names: dict[int, str] = {}
    for person_id in sorted(set(report.by_person) | set(chief_rows)):
        stored = chief_rows.get(person_id, ("", ""))[0]
        names[person_id] = stored or (await display_name(conn, person_id) if named else "")
    chiefs = {pid: (names[pid], grid) for pid, (_, grid) in chief_rows.items()}
    return MonthReport(start, end, scope, report, names, chiefs)

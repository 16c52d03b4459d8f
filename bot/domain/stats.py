"""The indicators of the monthly appraisal, computed from cases and their audit trails.

Pure: give it the cases and events of the period (see `store.stats`), get the figures.
Definitions (domain.md, "Indicators"):

- due (应结案): cases whose deadline falls in the period;
- closing rate = due cases closed by the end of the period ÷ due;
- on-time closing rate = due cases closed at or before their deadline ÷ due;
- on-time signing = assignments (registration with a person in charge, or dispatch) in
  the period signed for within the signing limit (15 minutes for U1, 1 hour otherwise)
  ÷ assignments;
- rework rate = failed checks ÷ reports of "done", in the period;
- grid self-handling rate = cases registered in the period and closed inside the grid
  ÷ cases registered in the period;
- satisfaction = ratings of 3–5 ÷ ratings given in the period;
- average handling time = mean hours from registration to closing, cases closed in the
  period;
- appraisal: cases each grid chief reported done or checked and closed in the period,
  against the target of 10;
- cases by source: cases registered in the period by where they came from: a resident in
  a chat (Telegram or the chat simulators), SMS, phone-in (staff filed it for a caller),
  patrol (staff found it), Open311 (another system);
- visits: household visits logged in the period, per grid: visits, distinct households
  visited, visits to a household not registered yet, visits needing follow-up.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import wcwidth

APPRAISAL_TARGET = 10
SIGN_LIMIT = {"U1": timedelta(minutes=15)}
SIGN_LIMIT_DEFAULT = timedelta(hours=1)
# how long after an assignment its signing can still count: the longest limit
SIGN_WINDOW = max(*SIGN_LIMIT.values(), SIGN_LIMIT_DEFAULT)


# CaseFacts and EventFacts are named tuples, not frozen dataclasses: a street's month is
# read as some 10,000 of each, and a frozen dataclass takes four times as long to make.
class CaseFacts(NamedTuple):
    """What the indicators need of one case."""

    id: int
    grid_code: str | None
    assignee_id: int | None
    urgency: str
    registered_at: datetime | None
    deadline: datetime | None
    closed_at: datetime | None
    closed_by_level: str | None
    source: str = "chat"  # one of SOURCES (see source_of)
    community_code: str | None = None
    category: str | None = None
    channel: str | None = None  # the channel the report came in by


SOURCES = ("chat", "sms", "phone", "patrol", "open311")


def source_of(channel: str | None, found_on_patrol: bool) -> str:
    """Where a case came from, for the count by source: patrol first (staff found it,
    whatever channel they wrote from), then the channel it was filed on."""
    if found_on_patrol:
        return "patrol"
    if channel in ("phone", "open311"):
        return channel
    if channel in ("sms", "sim-sms"):
        return "sms"
    return "chat"


@dataclass(frozen=True)
class VisitFacts:
    """What the visit counts need of one logged visit."""

    grid_code: str | None
    visitor_id: int
    household_id: int | None
    follow_up: bool


@dataclass
class VisitFigures:
    """Visit counts for one group (a grid, or everything)."""

    visits: int = 0
    households: set[int] = field(default_factory=set)
    unregistered: int = 0
    follow_ups: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counts as plain numbers."""
        return {"visits": self.visits, "households_visited": len(self.households),
                "unregistered": self.unregistered, "follow_ups": self.follow_ups}


def count_visits(visits: Iterable[VisitFacts]) -> tuple[VisitFigures, dict[str, VisitFigures]]:
    """The period's visit counts overall and per grid."""
    total = VisitFigures()
    by_grid: dict[str, VisitFigures] = defaultdict(VisitFigures)
    for visit in visits:
        groups = [total] + ([by_grid[visit.grid_code]] if visit.grid_code else [])
        for figures in groups:
            figures.visits += 1
            if visit.household_id is None:
                figures.unregistered += 1
            else:
                figures.households.add(visit.household_id)
            figures.follow_ups += 1 if visit.follow_up else 0
    return total, dict(by_grid)


class EventFacts(NamedTuple):
    """What the indicators need of one audit line."""

    case_id: int
    event: str
    actor_id: int | None
    at: datetime
    rating: int | None = None


@dataclass
class Figures:
    """Counts for one group (a grid, a person, or everything), and the rates from them."""

    due: int = 0
    closed: int = 0
    closed_on_time: int = 0
    assigned: int = 0
    signed_on_time: int = 0
    handled: int = 0
    reworked: int = 0
    registered: int = 0
    self_handled: int = 0
    ratings: int = 0
    satisfied: int = 0
    # the hours from registration to closing of the cases closed, added up in case order
    # (a mean kept as its sum and count, so that a kept month reads back in a few bytes)
    handling_hours_total: float = 0.0
    handling_count: int = 0

    @staticmethod
    def _rate(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    def rates(self) -> dict[str, float | None]:
        """The indicators as shares (None when there is nothing to divide by)."""
        count = self.handling_count
        return {
            "closing_rate": self._rate(self.closed, self.due),
            "on_time_closing_rate": self._rate(self.closed_on_time, self.due),
            "on_time_signing_rate": self._rate(self.signed_on_time, self.assigned),
            "rework_rate": self._rate(self.reworked, self.handled),
            "self_handling_rate": self._rate(self.self_handled, self.registered),
            "satisfaction": self._rate(self.satisfied, self.ratings),
            "average_handling_hours": (round(self.handling_hours_total / count, 2)
                                       if count else None),
        }


@dataclass
class Report:
    """The month's figures overall, per grid and per person, and the appraisal."""

    total: Figures
    by_grid: dict[str, Figures]
    by_person: dict[int, Figures]
    handled_by_chief: dict[int, int]
    by_source: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    visits: VisitFigures = field(default_factory=VisitFigures)
    visits_by_grid: dict[str, VisitFigures] = field(default_factory=dict)
    by_community: dict[str, Figures] = field(default_factory=dict)
    # cases registered in the period, by category and by the channel they came in by
    by_category: dict[str, int] = field(default_factory=dict)
    by_channel: dict[str, int] = field(default_factory=dict)
    # distinct cases each person reported done or checked in the period (the appraisal
    # counts those of the grid chiefs)
    handled_by_actor: dict[int, int] = field(default_factory=dict)


def compute(cases: Sequence[CaseFacts], events: Iterable[EventFacts], start: datetime,
            end: datetime, chiefs: Iterable[int] = (),
            visits: Iterable[VisitFacts] = ()) -> Report:
    """Compute the indicators for the period [start, end) (visits: those of the period)."""
    # Moments in one time zone compare without asking it for offsets (tens of thousands
    # of comparisons): the stored ones are read back in UTC (clock.parse_iso).
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    total = Figures()
    by_source = dict.fromkeys(SOURCES, 0)
    by_grid: dict[str, Figures] = defaultdict(Figures)
    by_person: dict[int, Figures] = defaultdict(Figures)
    by_community: dict[str, Figures] = defaultdict(Figures)
    by_category: dict[str, int] = defaultdict(int)
    by_channel: dict[str, int] = defaultdict(int)
    index = {c.id: c for c in cases}

    def groups(case: CaseFacts) -> list[Figures]:
        found = [total]
        if case.community_code:
            found.append(by_community[case.community_code])
        if case.grid_code:
            found.append(by_grid[case.grid_code])
        if case.assignee_id is not None:
            found.append(by_person[case.assignee_id])
        return found

    for case in cases:
        deadline, registered_at, closed_at = case.deadline, case.registered_at, case.closed_at
        due = deadline is not None and start <= deadline < end
        registered = registered_at is not None and start <= registered_at < end
        closed_now = closed_at is not None and start <= closed_at < end
        if registered:
            by_category[case.category or "-"] += 1
            by_channel[case.channel or "-"] += 1
        for figures in groups(case):
            if due:
                figures.due += 1
                if case.closed_at is not None and case.closed_at < end:
                    figures.closed += 1
                    if case.deadline is not None and case.closed_at <= case.deadline:
                        figures.closed_on_time += 1
            if registered and figures is total:
                by_source[case.source if case.source in by_source else "chat"] += 1
            if registered:
                figures.registered += 1
                if case.closed_at is not None and case.closed_by_level == "grid":
                    figures.self_handled += 1
            if closed_now and case.registered_at is not None and case.closed_at is not None:
                figures.handling_hours_total += (
                    case.closed_at - case.registered_at).total_seconds() / 3600
                figures.handling_count += 1

    ordered = sorted(events, key=lambda e: (e.case_id, e.at))
    waiting: dict[int, EventFacts] = {}
    handled: dict[int, set[int]] = defaultdict(set)
    for event in ordered:
        owner = index.get(event.case_id)
        if owner is None:
            continue
        case = owner
        event_in_period = start <= event.at < end
        if event.event in ("register", "dispatch") and event_in_period:
            waiting[event.case_id] = event
            for figures in groups(case):
                figures.assigned += 1
        elif event.event == "sign" and event.case_id in waiting:
            assigned = waiting.pop(event.case_id)
            if event.at - assigned.at <= SIGN_LIMIT.get(case.urgency, SIGN_LIMIT_DEFAULT):
                for figures in groups(case):
                    figures.signed_on_time += 1
        if not event_in_period:
            continue
        if event.event == "report_done":
            for figures in groups(case):
                figures.handled += 1
        elif event.event == "check_fail":
            for figures in groups(case):
                figures.reworked += 1
        elif event.event == "rate" and event.rating is not None:
            for figures in groups(case):
                figures.ratings += 1
                figures.satisfied += 1 if event.rating >= 3 else 0
        if event.event in ("report_done", "check_pass") and event.actor_id is not None:
            handled[event.actor_id].add(event.case_id)
    handled_by_actor = {actor: len(ids) for actor, ids in sorted(handled.items())}
    handled_by_chief = {chief: handled_by_actor.get(chief, 0) for chief in chiefs}
    visit_total, visits_by_grid = count_visits(visits)
    return Report(total, dict(by_grid), dict(by_person), handled_by_chief, by_source,
                  visit_total, visits_by_grid, dict(by_community), dict(by_category),
                  dict(by_channel), handled_by_actor)


_FIGURE_FIELDS = tuple(f.name for f in dataclasses.fields(Figures))


def case_figures(report: Report) -> dict[str, Any]:
    """What of a report comes from the cases alone, as plain JSON (to keep a finished
    month): everything but the visits and the appraisal's list of chiefs, which are read
    afresh each time (`with_people`)."""

    def counts(figures: Figures) -> dict[str, Any]:
        return {name: getattr(figures, name) for name in _FIGURE_FIELDS}

    def plain(groups: Mapping[Any, Figures]) -> dict[str, dict[str, Any]]:
        return {str(key): counts(f) for key, f in groups.items()}

    return {"total": counts(report.total), "by_grid": plain(report.by_grid),
            "by_person": plain(report.by_person), "by_community": plain(report.by_community),
            "by_source": report.by_source, "by_category": report.by_category,
            "by_channel": report.by_channel,
            "handled_by_actor": {str(k): v for k, v in report.handled_by_actor.items()}}


def with_people(figures: Mapping[str, Any], chiefs: Iterable[int],
                visits: Iterable[VisitFacts] = ()) -> Report:
    """The report `compute` gives, from `case_figures` of the same period and the
    chiefs and visits read now."""
    by_actor = {int(k): int(v) for k, v in figures["handled_by_actor"].items()}
    visit_total, visits_by_grid = count_visits(visits)
    return Report(
        Figures(**figures["total"]),
        {code: Figures(**f) for code, f in figures["by_grid"].items()},
        {int(pid): Figures(**f) for pid, f in figures["by_person"].items()},
        {chief: by_actor.get(chief, 0) for chief in chiefs}, dict(figures["by_source"]),
        visit_total, visits_by_grid,
        {code: Figures(**f) for code, f in figures["by_community"].items()},
        dict(figures["by_category"]), dict(figures["by_channel"]), by_actor)


COLUMNS = ("due", "closed", "closing_rate", "on_time_closing_rate", "on_time_signing_rate",
           "rework_rate", "self_handling_rate", "satisfaction", "average_handling_hours")
APPRAISAL_COLUMNS = ("chief", "grid", "handled", "target", "met")
COUNTS = ("due", "closed", "closed_on_time", "assigned", "signed_on_time", "handled",
          "reworked", "registered", "self_handled", "ratings", "satisfied")


def percent(share: float | None) -> str:
    """A share as people read it, in the chat and in the CLI alike: 0.6667 → "66.7%"."""
    return "-" if share is None else f"{share * 100:.1f}%"


def hours(value: float | None) -> str:
    """Hours with one decimal, or "-": 37.5 → "37.5"."""
    return "-" if value is None else f"{value:.1f}"


def shown_rates(figures: Figures) -> dict[str, str]:
    """The indicators of one group as text: rates in %, the average in hours."""
    return {key: hours(value) if key == "average_handling_hours" else percent(value)
            for key, value in figures.rates().items()}


def _row(label: str, figures: Figures) -> list[str]:
    shown = shown_rates(figures)
    counts = {"due": str(figures.due), "closed": str(figures.closed)}
    return [label, *(counts.get(c) or shown[c] for c in COLUMNS)]


def indicator_table(report: Report, names: Mapping[int, str]) -> list[list[str]]:
    """The indicators as rows: a header, the total, each grid, each person in charge
    (`names`: person id → how to call them), then each community."""
    rows = [["group", *COLUMNS], _row("total", report.total)]
    rows += [_row(f"grid {code}", figures) for code, figures in sorted(report.by_grid.items())]
    rows += [_row(f"person {pid} {names.get(pid, '')}".strip(), figures)
             for pid, figures in sorted(report.by_person.items())]
    rows += [_row(f"community {code}", figures)
             for code, figures in sorted(report.by_community.items())]
    return rows


def appraisal_table(report: Report, chiefs: Mapping[int, tuple[str, str]]) -> list[list[str]]:
    """The appraisal as rows: a header, then each grid chief (`chiefs`: person id →
    (how to call them, grid code)), by grid."""
    rows = [list(APPRAISAL_COLUMNS)]
    for pid, count in sorted(report.handled_by_chief.items(), key=lambda kv: chiefs[kv[0]][1]):
        name, grid = chiefs[pid]
        rows.append([name, grid, str(count), str(APPRAISAL_TARGET),
                     "yes" if count >= APPRAISAL_TARGET else "no"])
    return rows


SOURCE_COLUMNS = ("source", "registered", "share")
VISIT_COLUMNS = ("group", "visits", "households_visited", "unregistered", "follow_ups")


def source_table(report: Report) -> list[list[str]]:
    """Cases registered in the period by source, with each one's share of the total."""
    whole = sum(report.by_source.values())
    rows = [list(SOURCE_COLUMNS)]
    rows += [[name, str(count), percent(round(count / whole, 4) if whole else None)]
             for name, count in report.by_source.items()]
    rows.append(["total", str(whole), percent(1.0 if whole else None)])
    return rows


def visit_table(report: Report) -> list[list[str]]:
    """The period's household visits: the total, then each grid."""
    def row(label: str, figures: VisitFigures) -> list[str]:
        return [label, *(str(v) for v in figures.as_dict().values())]

    return [list(VISIT_COLUMNS), row("total", report.visits),
            *(row(f"grid {code}", f) for code, f in sorted(report.visits_by_grid.items()))]


def as_json(report: Report, names: Mapping[int, str],
            chiefs: Mapping[int, tuple[str, str]]) -> dict[str, Any]:
    """The report for scripts: counts and rates (shares 0-1, None when undefined) per
    group, and the appraisal (docs/cli.md lists the fields)."""

    def group(kind: str, figures: Figures, **who: Any) -> dict[str, Any]:
        return {"group": kind, **who, **{c: getattr(figures, c) for c in COUNTS},
                **figures.rates()}

    return {
        "indicators": [
            group("total", report.total),
            *(group("grid", f, code=code) for code, f in sorted(report.by_grid.items())),
            *(group("person", f, person_id=pid, name=names.get(pid))
              for pid, f in sorted(report.by_person.items())),
            *(group("community", f, code=code)
              for code, f in sorted(report.by_community.items()))],
        "by_category": dict(sorted(report.by_category.items())),
        "by_channel": dict(sorted(report.by_channel.items())),
        "appraisal": [
            {"person_id": pid, "name": chiefs[pid][0], "grid": chiefs[pid][1],
             "handled": count, "target": APPRAISAL_TARGET, "met": count >= APPRAISAL_TARGET}
            for pid, count in sorted(report.handled_by_chief.items(),
                                     key=lambda kv: chiefs[kv[0]][1])],
        "by_source": dict(report.by_source),
        "visits": {**report.visits.as_dict(), "by_grid": {
            code: f.as_dict() for code, f in sorted(report.visits_by_grid.items())}},
    }


def display_width(text: str) -> int:
    """Columns a terminal gives the text: 2 for each Chinese character, 0 for combining."""
    width = wcwidth.wcswidth(text)
    if width >= 0:
        return width
    return sum(max(wcwidth.wcwidth(ch), 0) for ch in text)  # control characters: none


def _numeric(cell: str) -> bool:
    return cell == "-" or cell.rstrip("%").replace(".", "", 1).isdigit()


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as aligned text columns, measured in display width (Chinese names take two
    columns a character); columns of numbers are aligned right."""
    count = max(len(row) for row in rows)
    widths = [max(display_width(row[i]) for row in rows if i < len(row)) for i in range(count)]
    right = [all(_numeric(row[i]) for row in rows[1:] if i < len(row)) for i in range(count)]

    def pad(cell: str, i: int) -> str:
        space = " " * (widths[i] - display_width(cell))
        return space + cell if right[i] else cell + space

    return "\n".join("  ".join(pad(cell, i) for i, cell in enumerate(row)).rstrip()
                     for row in rows)

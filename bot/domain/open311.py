"""Open311 GeoReport v2, the pure part: service codes, attributes, statuses, dates.

GeoReport v2 (wiki.open311.org/GeoReport_v2) knows two statuses, open and closed;
FixMyStreet's extension (github.com/mysociety/fixmystreet/wiki/Open311-FMS---Complete-Spec)
adds finer ones (IN_PROGRESS, ACTION_SCHEDULED, FIXED, DUPLICATE, ...) for its
`servicerequestupdates`. This module maps the workflow's states and events onto both,
and an external system's status back onto the workflow events of a department.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from bot.domain.categories import Catalog, Category, Subcategory
from bot.domain.workflow import OPEN_STATES, Case, EventKind, Level, State

ATTRIBUTES_PATH = Path(__file__).resolve().parents[1] / "data" / "open311.toml"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
MAX_DESCRIPTION = 4000
MAX_WINDOW = timedelta(days=90)
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 1000
SEPARATOR = "-"  # category-subcategory: neither a dot (the format suffix) nor a catalog code


class Open311Error(Exception):
    """A request the API refuses: the HTTP status and the spec's error description."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


# --- services ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Value:
    """One choice of a list attribute."""

    key: str
    name: str


@dataclass(frozen=True)
class Attribute:
    """A question a service asks besides the description (GeoReport's attribute)."""

    code: str
    datatype: str  # string, number, datetime, text, singlevaluelist, multivaluelist
    required: bool
    description: str
    order: int
    datatype_description: str = ""
    values: tuple[Value, ...] = ()
    variable: bool = True


DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")


@dataclass(frozen=True)
class Service:
    """A GeoReport service: one subcategory of the catalog (or a category without any)."""

    code: str
    category: Category
    subcategory: Subcategory | None
    attributes: tuple[Attribute, ...] = ()

    @property
    def name(self) -> str:
        """The service's English name (the catalog's Chinese name is the description)."""
        if self.subcategory is None:
            return self.category.name_en
        return f"{self.category.name_en}: {self.subcategory.name_en}"

    @property
    def description(self) -> str:
        """The Chinese name, as residents see it."""
        if self.subcategory is None:
            return self.category.name_zh
        return f"{self.category.name_zh} · {self.subcategory.name_zh}"

    @property
    def keywords(self) -> tuple[str, ...]:
        """The catalog's keywords for it (the subcategory's, else the category's)."""
        words = self.subcategory.keywords if self.subcategory else self.category.keywords
        return words or self.category.keywords


def service_code(category: str, subcategory: str | None) -> str:
    """The service code of a catalog entry: "sanitation-garbage", or "other"."""
    return f"{category}{SEPARATOR}{subcategory}" if subcategory else category


def services(catalog: Catalog, attributes: dict[str, tuple[Attribute, ...]]) -> list[Service]:
    """One service per subcategory, in catalog order; a category without any is one itself."""
    found: list[Service] = []
    for category in catalog.categories:
        entries: list[Subcategory | None] = list(category.subcategories) or [None]
        for sub in entries:
            code = service_code(category.code, sub.code if sub else None)
            found.append(Service(code, category, sub, attributes.get(code, ())))
    return found


def load_attributes(path: Path = ATTRIBUTES_PATH) -> dict[str, tuple[Attribute, ...]]:
    """Read the services' attributes (bot/data/open311.toml); ValueError names a bad entry."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    by_service: dict[str, list[Attribute]] = {}
    for number, entry in enumerate(data.get("attribute", []), start=1):
        try:
            datatype = str(entry["datatype"])
            if datatype not in DATATYPES:
                raise ValueError(f"datatype must be one of {', '.join(DATATYPES)}")
            values = tuple(Value(str(v["key"]), str(v["name"])) for v in entry.get("values", []))
            if datatype.endswith("valuelist") and not values:
                raise ValueError("a list attribute needs values")
            for code in entry["services"]:
                attrs = by_service.setdefault(str(code), [])
                attrs.append(Attribute(
                    code=str(entry["code"]), datatype=datatype,
                    required=bool(entry.get("required", False)),
                    description=str(entry["description"]), order=len(attrs) + 1,
                    datatype_description=str(entry.get("datatype_description", "")),
                    values=values))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: attribute {number}: {exc}") from None
    return {code: tuple(attrs) for code, attrs in by_service.items()}


def check_attributes(service: Service, given: dict[str, list[str]]) -> dict[str, object]:
    """The answers to a service's attributes, checked; raise Open311Error (400) otherwise."""
    answers: dict[str, object] = {}
    for attr in service.attributes:
        raw = [v.strip() for v in given.get(attr.code, []) if v.strip()]
        if not raw:
            if attr.required:
                raise Open311Error(400, f"attribute[{attr.code}] is required"
                                        f" for {service.code}")
            continue
        keys = {v.key for v in attr.values}
        if attr.datatype in ("singlevaluelist", "multivaluelist"):
            if any(v not in keys for v in raw):
                raise Open311Error(400, f"attribute[{attr.code}] must be one of"
                                        f" {', '.join(sorted(keys))}")
            answers[attr.code] = raw[0] if attr.datatype == "singlevaluelist" else raw
        elif attr.datatype == "number":
            try:
                answers[attr.code] = float(raw[0])
            except ValueError:
                raise Open311Error(400, f"attribute[{attr.code}] must be a number") from None
        else:
            answers[attr.code] = raw[0][:500]
    return answers


# --- statuses ---------------------------------------------------------------------------

def status(state: State) -> str:
    """GeoReport's status: open while the loop is not closed, else closed."""
    return "open" if state in OPEN_STATES else "closed"


_NOTES = {
    State.SUBMITTED: "Received, to be registered.",
    State.REGISTERED: "Registered; with the {level} to handle.",
    State.DISPATCHED: "Dispatched to {agency}, waiting to be accepted.",
    State.IN_PROGRESS: "In progress at {agency}.",
    State.RESOLVED: "Reported done; being checked on site.",
    State.CLOSED: "Closed: the problem was fixed and checked.",
    State.EVALUATED: "Closed and rated by the reporter.",
    State.REJECTED: "Rejected: not a case for the street office.",
    State.MERGED: "Duplicate of {merged_into}.",
    State.SUSPENDED: "Suspended for now.",
}


def notes_for(state: State, level: Level, agency: str, *, force_closed: bool,
              merged_into: str | None) -> str:
    """A line on where a case stands, for `status_notes`, from the few fields it depends
    on (a listing has no whole Case)."""
    if state == State.CLOSED and force_closed:
        return "Closed by the street office."
    return _NOTES[state].format(level=level.value, agency=agency,
                                merged_into=merged_into or "another case")


_BY_EVENT = {
    EventKind.CHECK_PASS: "FIXED",
    EventKind.FORCE_CLOSE: "CLOSED",
    EventKind.REJECT: "NOT_COUNCILS_RESPONSIBILITY",
    EventKind.MERGE: "DUPLICATE",
    EventKind.REOPEN: "REOPEN",
}
_BY_STATE = {
    State.SUBMITTED: "OPEN",
    State.REGISTERED: "OPEN",
    State.DISPATCHED: "ACTION_SCHEDULED",
    State.IN_PROGRESS: "IN_PROGRESS",
    State.RESOLVED: "IN_PROGRESS",
    State.CLOSED: "FIXED",
    State.EVALUATED: "FIXED",
    State.REJECTED: "NOT_COUNCILS_RESPONSIBILITY",
    State.MERGED: "DUPLICATE",
    State.SUSPENDED: "INVESTIGATING",
}
EXTENDED_STATUSES = frozenset({*_BY_EVENT.values(), *_BY_STATE.values(), "NO_FURTHER_ACTION",
                               "INTERNAL_REFERRAL", "FOR_TRIAGE", "CANCELLED"})


def extended_status(event: str, to_state: str) -> str:
    """FixMyStreet's status after one audit line (its event and the state it led to)."""
    try:
        by_event = _BY_EVENT.get(EventKind(event))
    except ValueError:
        by_event = None
    return by_event or _BY_STATE.get(State(to_state), "OPEN")


# What a department's own system reports, as the department's actions on the case:
# accepted (sign), done (report_done), returned (return, with the reason).
ACCEPTED = frozenset({"IN_PROGRESS", "ACTION_SCHEDULED", "INVESTIGATING"})
DONE = frozenset({"FIXED", "CLOSED"})
RETURNED = frozenset({"NOT_COUNCILS_RESPONSIBILITY", "INTERNAL_REFERRAL", "NO_FURTHER_ACTION",
                      "DUPLICATE", "CANCELLED"})


def department_events(case: Case, reported: str, note: str) -> list[EventKind]:
    """The events a department's reported status stands for on a case it holds, in order.

    A department that reports the case fixed before accepting it accepts and finishes it;
    a status with only words is a comment; a status that changes nothing is nothing.
    """
    code = reported.strip().upper().replace(" ", "_")
    held = case.level == Level.DEPARTMENT
    if code in RETURNED:
        return [EventKind.RETURN] if held else []
    if code in DONE:
        if not held:
            return []
        if case.state == State.DISPATCHED:
            return [EventKind.SIGN, EventKind.REPORT_DONE]
        return [EventKind.REPORT_DONE] if case.state == State.IN_PROGRESS else []
    if code in ACCEPTED:
        if held and case.state == State.DISPATCHED:
            return [EventKind.SIGN]
        return [EventKind.COMMENT] if note.strip() else []
    if code in ("OPEN", "REOPEN", ""):
        return [EventKind.COMMENT] if note.strip() else []
    raise Open311Error(400, f"unknown status {reported!r}")


# --- dates ------------------------------------------------------------------------------

def parse_datetime(name: str, raw: str, tz: tzinfo) -> datetime:
    """A W3C date-time as clients send it; a date without a zone is read in `tz`."""
    text = raw.strip().replace(" ", "+") if "T" in raw else raw.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Open311Error(400, f"{name} must be a W3C date-time like"
                                f" 2026-11-23T10:00:00+08:00, got {raw[:40]!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def window(start: datetime | None, end: datetime | None,
           now: datetime) -> tuple[datetime, datetime]:
    """The requested_datetime window of a search: at most 90 days, the last 90 by default."""
    try:
        if start is None and end is None:
            return now - MAX_WINDOW, now
        if start is None:
            assert end is not None
            start = end - MAX_WINDOW
        if end is None:
            end = min(now, start + MAX_WINDOW)
        if end < start:
            raise Open311Error(400, "end_date is before start_date")
        if end - start > MAX_WINDOW:
            raise Open311Error(400, "start_date and end_date may not span more than 90 days")
        start.astimezone(UTC), end.astimezone(UTC)  # stored in UTC: both must have one
    except OverflowError:  # 0001-01-01 less 90 days, 9999-12-31 plus 90 days or in UTC
        raise Open311Error(400, "start_date and end_date must be well within the years"
                                " 0001 to 9999") from None
    return start, end


def w3c(moment: datetime | None, tz: tzinfo) -> str | None:
    """A datetime as GeoReport writes it: ISO 8601 with the local offset."""
    return moment.astimezone(tz).isoformat(timespec="seconds") if moment else None

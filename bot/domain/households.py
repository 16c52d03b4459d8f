"""Households under buildings (人进户、户进楼): tags with their visit rules, the import CSV,
and which households are due a visit.

Pure: the tag list comes from a TOML file (bot/data/household_tags.toml), the CSV as text,
phones are checked by a function given in, and "now" is always passed.
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

DEFAULT_TAGS = Path(__file__).resolve().parents[1] / "data" / "household_tags.toml"
COLUMNS = ("building", "grid_code", "unit", "room", "head_name", "phone", "people", "tags")
REQUIRED = ("building", "room", "head_name")
MAX_PEOPLE = 99
TAG_SEPARATORS = re.compile(r"[;；、|/]+")
CODE = re.compile(r"[a-z0-9_]{1,40}")


class TagError(ValueError):
    """The tag file is wrong; the message names the entry and the problem."""


@dataclass(frozen=True)
class Tag:
    """One household tag and its visit rule."""

    code: str
    name_zh: str
    name_en: str
    visit_every_days: int | None = None

    def name(self, locale: str) -> str:
        """The tag's name in a locale."""
        return self.name_en if locale.startswith("en") else self.name_zh


class TagCatalog:
    """The configurable list of household tags."""

    def __init__(self, tags: Sequence[Tag]) -> None:
        self.tags = list(tags)
        self._by_code = {t.code: t for t in self.tags}
        self._by_word = {w.casefold(): t for t in self.tags
                         for w in (t.code, t.name_zh, t.name_en)}

    @classmethod
    def load(cls, path: str | Path = DEFAULT_TAGS) -> TagCatalog:
        """Read and check a tag file; TagError says what is wrong."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise TagError(f"{path}: cannot read the tag list: {exc}") from None
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Mapping[str, object], where: str = "tags") -> TagCatalog:
        """Build the list from parsed TOML (a `tag` array of tables)."""
        entries = data.get("tag")
        if not isinstance(entries, list) or not entries:
            raise TagError(f"{where}: expected [[tag]] entries")
        tags: list[Tag] = []
        for number, entry in enumerate(entries, start=1):
            if not isinstance(entry, dict):
                raise TagError(f"{where}: tag {number} is not a table")
            code = entry.get("code")
            if not isinstance(code, str) or not CODE.fullmatch(code):
                raise TagError(f"{where}: tag {number}: code must be letters, digits or _")
            names = [entry.get("name_zh"), entry.get("name_en")]
            if not all(isinstance(n, str) and n.strip() for n in names):
                raise TagError(f"{where}: tag {number} ({code}): name_zh and name_en are"
                               " required")
            days = entry.get("visit_every_days")
            if days is not None and (not isinstance(days, int) or isinstance(days, bool)
                                     or not 1 <= days <= 366):
                raise TagError(f"{where}: tag {number} ({code}): visit_every_days must be"
                               " a whole number of days from 1 to 366")
            if any(t.code == code for t in tags):
                raise TagError(f"{where}: tag {number}: code {code!r} appears twice")
            tags.append(Tag(code, str(names[0]).strip(), str(names[1]).strip(), days))
        return cls(tags)

    def get(self, code: str) -> Tag | None:
        """A tag by its code."""
        return self._by_code.get(code)

    def find(self, word: str) -> Tag | None:
        """A tag by its code or either name, as typed in a file."""
        return self._by_word.get(word.strip().casefold())

    def names(self, codes: Iterable[str], locale: str) -> list[str]:
        """The names of tag codes in a locale (unknown codes as they are)."""
        return [t.name(locale) if (t := self.get(c)) else c for c in codes]

    def interval(self, codes: Iterable[str]) -> timedelta | None:
        """How often a household with these tags is visited: its most demanding rule."""
        days = [t.visit_every_days for c in codes
                if (t := self.get(c)) is not None and t.visit_every_days]
        return timedelta(days=min(days)) if days else None


@dataclass(frozen=True)
class HouseholdRow:
    """One household as read from an import file."""

    line: int
    building_id: int
    unit: str
    room: str
    head_name: str
    phone: str | None
    people: int
    tags: tuple[str, ...]


def parse_households_csv(
    text: str, buildings: Mapping[tuple[str, str], int], tags: TagCatalog,
    normalize_phone: Callable[[str], str | None],
) -> list[HouseholdRow]:
    """Parse `building,grid_code,unit,room,head_name,phone,people,tags` CSV; all rows or
    a ValueError naming the line (numbered as an editor does: the header is line 1).

    `buildings` maps (grid code, building name) to the building's id; `grid_code` may be
    left out when the name is unique. Tags are codes or names separated by ; 、 or |.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise ValueError("line 1: the file is empty (expected a header"
                         " building,unit,room,head_name,...)")
    columns = [c.strip().lower() for c in header]
    for column in columns:
        if column not in COLUMNS:
            raise ValueError(f"line 1: unknown column {column!r} (expected"
                             f" {','.join(COLUMNS)})")
    for column in REQUIRED:
        if column not in columns:
            raise ValueError(f"line 1: missing column {column!r}")
    if len(set(columns)) != len(columns):
        raise ValueError("line 1: a column appears twice")
    by_name: dict[str, list[int]] = {}
    for (_grid, name), building_id in buildings.items():
        by_name.setdefault(name, []).append(building_id)

    found: list[HouseholdRow] = []
    seen: dict[tuple[int, str, str], int] = {}
    ended = reader.line_num
    for row in reader:
        line, ended = ended + 1, reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            raise ValueError(f"line {line}: expected {len(columns)} fields, got {len(row)}")
        values = {c: cell.strip() for c, cell in zip(columns, row, strict=True)}
        for column in REQUIRED:
            if not values[column]:
                raise ValueError(f"line {line}: {column} is empty")
        building_id = _building(line, values["building"], values.get("grid_code", ""),
                                buildings, by_name)
        phone = None
        if values.get("phone"):
            phone = normalize_phone(values["phone"])
            if phone is None:
                raise ValueError(f"line {line}: {values['phone']!r} is not a phone number")
        people = _people(line, values.get("people", ""))
        codes: list[str] = []
        for word in TAG_SEPARATORS.split(values.get("tags", "")):
            if not word.strip():
                continue
            tag = tags.find(word)
            if tag is None:
                known = "、".join(t.name_zh for t in tags.tags)
                raise ValueError(f"line {line}: unknown tag {word.strip()!r} (known: {known})")
            if tag.code not in codes:
                codes.append(tag.code)
        key = (building_id, values.get("unit", ""), values["room"])
        if key in seen:
            raise ValueError(f"line {line}: the same household as line {seen[key]}"
                             f" ({values['building']} {key[1]} {key[2]})".replace("  ", " "))
        seen[key] = line
        found.append(HouseholdRow(line, building_id, key[1], key[2], values["head_name"],
                                  phone, people, tuple(codes)))
    return found


def _building(line: int, name: str, grid: str, buildings: Mapping[tuple[str, str], int],
              by_name: Mapping[str, list[int]]) -> int:
    if grid:
        if (grid, name) not in buildings:
            raise ValueError(f"line {line}: no building {name!r} in grid {grid}"
                             " (import the buildings first)")
        return buildings[(grid, name)]
    ids = by_name.get(name, [])
    if not ids:
        raise ValueError(f"line {line}: no building {name!r} (import the buildings first)")
    if len(ids) > 1:
        raise ValueError(f"line {line}: building {name!r} is in several grids:"
                         " give its grid_code")
    return ids[0]


def _people(line: int, text: str) -> int:
    if not text:
        return 1
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_PEOPLE:
        raise ValueError(f"line {line}: people must be a whole number from 1 to"
                         f" {MAX_PEOPLE}, got {text!r}")
    return int(text)


@dataclass(frozen=True)
class DueVisit:
    """A household due a visit by its tags' rule."""

    household_id: int
    due_at: datetime  # when the visit fell due (the registration time if never visited)
    last_visit: datetime | None
    interval: timedelta

    def overdue_days(self, now: datetime) -> int:
        """Whole days past the due time (0 on the day it falls due)."""
        return max(0, (now - self.due_at).days)


def next_visit(tags: TagCatalog, codes: Iterable[str], last_visit: datetime | None,
               registered_at: datetime) -> tuple[datetime, timedelta] | None:
    """When a household's next visit falls due and its rule; None when no tag sets one.

    Never visited: due from its registration (at once).
    """
    interval = tags.interval(codes)
    if interval is None:
        return None
    return (last_visit + interval if last_visit is not None else registered_at), interval


def due_visits(tags: TagCatalog,
               households: Iterable[tuple[int, Sequence[str], datetime | None, datetime]],
               by: datetime) -> list[DueVisit]:
    """The households due a visit by `by`, the longest waiting first.

    `households`: (id, tag codes, last visit or None, registered at).
    """
    due = []
    for household_id, codes, last, registered in households:
        rule = next_visit(tags, codes, last, registered)
        if rule is not None and rule[0] <= by:
            due.append(DueVisit(household_id, rule[0], last, rule[1]))
    return sorted(due, key=lambda d: (d.due_at, d.household_id))


def mask_name(name: str) -> str:
    """A household head's name as lists show it: the family name, the rest hidden."""
    name = name.strip()
    if not name:
        return ""
    if name.isascii():
        first, _, rest = name.partition(" ")
        return f"{first} {'*' * min(len(rest), 3)}".strip() if rest else name[0] + "**"
    return name[0] + "*" * max(1, len(name) - 1)

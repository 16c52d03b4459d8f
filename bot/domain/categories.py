"""The category catalog: what can be reported, how urgent it is and how long handling may take.

The catalog is read from a TOML file (`bot/data/categories.toml` by default; the comments in
that file explain how to add a category). A file with any mistake is refused whole, with a
`CatalogError` that names the file, the entry and what is wrong.

`Catalog.suggest` guesses categories from a resident's free text in Chinese or English by
keyword: Chinese keywords match anywhere in the text, English keywords match whole words (a
trailing "s" or "es" is allowed). A keyword scores its length in characters (Chinese) or two
points per word (English); subcategory keywords count double. The category "other" is the
fallback and is never suggested.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

Urgency = Literal["U1", "U2", "U3", "U4"]
URGENCIES: tuple[Urgency, ...] = get_args(Urgency)
Unit = Literal["minutes", "hours", "days"]

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "data" / "categories.toml"
FALLBACK_CODE = "other"
SUBCATEGORY_WEIGHT = 2.0


def is_english(locale: str) -> bool:
    """Tell whether a locale name means English ("en", "en_GB", ...); anything else is Chinese."""
    return locale.lower().startswith("en")


def normalize(text: str) -> str:
    """Fold text for matching: NFKC (full-width to half-width), lower case, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


# --- time limits ---------------------------------------------------------------------------

_UNIT_WORDS: dict[str, Unit] = {
    "m": "minutes", "min": "minutes", "mins": "minutes", "minute": "minutes",
    "minutes": "minutes",
    "h": "hours", "hr": "hours", "hrs": "hours", "hour": "hours", "hours": "hours",
    "d": "days", "day": "days", "days": "days",
}
_UNIT_SHORT: dict[Unit, str] = {"minutes": "m", "hours": "h", "days": "d"}
_UNIT_ZH: dict[Unit, str] = {"minutes": "分钟", "hours": "小时", "days": "天"}
_TIME_LIMIT = re.compile(r"(\d+)\s*([a-z]+)\s+(working|natural)")
TIME_LIMIT_FORMAT = "like '4h working', '2h natural', '30m natural' or '15d working'"


@dataclass(frozen=True)
class TimeLimit:
    """How long handling may take, counted in natural time or in working time."""

    amount: int
    unit: Unit
    working: bool

    def __post_init__(self) -> None:
        if self.unit not in _UNIT_SHORT:
            raise ValueError(f"time limit unit must be minutes, hours or days, got {self.unit!r}")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 1:
            raise ValueError(f"time limit amount must be a whole number above 0, "
                             f"got {self.amount!r}")

    @classmethod
    def parse(cls, text: str) -> TimeLimit:
        """Read a time limit written like "4h working", "2h natural", "30m natural"."""
        match = _TIME_LIMIT.fullmatch(normalize(text))
        unit = _UNIT_WORDS.get(match[2]) if match else None
        if match is None or unit is None or int(match[1]) < 1:
            raise ValueError(f"time limit {text!r} is not {TIME_LIMIT_FORMAT}")
        return cls(int(match[1]), unit, match[3] == "working")

    def __str__(self) -> str:
        """Write the time limit the way `parse` reads it, e.g. "4h working"."""
        kind = "working" if self.working else "natural"
        return f"{self.amount}{_UNIT_SHORT[self.unit]} {kind}"

    def label(self, locale: str) -> str:
        """Say the time limit to a person: "4个工作小时" / "4 working hours"."""
        if is_english(locale):
            word = self.unit if self.amount != 1 else self.unit[:-1]
            return f"{self.amount} working {word}" if self.working else f"{self.amount} {word}"
        if not self.working:
            return f"{self.amount}{_UNIT_ZH[self.unit]}"
        if self.unit == "days":
            return f"{self.amount}个工作日"
        if self.unit == "hours":
            return f"{self.amount}个工作小时"
        return f"{self.amount}分钟（工作时间）"


# --- the catalog's entries -----------------------------------------------------------------


class CatalogError(ValueError):
    """The catalog file cannot be used; the message names the file, the entry and the problem."""


class UnknownCategoryError(KeyError):
    """No category (or subcategory) with that code is in the catalog."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        """Return the message without the quotes KeyError adds."""
        return self.message


@dataclass(frozen=True)
class UrgencyLevel:
    """One urgency level (U1 urgent … U4 complex) and its default time limits."""

    code: Urgency
    name_zh: str
    name_en: str
    time_limit: TimeLimit
    acknowledge: TimeLimit | None = None

    def name(self, locale: str) -> str:
        """Return the level's name in the locale ("zh_CN" or "en...")."""
        return self.name_en if is_english(locale) else self.name_zh


@dataclass(frozen=True)
class Subcategory:
    """A kind of problem inside a category, with its urgency and time limit resolved."""

    code: str
    name_zh: str
    name_en: str
    urgency: Urgency
    time_limit: TimeLimit
    keywords: tuple[str, ...] = ()

    def name(self, locale: str) -> str:
        """Return the subcategory's name in the locale ("zh_CN" or "en...")."""
        return self.name_en if is_english(locale) else self.name_zh


@dataclass(frozen=True)
class Category:
    """A category of problems, with its default urgency, time limit and subcategories."""

    code: str
    name_zh: str
    name_en: str
    urgency: Urgency
    time_limit: TimeLimit
    subcategories: tuple[Subcategory, ...] = ()
    keywords: tuple[str, ...] = ()

    def name(self, locale: str) -> str:
        """Return the category's name in the locale ("zh_CN" or "en...")."""
        return self.name_en if is_english(locale) else self.name_zh

    def subcategory(self, code: str) -> Subcategory:
        """Return the subcategory with this code, or raise UnknownCategoryError."""
        for sub in self.subcategories:
            if sub.code == code:
                return sub
        known = ", ".join(sub.code for sub in self.subcategories) or "none"
        raise UnknownCategoryError(
            f"category {self.code!r} has no subcategory {code!r} (it has: {known})")


@dataclass(frozen=True)
class Suggestion:
    """A category guessed from free text, with the best-matching subcategory if any."""

    category: Category
    subcategory: Subcategory | None
    score: float

    @property
    def urgency(self) -> Urgency:
        """The urgency of the subcategory, or of the category when there is none."""
        return self.subcategory.urgency if self.subcategory else self.category.urgency

    @property
    def time_limit(self) -> TimeLimit:
        """The time limit of the subcategory, or of the category when there is none."""
        return self.subcategory.time_limit if self.subcategory else self.category.time_limit


# --- keyword matching ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Keyword:
    weight: float
    text: str
    pattern: re.Pattern[str] | None  # English words; None: match the text as a substring

    def found_in(self, text: str) -> bool:
        if self.pattern is None:
            return self.text in text
        return self.pattern.search(text) is not None


def _keyword(word: str) -> _Keyword:
    text = normalize(word)
    if not text.isascii():
        return _Keyword(float(len(text)), text, None)
    words = text.split(" ")
    body = r"\s+".join(re.escape(part) for part in words)
    pattern = re.compile(rf"(?<![a-z0-9]){body}(?:s|es)?(?![a-z0-9])")
    return _Keyword(2.0 * len(words), text, pattern)


def _score(keywords: tuple[_Keyword, ...], text: str) -> float:
    return sum(keyword.weight for keyword in keywords if keyword.found_in(text))


# --- the catalog ---------------------------------------------------------------------------


class Catalog:
    """The categories, in file order (the order of numbered menus), and the urgency levels."""

    def __init__(
        self,
        categories: Iterable[Category],
        urgencies: Mapping[Urgency, UrgencyLevel],
        source: Path | None = None,
    ) -> None:
        self.categories: tuple[Category, ...] = tuple(categories)
        self.urgencies: dict[Urgency, UrgencyLevel] = dict(urgencies)
        self.source = source
        self._by_code = {category.code: category for category in self.categories}
        if len(self._by_code) != len(self.categories):
            raise ValueError("category codes must be unique")
        self._keywords = {
            category.code: (
                tuple(_keyword(word) for word in category.keywords),
                tuple((sub, tuple(_keyword(word) for word in sub.keywords))
                      for sub in category.subcategories),
            )
            for category in self.categories
        }

    @classmethod
    def load(cls, path: str | Path) -> Catalog:
        """Read and check a catalog file; raise CatalogError if anything in it is wrong."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogError(f"{path}: cannot read the file: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CatalogError(f"{path}: the file is not UTF-8 text") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CatalogError(f"{path}: not valid TOML: {exc}") from None
        return _Reader(path).catalog(data)

    @classmethod
    def default(cls) -> Catalog:
        """Load the catalog shipped with gridbot (bot/data/categories.toml)."""
        return cls.load(DEFAULT_PATH)

    @property
    def fallback(self) -> Category:
        """The category for reports that fit nowhere else ("other")."""
        return self.get(FALLBACK_CODE)

    def get(self, code: str) -> Category:
        """Return the category with this code, or raise UnknownCategoryError."""
        try:
            return self._by_code[code]
        except KeyError:
            known = ", ".join(self._by_code)
            raise UnknownCategoryError(f"no category {code!r} (known: {known})") from None

    def urgency_of(self, code: str, sub_code: str | None = None) -> Urgency:
        """Return the urgency of a category, or of one of its subcategories."""
        category = self.get(code)
        return category.subcategory(sub_code).urgency if sub_code else category.urgency

    def time_limit_of(self, code: str, sub_code: str | None = None) -> TimeLimit:
        """Return the time limit of a category, or of one of its subcategories."""
        category = self.get(code)
        return category.subcategory(sub_code).time_limit if sub_code else category.time_limit

    def suggest(self, text: str, limit: int = 3) -> list[Suggestion]:
        """Guess up to `limit` categories from free text, best first; [] when no keyword matches."""
        folded = normalize(text)
        ranked: list[tuple[float, int, Suggestion]] = []
        for index, category in enumerate(self.categories):
            if category.code == FALLBACK_CODE:
                continue
            own_keywords, sub_keywords = self._keywords[category.code]
            best_sub: Subcategory | None = None
            best_sub_score = 0.0
            for sub, keywords in sub_keywords:
                sub_score = SUBCATEGORY_WEIGHT * _score(keywords, folded)
                if sub_score > best_sub_score:
                    best_sub, best_sub_score = sub, sub_score
            score = _score(own_keywords, folded) + best_sub_score
            if score > 0:
                ranked.append((-score, index, Suggestion(category, best_sub, score)))
        ranked.sort(key=lambda entry: (entry[0], entry[1]))
        return [suggestion for _, _, suggestion in ranked[:max(limit, 0)]]


# --- reading and checking the file ---------------------------------------------------------

_CODE = re.compile(r"[a-z][a-z0-9_]*")
_CATEGORY_KEYS = {"code", "name_zh", "name_en", "urgency", "time_limit", "keywords_zh",
                  "keywords_en", "subcategory"}
_SUBCATEGORY_KEYS = _CATEGORY_KEYS - {"subcategory"}
_URGENCY_KEYS = {"name_zh", "name_en", "time_limit", "acknowledge"}


class _Reader:
    """Turns parsed TOML into a Catalog, naming the file and entry in every error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, where: str, problem: str) -> CatalogError:
        return CatalogError(f"{self.path}: {where}: {problem}")

    def catalog(self, data: dict[str, Any]) -> Catalog:
        self.check_keys(data, {"urgency", "category"}, "top level")
        urgencies = self.urgencies(data.get("urgency"))
        entries = data.get("category")
        if not isinstance(entries, list) or not entries:
            raise CatalogError(f"{self.path}: no categories: add [[category]] entries")
        categories: list[Category] = []
        for number, entry in enumerate(entries, start=1):
            category = self.category(entry, number, urgencies)
            if any(seen.code == category.code for seen in categories):
                raise self.error(f"category #{number}",
                                 f"duplicate code {category.code!r} (each code must be unique)")
            categories.append(category)
        if not any(category.code == FALLBACK_CODE for category in categories):
            raise CatalogError(f"{self.path}: no category with code {FALLBACK_CODE!r}; it is "
                               "needed for reports that fit nowhere else")
        return Catalog(categories, urgencies, self.path)

    def urgencies(self, table: object) -> dict[Urgency, UrgencyLevel]:
        if not isinstance(table, dict):
            raise CatalogError(f"{self.path}: missing the urgency levels: add [urgency.U1] "
                               "to [urgency.U4] with a time_limit each")
        unknown = sorted(set(table) - set(URGENCIES))
        if unknown:
            raise self.error(f"[urgency.{unknown[0]}]",
                             f"unknown urgency level (use {', '.join(URGENCIES)})")
        levels: dict[Urgency, UrgencyLevel] = {}
        for code in URGENCIES:
            where = f"[urgency.{code}]"
            entry = table.get(code)
            if not isinstance(entry, dict):
                raise self.error(where, "missing (all of U1, U2, U3 and U4 must be defined)")
            self.check_keys(entry, _URGENCY_KEYS, where)
            time_limit = self.time_limit(entry, "time_limit", where)
            if time_limit is None:
                raise self.error(where, "missing field 'time_limit'")
            levels[code] = UrgencyLevel(
                code=code,
                name_zh=self.optional_text(entry, "name_zh", where) or code,
                name_en=self.optional_text(entry, "name_en", where) or code,
                time_limit=time_limit,
                acknowledge=self.time_limit(entry, "acknowledge", where),
            )
        return levels

    def category(
        self, entry: object, number: int, urgencies: Mapping[Urgency, UrgencyLevel]
    ) -> Category:
        where = f"category #{number}"
        if not isinstance(entry, dict):
            raise self.error(where, "must be a [[category]] table")
        code = self.code(entry, where)
        where = f"category {code!r}"
        self.check_keys(entry, _CATEGORY_KEYS, where)
        urgency = self.urgency(entry, where)
        if urgency is None:
            raise self.error(where, "missing field 'urgency'")
        time_limit = self.time_limit(entry, "time_limit", where) or urgencies[urgency].time_limit
        raw_subs = entry.get("subcategory", [])
        if not isinstance(raw_subs, list):
            raise self.error(where, "subcategories must be [[category.subcategory]] tables")
        subs: list[Subcategory] = []
        for sub_number, raw in enumerate(raw_subs, start=1):
            sub = self.subcategory(raw, where, sub_number, urgency, time_limit, urgencies)
            if any(seen.code == sub.code for seen in subs):
                raise self.error(f"{where}, subcategory #{sub_number}",
                                 f"duplicate code {sub.code!r} (unique inside the category)")
            subs.append(sub)
        return Category(
            code=code,
            name_zh=self.required_text(entry, "name_zh", where),
            name_en=self.required_text(entry, "name_en", where),
            urgency=urgency,
            time_limit=time_limit,
            subcategories=tuple(subs),
            keywords=self.keywords(entry, where),
        )

    def subcategory(
        self, entry: object, category_where: str, number: int, category_urgency: Urgency,
        category_limit: TimeLimit, urgencies: Mapping[Urgency, UrgencyLevel],
    ) -> Subcategory:
        where = f"{category_where}, subcategory #{number}"
        if not isinstance(entry, dict):
            raise self.error(where, "must be a [[category.subcategory]] table")
        code = self.code(entry, where)
        where = f"{category_where}, subcategory {code!r}"
        self.check_keys(entry, _SUBCATEGORY_KEYS, where)
        urgency = self.urgency(entry, where)
        default_limit = urgencies[urgency].time_limit if urgency else category_limit
        return Subcategory(
            code=code,
            name_zh=self.required_text(entry, "name_zh", where),
            name_en=self.required_text(entry, "name_en", where),
            urgency=urgency or category_urgency,
            time_limit=self.time_limit(entry, "time_limit", where) or default_limit,
            keywords=self.keywords(entry, where),
        )

    def check_keys(self, table: dict[str, Any], allowed: set[str], where: str) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.error(where, f"unknown field {unknown[0]!r} "
                                    f"(allowed: {', '.join(sorted(allowed))})")

    def code(self, entry: dict[str, Any], where: str) -> str:
        code = self.required_text(entry, "code", where)
        if not _CODE.fullmatch(code):
            raise self.error(where, f"code {code!r} must be lower-case letters, digits and _, "
                                    "starting with a letter")
        return code

    def required_text(self, entry: dict[str, Any], key: str, where: str) -> str:
        value = self.optional_text(entry, key, where)
        if value is None:
            raise self.error(where, f"missing field {key!r}")
        return value

    def optional_text(self, entry: dict[str, Any], key: str, where: str) -> str | None:
        value = entry.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(where, f"{key} must be a non-empty text in double quotes")
        return value.strip()

    def urgency(self, entry: dict[str, Any], where: str) -> Urgency | None:
        value = self.optional_text(entry, "urgency", where)
        if value is None:
            return None
        for level in URGENCIES:
            if value == level:
                return level
        raise self.error(where, f"unknown urgency {value!r} (use {', '.join(URGENCIES)})")

    def time_limit(self, entry: dict[str, Any], key: str, where: str) -> TimeLimit | None:
        value = self.optional_text(entry, key, where)
        if value is None:
            return None
        try:
            return TimeLimit.parse(value)
        except ValueError:
            raise self.error(where, f"bad {key} {value!r}: write it "
                                    f"{TIME_LIMIT_FORMAT}") from None

    def keywords(self, entry: dict[str, Any], where: str) -> tuple[str, ...]:
        words: list[str] = []
        for key in ("keywords_zh", "keywords_en"):
            value = entry.get(key, [])
            if not isinstance(value, list):
                raise self.error(where, f"{key} must be a list like [\"垃圾\", \"堆\"]")
            for item in value:
                if not isinstance(item, str) or not normalize(item):
                    raise self.error(where, f"{key} has an empty or non-text item {item!r}")
                words.append(item.strip())
        return tuple(words)

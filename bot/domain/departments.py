"""Functional departments and the categories they take, from a TOML file."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "data" / "departments.toml"


@dataclass(frozen=True)
class Department:
    """A department cases can be dispatched to."""

    code: str
    name_zh: str
    name_en: str
    categories: tuple[str, ...]

    def name(self, locale: str) -> str:
        """The department's name in a locale."""
        return self.name_en if locale.startswith("en") else self.name_zh


def load_departments(path: Path = DEFAULT_PATH) -> list[Department]:
    """Read the departments; a malformed file raises ValueError naming the entry."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    departments = []
    for index, entry in enumerate(data.get("department", [])):
        try:
            departments.append(Department(str(entry["code"]), str(entry["name_zh"]),
                                          str(entry["name_en"]),
                                          tuple(str(c) for c in entry.get("categories", []))))
        except KeyError as exc:
            raise ValueError(f"{path}: department {index + 1} lacks {exc}") from None
    return departments


def for_category(departments: list[Department], category: str) -> list[Department]:
    """All departments, those that take the category first."""
    return sorted(departments, key=lambda d: category not in d.categories)

"""Functional departments and the categories they take, from a TOML file."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlparse

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "data" / "departments.toml"


@dataclass(frozen=True)
class Open311Link:
    """A department's own Open311 GeoReport v2 system, which receives its cases.

    `api_key` is the key itself, or "env:NAME" to read it from that environment variable
    when sending; `service_codes` maps gridbot's service codes (category-subcategory) or
    category codes to the department's own; `default_service_code` is used otherwise.
    """

    endpoint: str
    api_key: str
    default_service_code: str
    jurisdiction_id: str | None = None
    service_codes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def service_code_for(self, category: str, service: str) -> str:
        """The department's service code for one of gridbot's services."""
        return self.service_codes.get(service) or self.service_codes.get(
            category) or self.default_service_code


@dataclass(frozen=True)
class Department:
    """A department cases can be dispatched to."""

    code: str
    name_zh: str
    name_en: str
    categories: tuple[str, ...]
    open311: Open311Link | None = None

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
                                          tuple(str(c) for c in entry.get("categories", [])),
                                          _open311(entry.get("open311"))))
        except KeyError as exc:
            raise ValueError(f"{path}: department {index + 1} lacks {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: department {index + 1}: {exc}") from None
    return departments


def _open311(entry: object) -> Open311Link | None:
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise ValueError("open311 must be a table")
    endpoint = str(entry["endpoint"]).rstrip("/")
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"open311.endpoint must be an http(s) address, got {endpoint!r}")
    codes = entry.get("service_codes", {})
    if not isinstance(codes, dict):
        raise ValueError("open311.service_codes must be a table")
    jurisdiction = entry.get("jurisdiction_id")
    return Open311Link(endpoint, str(entry["api_key"]), str(entry["default_service_code"]),
                       str(jurisdiction) if jurisdiction is not None else None,
                       MappingProxyType({str(k): str(v) for k, v in codes.items()}))


def open311_link(departments: list[Department], code: str | None) -> Open311Link | None:
    """The Open311 system of the department with this code, if it has one."""
    return next((d.open311 for d in departments if d.code == code), None)


def for_category(departments: list[Department], category: str) -> list[Department]:
    """All departments, those that take the category first."""
    return sorted(departments, key=lambda d: category not in d.categories)

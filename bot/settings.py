"""Settings from the environment and an optional `.env` file, checked once at start.

Every setting is listed, with a comment, in `.env.example`. A wrong value stops the start
with one line that names the setting and what is wrong (`SettingsError`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

PACKAGE_DATA = Path(__file__).parent / "data"
LOCALES = ("zh_CN", "en")


class SettingsError(ValueError):
    """A setting has a value gridbot cannot use; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Everything gridbot reads from its environment."""

    database: Path = Path("var/gridbot.db")
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    timezone: ZoneInfo = ZoneInfo("Asia/Shanghai")
    locale: str = "zh_CN"
    categories: Path = PACKAGE_DATA / "categories.toml"
    holidays: Path = PACKAGE_DATA / "holidays.toml"
    media_dir: Path = Path("var/media")
    demo: bool = True
    simulators: bool = True

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
    ) -> Settings:
        """Read settings from `.env` (if present) overlaid by the process environment."""
        values: dict[str, str] = {}
        if dotenv is not None and dotenv.is_file():
            values.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """Build and check settings from a plain mapping of variable names to strings."""
        defaults = cls()

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() != "" else None

        port = _port(get("GRIDBOT_PORT"), defaults.port)
        host = get("GRIDBOT_HOST") or defaults.host
        public_url = get("GRIDBOT_PUBLIC_URL") or f"http://{host}:{port}"
        parsed = urlparse(public_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SettingsError(
                f"GRIDBOT_PUBLIC_URL: must be an http:// or https:// address, got {public_url!r}"
            )
        return cls(
            database=Path(get("GRIDBOT_DATABASE") or defaults.database),
            host=host,
            port=port,
            public_url=public_url.rstrip("/"),
            timezone=_timezone(get("GRIDBOT_TIMEZONE")),
            locale=_locale(get("GRIDBOT_LOCALE")),
            categories=_readable_file("GRIDBOT_CATEGORIES", get("GRIDBOT_CATEGORIES"))
            or defaults.categories,
            holidays=_readable_file("GRIDBOT_HOLIDAYS", get("GRIDBOT_HOLIDAYS"))
            or defaults.holidays,
            media_dir=Path(get("GRIDBOT_MEDIA_DIR") or defaults.media_dir),
            demo=_flag("GRIDBOT_DEMO", get("GRIDBOT_DEMO"), defaults.demo),
            simulators=_flag("GRIDBOT_SIMULATORS", get("GRIDBOT_SIMULATORS"), defaults.simulators),
        )


def _port(raw: str | None, default: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise SettingsError(f"GRIDBOT_PORT: must be a whole number from 1 to 65535, got {raw!r}")
    return int(raw)


def _timezone(raw: str | None) -> ZoneInfo:
    name = raw or "Asia/Shanghai"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"GRIDBOT_TIMEZONE: unknown time zone {name!r} (use an IANA name like Asia/Shanghai)"
        ) from None


def _locale(raw: str | None) -> str:
    name = raw or "zh_CN"
    if name not in LOCALES:
        raise SettingsError(f"GRIDBOT_LOCALE: must be one of {', '.join(LOCALES)}, got {name!r}")
    return name


def _readable_file(setting: str, raw: str | None) -> Path | None:
    if raw is None:
        return None
    path = Path(raw)
    if not path.is_file():
        raise SettingsError(f"{setting}: no such file {raw!r}")
    return path


def _flag(setting: str, raw: str | None, default: bool) -> bool:
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{setting}: must be true or false, got {raw!r}")

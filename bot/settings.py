"""Settings from the environment and an optional `.env` file, checked once at start.

Every setting is listed, with a comment, in `.env.example`. A wrong value stops the start
with one line that names the setting and what is wrong (`SettingsError`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
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
    departments: Path = PACKAGE_DATA / "departments.toml"
    household_tags: Path = PACKAGE_DATA / "household_tags.toml"
    media_dir: Path = Path("var/media")
    demo: bool = True
    # The web simulator: None lets gridbot decide (on only for a local demo: no real
    # channel, listening on loopback); see bot.entrypoints.http.sim_access.
    simulators: bool | None = None
    sim_token: str | None = None  # the simulator's secret (else one is made at start)
    # Telegram (off without a token)
    telegram_token: str | None = None
    telegram_webhook_secret: str | None = None
    telegram_api_base_url: str = "https://api.telegram.org"
    telegram_mode: str = "polling"  # webhook when GRIDBOT_PUBLIC_URL is https
    # SMS through Twilio (off without an account)
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    twilio_mps: float = 1.0
    trust_proxy: bool = False
    phone_region: str = "CN"
    # The scheduler (issue 6): sweep interval, digests, quiet hours, weekly meeting notice.
    tick_seconds: float = 30.0
    digest_morning: time | None = time(8, 30)
    digest_evening: time | None = time(17, 30)
    quiet_hours: tuple[time, time] | None = (time(21, 0), time(8, 0))
    meeting_cron: str | None = "0 9 * * mon"
    # Telegram's overall rate (messages/s). 30 is Telegram's limit; raise it only against
    # a test gateway (the crash test, benchmarks).
    telegram_rate: float = 30.0
    # Open311 GeoReport v2 (docs/open311.md): the jurisdiction_id served (default: the
    # street's area code), and the hosts whose media_url may be fetched (none: links only).
    open311_jurisdiction: str | None = None
    open311_media_hosts: tuple[str, ...] = ()

    @property
    def telegram_enabled(self) -> bool:
        """Telegram runs when a bot token is set."""
        return self.telegram_token is not None

    @property
    def twilio_enabled(self) -> bool:
        """SMS runs when a Twilio account, its token and a sender are set."""
        return self.twilio_account_sid is not None

    @property
    def real_channels(self) -> list[str]:
        """The names of the configured channels that reach real people."""
        return [name for name, on in (("Telegram", self.telegram_enabled),
                                      ("SMS (Twilio)", self.twilio_enabled)) if on]

    @property
    def listens_beyond_loopback(self) -> bool:
        """Whether the server can be reached from other machines (not 127.x, ::1, localhost)."""
        if self.host.lower() == "localhost":
            return False
        try:
            return not ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:  # a host name: it may resolve to anything
            return True

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
        telegram_token = get("TELEGRAM_BOT_TOKEN")
        telegram_mode = get("TELEGRAM_MODE") or (
            "webhook" if public_url.startswith("https://") else "polling")
        if telegram_mode not in ("webhook", "polling"):
            raise SettingsError(f"TELEGRAM_MODE: must be webhook or polling, got {telegram_mode!r}")
        webhook_secret = get("TELEGRAM_WEBHOOK_SECRET")
        if telegram_token and telegram_mode == "webhook" and not webhook_secret:
            raise SettingsError("TELEGRAM_WEBHOOK_SECRET: required in webhook mode"
                                " (1-256 characters A-Z, a-z, 0-9, _ and -)")
        if webhook_secret is not None and not _SECRET.fullmatch(webhook_secret):
            raise SettingsError("TELEGRAM_WEBHOOK_SECRET: use 1-256 characters A-Z, a-z, 0-9,"
                                " _ and -")
        twilio_sid = get("TWILIO_ACCOUNT_SID")
        twilio_token = get("TWILIO_AUTH_TOKEN")
        twilio_from = get("TWILIO_FROM_NUMBER")
        twilio_service = get("TWILIO_MESSAGING_SERVICE_SID")
        if twilio_sid and not twilio_token:
            raise SettingsError("TWILIO_AUTH_TOKEN: required when TWILIO_ACCOUNT_SID is set")
        if twilio_sid and not (twilio_from or twilio_service):
            raise SettingsError("TWILIO_FROM_NUMBER: set it or TWILIO_MESSAGING_SERVICE_SID"
                                " when TWILIO_ACCOUNT_SID is set")
        return cls(
            telegram_token=telegram_token,
            telegram_webhook_secret=webhook_secret,
            telegram_api_base_url=_url("TELEGRAM_API_BASE_URL", get("TELEGRAM_API_BASE_URL"))
            or defaults.telegram_api_base_url,
            telegram_mode=telegram_mode,
            twilio_account_sid=twilio_sid,
            twilio_auth_token=twilio_token,
            twilio_from_number=twilio_from,
            twilio_messaging_service_sid=twilio_service,
            twilio_api_base_url=_url("TWILIO_API_BASE_URL", get("TWILIO_API_BASE_URL"))
            or defaults.twilio_api_base_url,
            twilio_mps=_positive("TWILIO_MPS", get("TWILIO_MPS"), defaults.twilio_mps),
            trust_proxy=_flag("GRIDBOT_TRUST_PROXY", get("GRIDBOT_TRUST_PROXY"), False),
            phone_region=(get("GRIDBOT_PHONE_REGION") or "CN").upper(),
            database=_database(get("GRIDBOT_DATABASE"), defaults.database),
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
            simulators=_optional_flag("GRIDBOT_SIMULATORS", get("GRIDBOT_SIMULATORS")),
            sim_token=_sim_token(get("GRIDBOT_SIM_TOKEN")),
            tick_seconds=_tick(get("GRIDBOT_TICK_SECONDS"), defaults.tick_seconds),
            digest_morning=_clock_time("GRIDBOT_DIGEST_MORNING", get("GRIDBOT_DIGEST_MORNING"),
                                       defaults.digest_morning),
            digest_evening=_clock_time("GRIDBOT_DIGEST_EVENING", get("GRIDBOT_DIGEST_EVENING"),
                                       defaults.digest_evening),
            quiet_hours=_quiet_hours(get("GRIDBOT_QUIET_HOURS"), defaults.quiet_hours),
            meeting_cron=_cron("GRIDBOT_MEETING_CRON", get("GRIDBOT_MEETING_CRON"),
                               defaults.meeting_cron),
            telegram_rate=_positive("GRIDBOT_TELEGRAM_RATE", get("GRIDBOT_TELEGRAM_RATE"),
                                    defaults.telegram_rate),
            departments=_readable_file("GRIDBOT_DEPARTMENTS", get("GRIDBOT_DEPARTMENTS"))
            or defaults.departments,
            household_tags=_readable_file("GRIDBOT_HOUSEHOLD_TAGS",
                                          get("GRIDBOT_HOUSEHOLD_TAGS"))
            or defaults.household_tags,
            open311_jurisdiction=get("GRIDBOT_OPEN311_JURISDICTION"),
            open311_media_hosts=_hosts("GRIDBOT_OPEN311_MEDIA_HOSTS",
                                       get("GRIDBOT_OPEN311_MEDIA_HOSTS")),
        )


_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


# "C:\\gridbot.db" has a one-letter scheme for urlparse; a URL's scheme is longer.
_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")


def _database(raw: str | None, default: Path) -> Path:
    """The SQLite file; a URL (postgresql://…) is refused, not taken as a folder name."""
    if raw is None:
        return default
    scheme = _URL_SCHEME.match(raw)
    if scheme:
        raise SettingsError(
            f"GRIDBOT_DATABASE: {scheme.group(1)}:// databases are not supported yet; give the"
            f" path of a SQLite file (the default is {default})")
    return Path(raw)


def _url(setting: str, raw: str | None) -> str | None:
    if raw is None:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SettingsError(f"{setting}: must be an http:// or https:// address, got {raw!r}")
    return raw.rstrip("/")


_HOST = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d+)?")


def _hosts(setting: str, raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    hosts = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    for host in hosts:
        if not _HOST.fullmatch(host):
            raise SettingsError(f"{setting}: a comma list of host names like"
                                f" media.example.org, got {host!r}")
    return hosts


def _positive(setting: str, raw: str | None, default: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise SettingsError(f"{setting}: must be a positive number, got {raw!r}")
    return value


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


def _optional_flag(setting: str, raw: str | None) -> bool | None:
    """true/false, or None when not set or `auto`: gridbot decides."""
    if raw is None or raw.lower() == "auto":
        return None
    return _flag(setting, raw, False)


def _sim_token(raw: str | None) -> str | None:
    if raw is not None and not _SIM_TOKEN.fullmatch(raw):
        raise SettingsError("GRIDBOT_SIM_TOKEN: use 16-256 characters A-Z, a-z, 0-9, _ and -"
                            " (e.g. `openssl rand -hex 16`)")
    return raw


_SIM_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,256}")
_OFF = ("off", "none", "no", "false", "0")
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_CRONTAB_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _tick(raw: str | None, default: float) -> float:
    value = _positive("GRIDBOT_TICK_SECONDS", raw, default)
    if not 1 <= value <= 3600:
        raise SettingsError(f"GRIDBOT_TICK_SECONDS: must be from 1 to 3600 seconds, got {raw!r}")
    return value


def _clock_time(setting: str, raw: str | None, default: time | None) -> time | None:
    if raw is None:
        return default
    if raw.lower() in _OFF:
        return None
    match = _CLOCK.fullmatch(raw)
    if match is None:
        raise SettingsError(f"{setting}: must be a local time like 08:30, or off; got {raw!r}")
    return time(int(match[1]), int(match[2]))


def _quiet_hours(raw: str | None, default: tuple[time, time] | None) -> tuple[time, time] | None:
    if raw is None:
        return default
    if raw.lower() in _OFF:
        return None
    start, sep, end = raw.replace(" ", "").partition("-")
    begin, finish = _CLOCK.fullmatch(start), _CLOCK.fullmatch(end)
    if not sep or begin is None or finish is None or start == end:
        raise SettingsError("GRIDBOT_QUIET_HOURS: must be two different local times like"
                            f" 21:00-08:00, or off; got {raw!r}")
    return time(int(begin[1]), int(begin[2])), time(int(finish[1]), int(finish[2]))


def crontab_fields(expr: str) -> list[str]:
    """A crontab line's five fields, weekday numbers named as crontab means them (0 = Sunday)."""
    fields = expr.split()
    if len(fields) == 5:
        fields[4] = re.sub(r"\d", lambda m: _CRONTAB_DAYS[int(m[0]) % 8], fields[4])
    return fields


def _cron(setting: str, raw: str | None, default: str | None) -> str | None:
    if raw is None:
        return default
    if raw.lower() in _OFF:
        return None
    from apscheduler.triggers.cron import CronTrigger

    fields = crontab_fields(raw)
    try:
        if len(fields) != 5:
            raise ValueError("five fields are needed")
        CronTrigger(minute=fields[0], hour=fields[1], day=fields[2], month=fields[3],
                    day_of_week=fields[4])
    except ValueError as exc:
        raise SettingsError(f"{setting}: must be a crontab line (minute hour day month"
                            f" weekday) like '0 9 * * mon', or off; got {raw!r} ({exc})") from None
    return " ".join(raw.split())

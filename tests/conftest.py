"""Shared fixtures: a real on-disk database in a temp folder, a fake clock, chat drivers,
and the Telegram and SMS harnesses against their fakes on localhost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.bootstrap import Gridbot, build
from bot.domain.clock import FakeClock
from bot.settings import Settings
from tests.browser_harness import CHROMIUM, INSTALL
from tests.chat import ChatDriver
from tests.fake_telegram import FakeTelegram, Updates
from tests.fake_twilio import FakeTwilio
from tests.helpers import CHECKER
from tests.pg_harness import INSTALL_HINT, PgDatabases, pg_bin, running_server
from tests.sms_harness import ACCOUNT_SID, AUTH_TOKEN, SmsHarness
from tests.telegram_harness import Harness, running_gridbot, telegram_settings

# Monday 2026-11-23 10:00 in Shanghai: a working day, in working hours.
MONDAY_MORNING = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


# --- the database: SQLite, and PostgreSQL for the modules that run on both -----------

# Test modules whose `database` (and so `settings` and `gridbot`) runs on both backends:
# the store's own tests and the flows over it. The rest run on SQLite only.
ON_BOTH_DATABASES = {
    "test_store", "test_store_pg", "test_report_flow", "test_notices", "test_outbox",
    "test_staff", "test_meetings", "test_scheduler", "test_stats", "test_open311",
    "test_open311_departments", "test_sim_api", "test_assignment_place", "test_households",
    "test_phonein", "test_open311_intake", "test_stats_sources", "test_crash",
    "test_console_auth", "test_console_cases", "test_console_actions", "test_console_map",
    "test_console_notices", "test_console_stats", "test_console_staff",
    "test_console_households", "test_console_text_search",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run `database` on SQLite, and in the modules above on PostgreSQL too."""
    if "database" in metafunc.fixturenames:
        module = metafunc.module.__name__.rsplit(".", 1)[-1]
        backends = ["sqlite", "postgresql"] if module in ON_BOTH_DATABASES else ["sqlite"]
        metafunc.parametrize("database", backends, indirect=True)


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    """One PostgreSQL server for the whole session (started on first use)."""
    if pg_bin() is None:
        pytest.skip(INSTALL_HINT)
    with running_server() as server:
        yield PgDatabases(server)


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: a SQLite file in the test's folder, or a PostgreSQL database
    copied from the migrated template; its GRIDBOT_DATABASE value."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield str(tmp_path / "gridbot.db")
        return
    databases: PgDatabases = request.getfixturevalue("pg_databases")
    url = databases.fresh()
    yield url
    databases.drop(url)


@pytest.fixture
def settings(tmp_path: Path, database: str) -> Settings:
    """Settings pointing at a fresh database and media folder."""
    return Settings.from_mapping({
        "GRIDBOT_DATABASE": database,
        "GRIDBOT_MEDIA_DIR": str(tmp_path / "media"),
    })


@pytest.fixture
def clock() -> FakeClock:
    """A clock that starts on a Monday morning and moves only when told."""
    return FakeClock(MONDAY_MORNING)


@pytest.fixture
async def gridbot(settings: Settings, clock: FakeClock) -> AsyncIterator[Gridbot]:
    """gridbot with the demo district on a real SQLite file."""
    bot = await build(settings, clock)
    try:
        yield bot
    finally:
        await bot.close()


@pytest.fixture
def resident(gridbot: Gridbot) -> ChatDriver:
    """A resident writing from the Telegram-like simulator."""
    return ChatDriver(gridbot, "sim-telegram", "web:resident")


@pytest.fixture
def sms_resident(gridbot: Gridbot) -> ChatDriver:
    """A resident writing from the SMS-like simulator."""
    return ChatDriver(gridbot, "sim-sms", "web:sms-resident")


# --- Telegram against the fake Bot API ----------------------------------------------

@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeTelegram]:
    """One fake Bot API server for the tests of this module."""
    with FakeTelegram(checker=CHECKER).checking() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeTelegram) -> Iterator[FakeTelegram]:
    """The fake Bot API, fresh for each test; the test fails if a call broke the spec."""
    fake_server.reset()
    yield fake_server
    assert not fake_server.violations, "calls that break the Bot API spec:\n" + "\n".join(
        fake_server.violations)
    fake_server.reset()


@pytest.fixture
def updates() -> Updates:
    """Updates as Telegram sends them."""
    return Updates(CHECKER)


@pytest.fixture
def tg_settings(tmp_path: Path, fake: FakeTelegram) -> Settings:
    """Telegram on, webhook mode, pointed at the fake."""
    return telegram_settings(tmp_path, fake)


@pytest.fixture
async def tg(tg_settings: Settings, clock: FakeClock,
             fake: FakeTelegram) -> AsyncIterator[Harness]:
    """gridbot served by uvicorn, Telegram connected to the fake, the sender driven."""
    async with running_gridbot(tg_settings, clock, fake) as harness:
        yield harness


# --- SMS against the fake Twilio API -----------------------------------------------

@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    """The fake Twilio REST API on localhost."""
    fake = FakeTwilio(ACCOUNT_SID, AUTH_TOKEN)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def sms(tmp_path: Path, clock: FakeClock, twilio: FakeTwilio) -> AsyncIterator[SmsHarness]:
    """gridbot with SMS on, served on localhost."""
    harness = await SmsHarness.start(tmp_path, clock, twilio)
    try:
        yield harness
    finally:
        await harness.close()


# --- a real browser for the console's pages ---------------------------------------------

@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (Debian's package) under Playwright; a missing Chromium or
    Playwright fails the test with what to install."""
    if CHROMIUM is None:
        pytest.fail(f"Chromium is missing for the browser tests: {INSTALL}", pytrace=False)
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover - the dev extras bring it
        pytest.fail("the browser tests need Playwright: pip install -e '.[dev]'",
                    pytrace=False)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                    args=["--no-sandbox"])  # CI runs as root
        try:
            yield chromium
        finally:
            await chromium.close()

"""Shared fixtures: a real on-disk database in a temp folder, a fake clock, a chat driver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.bootstrap import Gridbot, build
from bot.domain.clock import FakeClock
from bot.settings import Settings
from tests.chat import ChatDriver

# Monday 2026-11-23 10:00 in Shanghai: a working day, in working hours.
MONDAY_MORNING = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings pointing at a fresh database and media folder."""
    return Settings.from_mapping({
        "GRIDBOT_DATABASE": str(tmp_path / "gridbot.db"),
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

"""Crash safety with a real process: kill -9 `gridbot serve` in the middle of a notice.

10,000 residents on Telegram get a notice queued by `gridbot notice`; the server drains it
against the fake Bot API, is killed with SIGKILL part way, and is started again. Every
resident ends with the notice, and only messages in flight at the kill (at most the
sender's concurrency, 8) may arrive twice. The Telegram rate is raised for this test
(GRIDBOT_TELEGRAM_RATE): at Telegram's real 30/s the drain alone would take 5.5 minutes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.runtime.outbox import Limits
from tests.fake_telegram import FakeTelegram, listening_socket

RESIDENTS = 10_000
FIRST_CHAT = 5_000_000
GRID = "33010600100101"
STREET = "33010600100000"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTelegram]:
    """The fake Bot API, for this module; calls must keep to the spec."""
    with FakeTelegram().checking() as server:
        yield server


def environment(folder: Path, fake: FakeTelegram) -> dict[str, str]:
    sock = listening_socket()
    port = sock.getsockname()[1]
    sock.close()
    return {**os.environ, "GRIDBOT_DATABASE": str(folder / "g.db"),
            "GRIDBOT_MEDIA_DIR": str(folder / "media"), "GRIDBOT_PORT": str(port),
            "TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_API_BASE_URL": fake.base_url,
            "GRIDBOT_TELEGRAM_RATE": "5000", "GRIDBOT_QUIET_HOURS": "off",
            "GRIDBOT_DIGEST_MORNING": "off", "GRIDBOT_DIGEST_EVENING": "off",
            "GRIDBOT_MEETING_CRON": "off", "GRIDBOT_TICK_SECONDS": "1"}


def gridbot(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], env=env, cwd=ROOT, text=True,
                          capture_output=True, timeout=120, check=True)


def serve(env: dict[str, str], folder: Path) -> subprocess.Popen[bytes]:
    log = (folder / "serve.log").open("ab")
    return subprocess.Popen([sys.executable, "-m", "bot", "serve"], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)


def add_residents(database: Path) -> None:
    """10,000 residents of grid 1, each on Telegram (straight into the database)."""
    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT INTO people (id, name, grid_code, created_at) VALUES (?, ?, ?, ?)",
            [(100_000 + i, f"居民{i}", GRID, "2026-11-23T00:00:00+00:00")
             for i in range(RESIDENTS)])
        conn.executemany(
            "INSERT INTO contacts (person_id, channel, address, created_at)"
            " VALUES (?, 'telegram', ?, ?)",
            [(100_000 + i, str(FIRST_CHAT + i), "2026-11-23T00:00:00+00:00")
             for i in range(RESIDENTS)])


def sent_to_residents(fake: FakeTelegram) -> Counter[int]:
    return Counter(int(c.params["chat_id"]) for c in fake.calls_to("sendMessage")
                   if c.status == 200 and int(c.params["chat_id"]) >= FIRST_CHAT)


def wait_until(condition: object, what: str, timeout: float = 120.0) -> None:
    """Poll a real process's progress (not a clock): fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def outbox_states(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM outbox WHERE channel ="
                                 " 'telegram' GROUP BY status").fetchall())


def test_kill_9_mid_notice_then_restart_delivers_to_everyone_at_most_in_flight_twice(
        tmp_path: Path, fake: FakeTelegram) -> None:
    env = environment(tmp_path, fake)
    gridbot(env, "migrate")
    add_residents(tmp_path / "g.db")
    queued = gridbot(env, "notice", "--scope", STREET, "--to", "residents", "--yes",
                     "--text", "周六上午9点至12点停水检修，请提前储水。")
    assert f"queued for {RESIDENTS} recipients" in queued.stdout

    server = serve(env, tmp_path)
    try:
        wait_until(lambda: sum(sent_to_residents(fake).values()) >= RESIDENTS // 3,
                   "a third of the notice to go out")
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    at_kill = sent_to_residents(fake)
    assert RESIDENTS // 3 <= sum(at_kill.values()) < RESIDENTS, "the kill came mid-drain"
    states = outbox_states(tmp_path / "g.db")
    in_flight = states.get("sending", 0)

    server = serve(env, tmp_path)
    try:
        wait_until(lambda: outbox_states(tmp_path / "g.db").get("sent", 0) >= RESIDENTS,
                   "the rest of the notice after the restart")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    received = sent_to_residents(fake)
    print(f"\nsent before the kill: {sum(at_kill.values())}, rows in flight at the kill:"
          f" {in_flight}, received twice: {sum(1 for n in received.values() if n > 1)}")
    assert set(received) == {FIRST_CHAT + i for i in range(RESIDENTS)}, "everyone got it"
    twice = {chat: n for chat, n in received.items() if n > 1}
    assert all(n == 2 for n in twice.values())
    assert len(twice) <= Limits(per_second=1).concurrency, twice
    assert len(twice) <= in_flight  # only rows taken for sending when the process died
    assert set(twice) <= set(at_kill)  # ...and they had reached the provider before it
    assert outbox_states(tmp_path / "g.db") == {"sent": RESIDENTS}

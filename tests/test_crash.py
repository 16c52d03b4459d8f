"""Crash safety with a real process: kill -9 `gridbot serve` in the middle of a notice,
on SQLite and on PostgreSQL.

10,000 residents on Telegram get a notice queued by `gridbot notice`; the server drains it
against the fake Bot API, is killed with SIGKILL part way, and is started again. Every
resident ends with the notice, and only messages in flight at the kill — handed to the
provider, their sending not yet recorded; at most the sender's concurrency, 8 — may
arrive twice. That is the bound docs/scaling.md and the README state for both databases;
on PostgreSQL, where other processes may be sending, what the dead process held also
waits for its lease (GRIDBOT_LEASE_SECONDS, injected short here) before anyone sends it
again, so a duplicate is never sent while its lease runs. The Telegram rate is raised for
this test (GRIDBOT_TELEGRAM_RATE): at Telegram's real 30/s the drain alone would take
5.5 minutes.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.domain.clock import parse_iso
from bot.runtime.outbox import Limits
from store.pg import is_postgres_url
from tests.fake_telegram import FakeTelegram
from tests.serve_harness import (
    count,
    environment,
    free_port,
    gridbot,
    insert_many,
    rows,
    serve,
    wait_until,
)

RESIDENTS = 10_000
FIRST_CHAT = 5_000_000
GRID = "33010600100101"
STREET = "33010600100000"
# Short, so that the test does not wait long, with a margin over the stalls of a loaded
# machine: with 3 s, before a process's housekeeping left its own held rows alone, a late
# renewal let the live server send 19 and 40 messages twice (docs/scaling.md).
LEASE_SECONDS = 10.0


@pytest.fixture(scope="module")
def bot_api() -> Iterator[FakeTelegram]:
    """The fake Bot API, for this module (10,000 calls a test: not checked one by one
    against the spec, only for the calls' own form)."""
    with FakeTelegram().checking() as server:
        yield server


@pytest.fixture
def fake(bot_api: FakeTelegram) -> Iterator[FakeTelegram]:
    """The fake Bot API with no calls yet; the test fails if a call broke the spec."""
    bot_api.reset()
    yield bot_api
    assert not bot_api.violations, bot_api.violations[:5]


def add_residents(database: str) -> None:
    """10,000 residents of grid 1, each on Telegram (straight into the database)."""
    insert_many(database,
                "INSERT INTO people (id, name, grid_code, created_at) VALUES (?, ?, ?, ?)",
                [(100_000 + i, f"居民{i}", GRID, "2026-11-23T00:00:00+00:00")
                 for i in range(RESIDENTS)])
    insert_many(database, "INSERT INTO contacts (person_id, channel, address, created_at)"
                          " VALUES (?, 'telegram', ?, ?)",
                [(100_000 + i, str(FIRST_CHAT + i), "2026-11-23T00:00:00+00:00")
                 for i in range(RESIDENTS)])


def sent_to_residents(fake: FakeTelegram) -> Counter[int]:
    return Counter(int(c.params["chat_id"]) for c in fake.calls_to("sendMessage")
                   if c.status == 200 and int(c.params["chat_id"]) >= FIRST_CHAT)


def outbox_states(database: str) -> dict[str, int]:
    return {str(status): int(n) for status, n in rows(
        database, "SELECT status, count(*) FROM outbox WHERE channel = 'telegram'"
                  " GROUP BY status")}


def test_kill_9_mid_notice_then_restart_delivers_to_everyone_at_most_in_flight_twice(
        tmp_path: Path, fake: FakeTelegram, database: str) -> None:
    postgres = is_postgres_url(database)
    env = environment(tmp_path, database, fake, GRIDBOT_PORT=str(free_port()),
                      GRIDBOT_TELEGRAM_RATE="5000",
                      GRIDBOT_LEASE_SECONDS=str(LEASE_SECONDS))
    gridbot(env, "migrate")
    add_residents(database)
    queued = gridbot(env, "notice", "--scope", STREET, "--to", "residents", "--yes",
                     "--text", "周六上午9点至12点停水检修，请提前储水。")
    assert f"queued for {RESIDENTS} recipients" in queued.stdout

    server = serve(env, tmp_path / "serve.log")
    try:
        wait_until(lambda: sum(sent_to_residents(fake).values()) >= RESIDENTS // 3,
                   "a third of the notice to go out", timeout=180)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    # This process's monotonic time (the fake stamps each call with it) against the wall
    # clock the server stamped its leases with.
    killed_at = time.monotonic()
    wall_minus_monotonic = datetime.now(UTC).timestamp() - killed_at
    at_kill = sent_to_residents(fake)
    assert RESIDENTS // 3 <= sum(at_kill.values()) < RESIDENTS, "the kill came mid-drain"
    held = {str(address): lease for address, lease in rows(
        database, "SELECT address, lease_until FROM outbox WHERE channel = 'telegram'"
                  " AND status = 'sending'")}
    calls_at_kill = len(fake.calls_to("sendMessage"))

    server = serve(env, tmp_path / "serve.log")
    try:
        wait_until(lambda: count(database, "SELECT count(*) FROM outbox WHERE status = 'sent'"
                                           " AND channel = 'telegram'") >= RESIDENTS,
                   "the rest of the notice after the restart", timeout=180)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    received = sent_to_residents(fake)
    twice = {chat: n for chat, n in received.items() if n > 1}
    print(f"\n{'PostgreSQL' if postgres else 'SQLite'}: sent before the kill:"
          f" {sum(at_kill.values())}, rows in flight at the kill: {len(held)},"
          f" received twice: {len(twice)}")
    assert set(received) == {FIRST_CHAT + i for i in range(RESIDENTS)}, "everyone got it"
    assert all(n == 2 for n in twice.values())
    # The stated bound, on both: only messages handed to the provider when the process
    # died, at most the sender's concurrency of them.
    assert len(twice) <= Limits(per_second=1).concurrency, {
        chat: [round(c.at - killed_at, 2) for c in fake.calls_to("sendMessage")
               if int(c.params["chat_id"]) == chat] for chat in twice}
    assert {str(chat) for chat in twice} <= set(held), [  # rows taken for sending at the kill
        (chat, [(round(c.at - killed_at, 2), c.status) for c in fake.calls_to("sendMessage")
                if int(c.params["chat_id"]) == chat],
         rows(database, "SELECT id, status, attempts, error, sent_at FROM outbox"
                        " WHERE address = ?", (str(chat),)))
        for chat in twice if str(chat) not in held]
    assert set(twice) <= set(at_kill)  # ...that had reached the provider before it
    assert outbox_states(database) == {"sent": RESIDENTS}
    if postgres:
        # ...and nothing the dead process held went out again before its lease had passed.
        again = {int(c.params["chat_id"]): c.at for c in fake.calls_to("sendMessage")[
            calls_at_kill:] if c.status == 200 and str(c.params["chat_id"]) in held}
        assert again, "what the dead process held was sent after the restart"
        early = {chat: at for chat, at in again.items()
                 if at + wall_minus_monotonic < parse_iso(held[str(chat)]).timestamp()}
        assert not early, early

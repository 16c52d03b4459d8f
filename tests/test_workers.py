"""Background workers survive a locked database and are restarted when they die.

The lock is real: a second process (python's sqlite3) holds `BEGIN EXCLUSIVE` on the
database file until the test lets it go. gridbot runs its own background workers here
(the senders under the supervisor, as `gridbot serve` does), served by uvicorn, with
Telegram pointed at the fake Bot API. The waits are for events (the health registry's
changes, a call at the fake Bot API), bounded in real time only for the other process.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from bot.bootstrap import Gridbot, build
from bot.channels.telegram.updates import chat_address
from bot.domain.clock import FakeClock
from bot.entrypoints.http import create_app
from bot.runtime.outbox import Delivery, Limits, OutboxWorker
from bot.runtime.supervisor import Health, Supervisor
from bot.settings import Settings
from store import outbox as outbox_store
from store.outbox import OutboundRow, StoredOutbound
from tests.fake_telegram import FakeTelegram, Updates, listening_socket
from tests.helpers import CHECKER
from tests.telegram_harness import telegram_settings

CHAT = 777001
LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
conn.close()
"""
PROCESS_WAIT = 30.0  # seconds, at most, for the other process or a background worker
BUSY_MS = 100  # the app's busy timeout here (5 s in production): a locked claim fails soon


class OtherProcess:
    """A second process holding the database's write lock until `release`."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def release(self) -> None:
        """Let the other process commit and end."""
        if self.process.returncode is not None:
            return
        assert self.process.stdin is not None
        self.process.stdin.write(b"done\n")
        await self.process.stdin.drain()
        assert await asyncio.wait_for(self.process.wait(), PROCESS_WAIT) == 0


@asynccontextmanager
async def locked(database: Path) -> AsyncIterator[OtherProcess]:
    """The database file locked by another process (BEGIN EXCLUSIVE) for the block."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LOCKER, str(database),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    other = OtherProcess(process)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), PROCESS_WAIT)
        assert line == b"locked\n"
        yield other
    finally:
        await other.release()


async def within(condition: Awaitable[Any]) -> Any:
    """Wait for a background worker's event, failing the test instead of hanging."""
    return await asyncio.wait_for(condition, PROCESS_WAIT)


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    """The fake Bot API; the test fails if a call broke the spec."""
    with FakeTelegram().checking() as server:
        yield server


@asynccontextmanager
async def serving(bot: Gridbot, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The started bot's app on uvicorn on localhost, and a client for it."""
    app = create_app(settings, bot)
    app.state.gridbot = bot
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning",
                                           access_log=False))
    serve = asyncio.create_task(server.serve(sockets=[sock := listening_socket()]))
    try:
        async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{sock.getsockname()[1]}") as http:
            yield http
    finally:
        server.should_exit = True
        await serve


@asynccontextmanager
async def running(settings: Settings, clock: FakeClock) -> AsyncIterator[Gridbot]:
    """gridbot built and started as `gridbot serve` starts it, with a short busy timeout."""
    bot = await build(settings, clock)
    await bot.db.conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
    await bot.start()
    try:
        yield bot
    finally:
        await bot.stop()
        await bot.close()


def is_unhealthy(name: str) -> Callable[[Health], bool]:
    return lambda health: name in health.unhealthy()


def is_well(name: str) -> Callable[[Health], bool]:
    return lambda health: health.workers[name].state == "ok"


async def queue_later(bot: Gridbot, clock: FakeClock, *bodies: str) -> None:
    """Replies to as many chats, due a minute from now (so none goes before the lock)."""
    due = clock.now() + timedelta(minutes=1)
    async with bot.db.transaction() as conn:
        await outbox_store.enqueue(conn, [
            OutboundRow("telegram", str(CHAT + i), None, body, {}, next_attempt_at=due)
            for i, body in enumerate(bodies)], clock.now())


def sent_texts(fake: FakeTelegram) -> list[str]:
    return sorted(c.params["text"] for c in fake.calls_to("sendMessage")
                  if c.params.get("chat_id", 0) >= CHAT and c.status == 200)


async def test_a_locked_database_holds_sending_up_only_while_the_lock_lasts(
        tmp_path: Path, clock: FakeClock, fake: FakeTelegram,
        caplog: pytest.LogCaptureFixture) -> None:
    settings = telegram_settings(tmp_path, fake)
    bodies = [f"回复 {i}" for i in range(7)]
    async with running(settings, clock) as bot, serving(bot, settings) as http:
        worker = bot.workers[0]
        await within(bot.health.until(is_well("outbox-telegram")))
        assert (await http.get("/healthz")).status_code == 200
        await queue_later(bot, clock, *bodies)
        with caplog.at_level(logging.WARNING, logger="bot.runtime.supervisor"):
            async with locked(settings.database) as other:
                clock.advance(timedelta(minutes=1))  # the replies are due now, in the lock
                worker.wake.set()
                await within(bot.health.until(is_unhealthy("outbox-telegram")))
                health = await http.get("/healthz")
                assert health.status_code == 503
                assert "outbox-telegram" in health.json()["unhealthy"]
                trouble = health.json()["workers"]["outbox-telegram"]
                assert trouble["state"] == "failing"
                assert "database is locked" in trouble["error"]
                assert trouble["last_ok"] is not None  # when it last worked
                assert sent_texts(fake) == []
                await other.release()
                await within(bot.health.until(is_well("outbox-telegram")))
        await within(asyncio.to_thread(fake.wait_for, lambda c: len(sent_texts(fake))
                                       >= len(bodies), PROCESS_WAIT))
        assert sent_texts(fake) == bodies  # all of them, once each
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.json()["unhealthy"] == []
        assert health.json()["workers"]["outbox-telegram"]["state"] == "ok"
        await within(worker.stop())  # returns once the outcomes in flight are recorded
        rows = await bot.db.fetchall("SELECT status, count(*) FROM outbox WHERE"
                                     " CAST(address AS INTEGER) >= ? GROUP BY status", (CHAT,))
        assert [tuple(r) for r in rows] == [("sent", 7)]
    # One line each time the worker tried, never a traceback.
    trouble_lines = [r for r in caplog.records if "database is locked" in r.getMessage()]
    assert trouble_lines and all(r.exc_info is None for r in trouble_lines)


async def test_an_outcome_the_locked_database_refuses_is_recorded_after_the_lock(
        gridbot: Gridbot) -> None:
    """The message reached the provider, then the database was locked: the outcome waits
    in memory and is recorded afterwards, so the message is not sent a second time."""
    await gridbot.db.conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
    locks: list[OtherProcess] = []
    holders: list[Any] = []
    lock_taken = asyncio.Event()
    calls: list[str] = []

    class LockingSender:
        channel = "fake"
        limits = Limits(per_second=100, concurrency=1)

        async def send(self, message: StoredOutbound) -> Delivery:
            calls.append(message.body)
            holder = locked(gridbot.settings.database)
            holders.append(holder)  # kept: a collected context would end the lock
            locks.append(await holder.__aenter__())
            lock_taken.set()
            return Delivery("sent", provider_id="p-1")

    health = Health(gridbot.clock)
    worker = OutboxWorker(gridbot.db, LockingSender(), gridbot.clock,
                          health=health.reporter("outbox-fake"))
    async with gridbot.db.transaction() as conn:
        await outbox_store.enqueue(conn, [OutboundRow("fake", "a", None, "hello", {})],
                                   gridbot.clock.now())
    worker.start(Supervisor(health))
    try:
        await within(lock_taken.wait())
        await within(health.until(is_unhealthy("outbox-fake")))
        rows = await gridbot.db.fetchall("SELECT status FROM outbox")
        assert [r[0] for r in rows] == ["sending"]  # not recorded yet: it cannot be
        await locks[0].release()
        await within(health.until(is_well("outbox-fake")))
        await within(worker.stop())  # returns once the outcome in flight is recorded
    finally:
        await worker.stop()
        for lock in locks:
            await lock.release()
    rows = await gridbot.db.fetchall("SELECT status, attempts, provider_id FROM outbox")
    assert [tuple(r) for r in rows] == [("sent", 1, "p-1")]
    assert calls == ["hello"]


async def test_a_worker_that_dies_is_restarted_and_healthz_names_it_meanwhile(
        tmp_path: Path, clock: FakeClock, fake: FakeTelegram,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    settings = telegram_settings(tmp_path, fake)
    real_claim = outbox_store.claim
    broken = {"times": 1}

    async def claim(*args: Any, **kwargs: Any) -> list[StoredOutbound]:
        if broken["times"]:
            broken["times"] -= 1
            raise RuntimeError("a bug in the claim")
        return await real_claim(*args, **kwargs)

    restart = asyncio.Event()

    async def wait_for_the_test(seconds: float) -> None:
        await restart.wait()

    monkeypatch.setattr(outbox_store, "claim", claim)
    bot = await build(settings, clock)
    bot.supervisor.sleep = wait_for_the_test
    try:
        with caplog.at_level(logging.ERROR):
            await bot.start()
            async with serving(bot, settings) as http:
                await within(bot.health.until(is_unhealthy("outbox-telegram")))
                health = await http.get("/healthz")
                assert health.status_code == 503
                assert health.json()["unhealthy"] == ["outbox-telegram"]
                worker = health.json()["workers"]["outbox-telegram"]
                assert worker["state"] == "down"
                assert worker["error"] == "RuntimeError: a bug in the claim"
                restart.set()
                await within(bot.health.until(is_well("outbox-telegram")))
                health = await http.get("/healthz")
                assert health.status_code == 200
                assert health.json()["workers"]["outbox-telegram"]["restarts"] == 1
                await queue_later(bot, clock, "还在")
                clock.advance(timedelta(minutes=1))
                bot.workers[0].wake.set()
                await within(asyncio.to_thread(fake.wait_for, lambda c: c.params.get("text")
                                               == "还在", PROCESS_WAIT))
    finally:
        await bot.stop()
        await bot.close()
    died = [r for r in caplog.records if "died" in r.getMessage()]
    assert len(died) == 1 and died[0].exc_info is not None  # a bug: its traceback, once


async def test_the_scheduler_reports_a_locked_database_and_recovers(
        gridbot: Gridbot) -> None:
    await gridbot.db.conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
    scheduler = gridbot.scheduler
    assert scheduler is not None
    async with locked(gridbot.settings.database) as other:
        await scheduler.tick()
        status = gridbot.health.workers["scheduler"]
        assert status.state == "failing" and "database is locked" in (status.error or "")
        await other.release()
    await scheduler.tick()
    assert gridbot.health.workers["scheduler"].state == "ok"
    assert gridbot.health.workers["scheduler"].last_ok == gridbot.clock.now()


async def test_a_stored_update_waits_out_a_locked_database_and_is_answered_after(
        tmp_path: Path, clock: FakeClock, fake: FakeTelegram) -> None:
    """The update was stored (the webhook said 200), then another process took the lock
    before it was processed: it is neither lost nor marked failed; /healthz names the
    inbox processing while the lock lasts, and the person gets the answer afterwards."""
    settings = telegram_settings(tmp_path, fake)
    update = Updates(CHECKER).text(CHAT, "/help")
    async with running(settings, clock) as bot, serving(bot, settings) as http:
        inbox_id = await bot.engine.receive("telegram", str(update["update_id"]),
                                            chat_address(update), update)
        assert inbox_id is not None  # stored; now the lock comes before its processing
        async with locked(settings.database) as other:
            bot.engine.process_later(inbox_id)
            await within(bot.health.until(is_unhealthy("inbox")))
            health = await http.get("/healthz")
            assert health.status_code == 503 and "inbox" in health.json()["unhealthy"]
            assert "database is locked" in health.json()["workers"]["inbox"]["error"]
            await other.release()
            await within(bot.health.until(is_well("inbox")))
        await within(bot.engine.settle())
        rows = await bot.db.fetchall("SELECT status FROM inbox WHERE id = ?", (inbox_id,))
        assert rows[0][0] == "processed"
        await within(asyncio.to_thread(fake.wait_for, lambda c: any(
            call.params.get("chat_id") == CHAT for call in fake.calls_to("sendMessage")),
            PROCESS_WAIT))
        assert (await http.get("/healthz")).status_code == 200

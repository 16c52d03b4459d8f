"""The outbox worker with an in-process fake sender: order, retries, stops, expiry, pace."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta

import pytest

from bot.bootstrap import Gridbot
from bot.domain.clock import FakeClock
from bot.runtime.outbox import (
    MAX_ATTEMPTS,
    RATE_MARGIN,
    Delivery,
    Limits,
    OutboxWorker,
    RateLimiter,
)
from store import outbox as outbox_store
from store import people as people_store
from store.db import Connection
from store.leader import Leadership
from store.outbox import PRIORITY_BULK, PRIORITY_REPLY, OutboundRow, StoredOutbound

CHANNEL = "fake"


class FakeTime:
    """Virtual monotonic time: sleepers wake in order of their wake time, and time jumps to
    the next wake time when `run` finds the sleepers waiting (no real waiting for time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self.count = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self.sleepers, (self.now + max(seconds, 0.0), next(self.count), wake))
        await wake

    async def run(self, work: Awaitable[int]) -> int:
        """Run `work`, moving time on whenever the only thing left to do is wait."""
        task = asyncio.ensure_future(work)
        while not task.done():
            await asyncio.sleep(0.001)  # let runnable tasks and database threads go first
            # ...and the tasks made runnable in the same turn of the loop as this wake-up
            # (a delivery just started), which would otherwise start at the later time.
            await asyncio.sleep(0)
            if self.sleepers and not task.done():
                target = self.sleepers[0][0]
                self.now = max(self.now, target)
                while self.sleepers and self.sleepers[0][0] <= self.now:
                    wake = heapq.heappop(self.sleepers)[2]
                    if not wake.done():  # a nap cut short by a wake-up is cancelled
                        wake.set_result(None)
        return task.result()


class FakeSender:
    """Answers each attempt from a script (default: sent), and remembers what it got."""

    channel = CHANNEL

    def __init__(self, limits: Limits | None = None,
                 answers: dict[str, list[Delivery]] | None = None,
                 timer: FakeTime | None = None) -> None:
        self.limits = limits or Limits(per_second=1000, concurrency=1)
        self.answers = answers or {}
        self.timer = timer
        self.sent: list[tuple[str, str]] = []  # (address, body)
        self.starts: list[float] = []

    async def send(self, message: StoredOutbound) -> Delivery:
        self.starts.append(self.timer() if self.timer else 0.0)
        script = self.answers.get(message.address)
        delivery = script.pop(0) if script else Delivery("sent", provider_id="p1")
        if delivery.status == "sent":
            self.sent.append((message.address, message.body))
        return delivery


async def queue(bot: Gridbot, *rows: OutboundRow) -> None:
    async with bot.db.transaction() as conn:
        await outbox_store.enqueue(conn, list(rows), bot.clock.now())


def row(address: str, body: str, priority: int = PRIORITY_REPLY, **extra: object) -> OutboundRow:
    return OutboundRow(CHANNEL, address, None, body, {}, priority=priority,
                       **extra)  # type: ignore[arg-type]


class Worker:
    """An outbox worker whose pacing runs on virtual time."""

    def __init__(self, bot: Gridbot, sender: FakeSender, timer: FakeTime | None = None) -> None:
        self.timer = timer or FakeTime()
        self.outbox = OutboxWorker(bot.db, sender, bot.clock, timer=self.timer,
                                   sleep=self.timer.sleep)
        self.outbox.limiter = RateLimiter(sender.limits.per_second, timer=self.timer,
                                          sleep=self.timer.sleep)

    async def drain_once(self) -> int:
        """One batch, time moving on whenever the worker only waits for it."""
        return await self.timer.run(self.outbox.drain_once())


def worker(bot: Gridbot, sender: FakeSender, timer: FakeTime | None = None) -> Worker:
    return Worker(bot, sender, timer)


async def status(bot: Gridbot, body: str) -> tuple[str, int, str | None, str | None]:
    rows = await bot.db.fetchall("SELECT status, attempts, next_attempt_at, error FROM outbox"
                                 " WHERE body = ?", (body,))
    return rows[0][0], rows[0][1], rows[0][2], rows[0][3]


async def test_replies_and_assignments_go_before_bulk(gridbot: Gridbot) -> None:
    await queue(gridbot, *(row(f"r{i}", f"bulk {i}", PRIORITY_BULK) for i in range(3)))
    await queue(gridbot, row("chief", "new case"), row("resident", "your reply"))
    sender = FakeSender()
    await worker(gridbot, sender).drain_once()
    assert [body for _, body in sender.sent] == ["new case", "your reply", "bulk 0", "bulk 1",
                                                 "bulk 2"]


async def test_a_temporary_error_retries_later_with_backoff(
        gridbot: Gridbot, clock: FakeClock) -> None:
    sender = FakeSender(answers={"a": [Delivery("retry", error="HTTP 500"),
                                       Delivery("retry", error="429", retry_after=30)]})
    await queue(gridbot, row("a", "hello"))
    work = worker(gridbot, sender)
    await work.drain_once()
    state, attempts, next_at, error = await status(gridbot, "hello")
    assert (state, attempts, error) == ("queued", 1, "HTTP 500")
    assert next_at == "2026-11-23T02:00:02+00:00"  # 2 s after the first attempt
    assert await work.drain_once() == 0  # not due yet
    clock.advance(timedelta(seconds=2))
    await work.drain_once()
    assert (await status(gridbot, "hello"))[2] == "2026-11-23T02:00:32+00:00"  # retry-after
    clock.advance(timedelta(seconds=30))
    await work.drain_once()
    assert (await status(gridbot, "hello"))[:2] == ("sent", 3)
    assert sender.sent == [("a", "hello")]


async def test_after_the_last_attempt_the_message_fails_with_the_providers_error(
        gridbot: Gridbot, clock: FakeClock) -> None:
    sender = FakeSender(answers={"a": [Delivery("retry", error="HTTP 502 Bad Gateway")]
                                 * MAX_ATTEMPTS})
    await queue(gridbot, row("a", "hello"))
    work = worker(gridbot, sender)
    for _ in range(MAX_ATTEMPTS):
        await work.drain_once()
        clock.advance(timedelta(hours=1))
    state, attempts, _, error = await status(gridbot, "hello")
    assert (state, attempts) == ("failed", MAX_ATTEMPTS)
    assert error == f"gave up after {MAX_ATTEMPTS} attempts: HTTP 502 Bad Gateway"


async def test_a_terminal_failure_keeps_the_providers_error(gridbot: Gridbot) -> None:
    sender = FakeSender(answers={"a": [Delivery("failed", error="400 chat not found")]})
    await queue(gridbot, row("a", "hello"))
    await worker(gridbot, sender).drain_once()
    assert (await status(gridbot, "hello"))[0::3] == ("failed", "400 chat not found")


async def test_a_stopped_recipient_is_opted_out_and_gets_nothing_more(gridbot: Gridbot) -> None:
    now = gridbot.clock.now()
    async with gridbot.db.transaction() as conn:
        person = await people_store.add_person(conn, "老李", now)
        await people_store.add_contact(conn, person, CHANNEL, "a", now)
    sender = FakeSender(answers={"a": [Delivery("stopped", error="403 blocked by the user")]})
    await queue(gridbot, row("a", "first"))
    await queue(gridbot, row("a", "second", PRIORITY_BULK))
    work = worker(gridbot, sender)
    await work.drain_once()
    contact = await people_store.find_contact(gridbot.db.conn, CHANNEL, "a")
    assert contact is not None and contact.opted_out
    assert (await status(gridbot, "first"))[0::3] == ("failed", "403 blocked by the user")
    await queue(gridbot, row("a", "third"))
    await work.drain_once()
    assert sender.sent == []
    assert (await status(gridbot, "second"))[0::3] == ("failed", "recipient opted out")
    assert (await status(gridbot, "third"))[0] == "failed"


async def test_an_expired_message_is_dropped_not_sent(
        gridbot: Gridbot, clock: FakeClock) -> None:
    starts = clock.now() + timedelta(minutes=30)
    await queue(gridbot, row("a", "meeting soon", PRIORITY_BULK, expires_at=starts),
                row("b", "later", PRIORITY_BULK, next_attempt_at=starts))
    clock.advance(timedelta(minutes=31))
    sender = FakeSender()
    await worker(gridbot, sender).drain_once()
    assert (await status(gridbot, "meeting soon"))[0] == "expired"
    assert sender.sent == [("b", "later")]


async def test_messages_in_flight_at_a_crash_are_queued_again(gridbot: Gridbot) -> None:
    await queue(gridbot, *(row(f"r{i}", f"m{i}") for i in range(5)))
    async with gridbot.db.transaction() as conn:
        taken = await outbox_store.claim(conn, CHANNEL, gridbot.clock.now(), 3)
    assert len(taken) == 3  # ...and the process dies here
    async with gridbot.db.transaction() as conn:
        assert await outbox_store.requeue_in_flight(conn) == 3
    sender = FakeSender()
    await worker(gridbot, sender).drain_once()
    assert sorted(body for _, body in sender.sent) == [f"m{i}" for i in range(5)]


async def test_the_rate_limit_holds_in_every_one_second_window(gridbot: Gridbot) -> None:
    timer = FakeTime()
    sender = FakeSender(Limits(per_second=30, concurrency=8), timer=timer)
    await queue(gridbot, *(row(f"chat{i}", f"n{i}", PRIORITY_BULK) for i in range(200)))
    work = worker(gridbot, sender, timer)
    while await work.drain_once():
        pass
    assert len(sender.starts) == 200
    starts = sorted(sender.starts)
    busiest = max(sum(1 for t in starts[i:] if t < start + 1.0 - 1e-6)
                  for i, start in enumerate(starts))
    assert busiest == 30
    assert (starts[-1] - starts[0]) >= (200 - 30) / 30  # 30 a second, not faster


async def test_one_chat_gets_one_message_a_second_and_a_group_20_a_minute(
        gridbot: Gridbot) -> None:
    timer = FakeTime()
    limits = Limits(per_second=30, per_address_per_second=1, concurrency=8,
                    per_group_per_minute=20, group_prefix="-")
    sender = FakeSender(limits, timer=timer)
    sent_at: list[tuple[str, float]] = []

    async def send(message: StoredOutbound) -> Delivery:
        sent_at.append((message.address, timer()))
        return Delivery("sent")

    sender.send = send  # type: ignore[method-assign]
    await queue(gridbot, *(row("42", f"p{i}") for i in range(4)),
                *(row("-100777", f"g{i}") for i in range(3)), row("43", "other"))
    await worker(gridbot, sender, timer).drain_once()
    private = [t for a, t in sent_at if a == "42"]
    group = [t for a, t in sent_at if a == "-100777"]
    assert all(b - a >= 1.0 for a, b in zip(private, private[1:], strict=False))
    assert all(b - a >= 3.0 for a, b in zip(group, group[1:], strict=False))
    assert Counter(a for a, _ in sent_at) == {"42": 4, "-100777": 3, "43": 1}
    assert dict(sent_at)["43"] < 1001.0  # the others did not wait behind the busy chats


async def test_stopping_records_what_was_handed_over_and_requeues_what_waited(
        gridbot: Gridbot, caplog: pytest.LogCaptureFixture) -> None:
    timer = FakeTime()  # never moved on: the second message waits for its send slot
    sender = FakeSender(Limits(per_second=1, concurrency=2), timer=timer)
    await queue(gridbot, row("a", "first"), row("b", "second"))
    outbox = Worker(gridbot, sender, timer).outbox
    waiting = asyncio.Event()
    sleep = timer.sleep

    async def sleep_and_tell(seconds: float) -> None:
        waiting.set()
        await sleep(seconds)

    outbox.limiter.sleep = sleep_and_tell
    outbox.start()
    await waiting.wait()
    with caplog.at_level(logging.ERROR):
        await outbox.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert sender.sent == [("a", "first")]
    assert (await status(gridbot, "first"))[0] == "sent"  # recorded, so not sent again
    async with gridbot.db.transaction() as conn:
        assert await outbox_store.requeue_in_flight(conn) == 1
    assert (await status(gridbot, "second"))[0] == "queued"


# --- fairness: one chat's burst, short bursts in a private chat ------------------------------

TELEGRAM = Limits(per_second=30, per_address_per_second=1, concurrency=8,
                  per_group_per_minute=20, group_prefix="-", per_address_burst=3)


class Recorder(FakeSender):
    """A sender that notes when each message started, and says when `expected` have."""

    def __init__(self, limits: Limits, timer: FakeTime, expected: int) -> None:
        super().__init__(limits, timer=timer)
        self.started: list[tuple[str, str, float]] = []  # (address, body, virtual time)
        self.expected = expected
        self.all_started = asyncio.Event()

    async def send(self, message: StoredOutbound) -> Delivery:
        self.started.append((message.address, message.body, self.timer() if self.timer
                             else 0.0))
        if len(self.started) >= self.expected:
            self.all_started.set()
        return Delivery("sent", provider_id=str(message.id))


async def run_until_all_started(work: Worker, sender: Recorder) -> None:
    """The worker's own background loop, on virtual time, until every message started."""
    async def started() -> int:
        await sender.all_started.wait()
        return len(sender.started)

    work.outbox.start()
    try:
        await work.timer.run(started())
    finally:
        await work.outbox.stop()


def busiest_second(moments: list[float]) -> int:
    ordered = sorted(moments)
    return max(sum(1 for t in ordered[i:] if t < start + 1.0 - 1e-6)
               for i, start in enumerate(ordered))


async def test_one_chats_burst_does_not_hold_up_the_other_chats(gridbot: Gridbot) -> None:
    timer = FakeTime()
    sender = Recorder(TELEGRAM, timer, expected=70)
    await queue(gridbot, *(row("1001", f"burst {i}") for i in range(50)))
    await queue(gridbot, *(row(str(2000 + i), f"help {i}") for i in range(20)))
    await run_until_all_started(Worker(gridbot, sender, timer), sender)
    first = min(t for _, _, t in sender.started)
    others = [t - first for address, _, t in sender.started if address != "1001"]
    assert len(others) == 20
    assert max(others) < 1.0  # not ~29 s behind the burst
    burst = [t for address, _, t in sender.started if address == "1001"]
    assert [b for a, b, _ in sender.started if a == "1001"] == [f"burst {i}" for i in range(50)]
    # The burst chat itself: three at once, then one a second (a token bucket of 3).
    assert all(burst[j] - burst[i] >= (j - i + 1) - 3 - 1e-6
               for i in range(len(burst)) for j in range(i + 1, len(burst)))
    assert burst[-1] - burst[0] >= 46.9
    assert busiest_second([t for _, _, t in sender.started]) <= 30


async def test_a_short_reply_to_a_private_chat_goes_at_once_a_longer_one_is_paced(
        gridbot: Gridbot) -> None:
    timer = FakeTime()
    sender = Recorder(TELEGRAM, timer, expected=6)
    await queue(gridbot, row("42", "地点：翠苑一区3幢"), row("42", "请发送现场照片"))
    await queue(gridbot, *(row("43", f"part {i}") for i in range(4)))
    await run_until_all_started(Worker(gridbot, sender, timer), sender)
    at = {body: t for _, body, t in sender.started}
    assert at["请发送现场照片"] - at["地点：翠苑一区3幢"] < 0.2  # not a second apart
    assert at["part 2"] - at["part 0"] < 0.2
    assert at["part 3"] - at["part 0"] >= 1.0  # the fourth waits for the chat's turn


async def test_a_group_gets_no_burst(gridbot: Gridbot) -> None:
    timer = FakeTime()
    sender = Recorder(TELEGRAM, timer, expected=3)
    await queue(gridbot, *(row("-100777", f"g{i}") for i in range(3)))
    await run_until_all_started(Worker(gridbot, sender, timer), sender)
    group = [t for _, _, t in sender.started]
    assert all(b - a >= 3.0 for a, b in zip(group, group[1:], strict=False))


async def test_a_reply_goes_before_bulk_that_is_already_claimed(gridbot: Gridbot) -> None:
    timer = FakeTime()
    sender = Recorder(Limits(per_second=30, concurrency=8), timer, expected=201)
    await queue(gridbot, *(row(f"r{i}", f"bulk {i}", PRIORITY_BULK) for i in range(200)))
    work = Worker(gridbot, sender, timer)
    bulk_send = sender.send

    async def send(message: StoredOutbound) -> Delivery:
        if message.body == "bulk 40":  # the sender is well into the notice by now
            await queue(gridbot, row("chief", "new case"))
            work.outbox.wake.set()
        return await bulk_send(message)

    sender.send = send  # type: ignore[method-assign]
    claim = work.outbox._claim
    started_at_claim: list[int] = []  # messages started when the reply had been claimed

    async def noted_claim(size: int) -> int:
        claimed = await claim(size)
        if "chief" in work.outbox.held:
            started_at_claim.append(len(sender.started))
        return claimed

    work.outbox._claim = noted_claim  # type: ignore[method-assign]
    await run_until_all_started(work, sender)
    order = [body for _, body, _ in sender.started]
    # Bulk already claimed keeps going while the claim waits for the database (virtual
    # time runs on meanwhile here); once the reply is claimed it is the next to start.
    assert order.index("new case") - started_at_claim[0] <= 1


async def test_claimed_messages_keep_starting_while_a_claim_waits_for_the_database(
        gridbot: Gridbot) -> None:
    """A claim waits behind the other writers (the engine's commits, the outcomes'
    records); the messages the sender already holds do not wait with it."""
    timer = FakeTime()
    # In flight includes the outcome's record, which waits for the lock too: room for ten.
    sender = Recorder(Limits(per_second=10, concurrency=10), timer, expected=10)
    await queue(gridbot, *(row(f"chat{i}", f"m{i}") for i in range(10)))
    work = Worker(gridbot, sender, timer)
    claim = work.outbox._claim
    claimed = asyncio.Event()

    async def noted_claim(size: int) -> int:
        taken = await claim(size)
        if taken:
            claimed.set()
        return taken

    work.outbox._claim = noted_claim  # type: ignore[method-assign]
    locked, release = asyncio.Event(), asyncio.Event()

    async def other_writer() -> None:
        async with gridbot.db.transaction():
            locked.set()
            await release.wait()

    async def all_started() -> int:
        await sender.all_started.wait()
        return len(sender.started)

    work.outbox.start()
    await claimed.wait()  # all ten held, to start a tenth of a (virtual) second apart
    writer = asyncio.ensure_future(other_writer())
    try:
        await locked.wait()
        work.outbox.wake.set()  # new messages were queued: the next claim waits for the lock
        # A guard, not a wait for time: before, the starts stopped behind the claim.
        assert await asyncio.wait_for(timer.run(all_started()), 10.0) == 10
        assert not writer.done()  # all ten started while the database was held elsewhere
    finally:
        release.set()
        await writer
        await work.outbox.stop()
    rows = await gridbot.db.fetchall("SELECT status, count(*) FROM outbox GROUP BY status")
    assert [tuple(r) for r in rows] == [("sent", 10)]


async def test_messages_to_addresses_without_a_limit_take_turns(gridbot: Gridbot) -> None:
    """SMS has no per-number limit, only the overall rate: one number's ten messages
    still do not all go before another number's one."""
    timer = FakeTime()
    sender = Recorder(Limits(per_second=1, concurrency=1), timer, expected=11)
    await queue(gridbot, *(row("+8613900000001", f"long {i}") for i in range(10)))
    await queue(gridbot, row("+8613900000002", "short"))
    await run_until_all_started(Worker(gridbot, sender, timer), sender)
    order = [body for _, body, _ in sender.started]
    assert order.index("short") <= 2


# --- the limits across a takeover (PostgreSQL) or a restart (SQLite) ----------------------------

class ClockedTime(FakeTime):
    """Virtual time that moves the wall clock too, so that what the senders record
    (`sent_at`) and what they pace by go on together."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.epoch = clock.now()
        super().__init__()

    @property  # type: ignore[override]
    def now(self) -> float:
        return self._now

    @now.setter
    def now(self, value: float) -> None:
        self._now = value
        self.clock.current = self.epoch + timedelta(seconds=value - 1000.0)


class Senders:
    """Sender A, then sender B over the same database, on one virtual time: on PostgreSQL
    two processes' senders (each with its own advisory-lock session, A leading first); on
    SQLite one process's sender before a crash and after the restart."""

    def __init__(self, bot: Gridbot) -> None:
        assert isinstance(bot.clock, FakeClock)
        self.bot = bot
        self.timer = ClockedTime(bot.clock)
        self.shared = Leadership(bot.settings.database).shared

    def worker(self, sender: Recorder) -> Worker:
        work = Worker(self.bot, sender, self.timer)
        work.outbox.limiter = RateLimiter(  # the real pacer, margin and all
            sender.limits.per_second, margin=RATE_MARGIN, timer=self.timer,
            sleep=self.timer.sleep)
        if self.shared:
            work.outbox.leadership = Leadership(self.bot.settings.database)
        return work

    async def a_sends_then_dies(self, sender: Recorder) -> None:
        """A sends until `sender.expected` messages started, and dies: its session ends,
        so the role is free (PostgreSQL); what it held is queued again (SQLite's start)."""
        work = self.worker(sender)
        await run_until_all_started(work, sender)
        if work.outbox.leadership is not None:
            await work.outbox.leadership.close()
        async with self.bot.db.transaction() as conn:
            await outbox_store.requeue_in_flight(conn, self.bot.clock.now())

    async def b_takes_over(self, sender: Recorder) -> None:
        """B sends (it takes the role at its first poll) until `sender.expected` started."""
        work = self.worker(sender)
        try:
            await run_until_all_started(work, sender)
        finally:
            if work.outbox.leadership is not None:
                await work.outbox.leadership.close()


async def test_after_a_takeover_a_group_gets_nothing_until_a_minute_after_its_first_of_20(
        gridbot: Gridbot) -> None:
    senders = Senders(gridbot)
    group = "-100777"
    a = Recorder(TELEGRAM, senders.timer, expected=20)
    await queue(gridbot, *(row(group, f"a{i}") for i in range(20)))
    await senders.a_sends_then_dies(a)
    first = a.started[0][2]
    assert a.started[-1][2] - first < 60  # twenty in the minute, 3 s apart
    b = Recorder(TELEGRAM, senders.timer, expected=5)
    await queue(gridbot, *(row(group, f"b{i}") for i in range(5)))
    await senders.b_takes_over(b)
    assert min(t for _, _, t in b.started) >= first + 60.0
    starts = sorted(t for _, _, t in a.started + b.started)
    assert all(starts[i + 20] - starts[i] >= 60.0 for i in range(len(starts) - 20))


async def test_after_a_takeover_the_bot_keeps_30_a_second_and_a_chat_its_burst_then_1_a_second(
        gridbot: Gridbot) -> None:
    senders = Senders(gridbot)
    a = Recorder(TELEGRAM, senders.timer, expected=30)
    await queue(gridbot, *(row("42", f"a{i}") for i in range(3)),
                *(row(str(3000 + i), f"a bulk {i}", PRIORITY_BULK) for i in range(27)))
    await senders.a_sends_then_dies(a)  # a full second's 30, the chat's burst of 3 in it
    b = Recorder(TELEGRAM, senders.timer, expected=33)
    await queue(gridbot, *(row("42", f"b{i}") for i in range(3)),
                *(row(str(4000 + i), f"b bulk {i}", PRIORITY_BULK) for i in range(30)))
    await senders.b_takes_over(b)
    everything = a.started + b.started
    assert busiest_second([t for _, _, t in everything]) <= 30
    chat = sorted(t for address, _, t in everything if address == "42")
    assert len(chat) == 6
    # The chat's token bucket of 3 holds over both senders: 3 at once, then 1 a second.
    assert all(chat[j] - chat[i] >= (j - i + 1) - 3 - 1e-6
               for i in range(len(chat)) for j in range(i + 1, len(chat)))


async def test_what_a_process_still_holds_is_not_queued_again_when_its_lease_ran_out(
        gridbot: Gridbot, clock: FakeClock) -> None:
    """The housekeeping queues again what a dead process held once its lease has passed;
    what its own process holds, it leaves alone however late the renewal (else that
    process would send it twice)."""
    await queue(gridbot, *(row(f"r{i}", f"m{i}") for i in range(3)))
    async with gridbot.db.transaction() as conn:
        taken = await outbox_store.claim(conn, CHANNEL, clock.now(), 3)
    clock.advance(timedelta(minutes=5))  # every lease has long passed
    ours = {m.id for m in taken[:2]}
    async with gridbot.db.transaction() as conn:
        assert await outbox_store.requeue_in_flight(conn, clock.now(), keep=ours) == 1
    assert [(await status(gridbot, m.body))[0] for m in taken] == ["sending", "sending",
                                                                   "queued"]


class HeldSender(FakeSender):
    """Sends once let go: every message is in flight at once before any answer."""

    def __init__(self, limits: Limits, expected: int, timer: FakeTime) -> None:
        super().__init__(limits, timer=timer)
        self.expected = expected
        self.all_in_flight = asyncio.Event()
        self.let_go = asyncio.Event()
        self.in_flight = 0

    async def send(self, message: StoredOutbound) -> Delivery:
        self.in_flight += 1
        if self.in_flight == self.expected:
            self.all_in_flight.set()
        await self.let_go.wait()
        return await super().send(message)


async def test_outcomes_that_arrive_together_are_recorded_in_one_transaction(
        gridbot: Gridbot, monkeypatch: pytest.MonkeyPatch) -> None:
    timer = FakeTime()
    sender = HeldSender(Limits(per_second=1000, concurrency=8), expected=8, timer=timer)
    await queue(gridbot, *(row(f"chat{i}", f"m{i}") for i in range(8)))
    work = worker(gridbot, sender, timer)
    draining = asyncio.ensure_future(work.drain_once())
    await sender.all_in_flight.wait()
    transactions = 0
    real = gridbot.db.transaction

    @contextlib.asynccontextmanager
    async def counted(starts_with_write: bool = False) -> AsyncIterator[Connection]:
        nonlocal transactions
        transactions += 1
        async with real(starts_with_write) as conn:
            yield conn

    monkeypatch.setattr(gridbot.db, "transaction", counted)
    sender.let_go.set()
    assert await draining == 8
    assert transactions == 1  # not one for each of the 8 outcomes
    rows = await gridbot.db.fetchall("SELECT status, count(*) FROM outbox GROUP BY status")
    assert [tuple(r) for r in rows] == [("sent", 8)]


class GatedSender(FakeSender):
    """A sender whose every attempt waits until the test lets it answer, so that what
    is under way at once can be seen."""

    def __init__(self, limits: Limits) -> None:
        super().__init__(limits)
        self.under_way: list[str] = []  # bodies handed over, not yet answered
        self.most_at_once: dict[str, int] = {}
        self.go = asyncio.Event()

    async def send(self, message: StoredOutbound) -> Delivery:
        self.under_way.append(message.body)
        mine = [b for b in self.under_way if b.startswith(message.address)]
        self.most_at_once[message.address] = max(self.most_at_once.get(message.address, 0),
                                                 len(mine))
        await self.go.wait()
        await asyncio.sleep(0)
        self.under_way.remove(message.body)
        return await super().send(message)


async def test_one_chats_messages_go_one_after_another_so_they_arrive_in_order(
        gridbot: Gridbot) -> None:
    """A private chat's burst lets three messages go without waiting a second, but each
    only once the one before it was answered: handed over together, on several
    connections, Telegram could show them in another order. Other chats still go at once."""
    await queue(gridbot, *(row("a", f"a{i}") for i in range(3)), row("b", "b0"))
    sender = GatedSender(Limits(per_second=100, per_address_per_second=1.0,
                               per_address_burst=3, concurrency=8))
    work = worker(gridbot, sender)
    drained = asyncio.ensure_future(work.drain_once())
    for _ in range(50):
        await asyncio.sleep(0.001)
    assert sorted(sender.under_way) == ["a0", "b0"]  # a1 waits for a0's answer
    sender.go.set()
    assert await drained == 4
    assert sender.most_at_once == {"a": 1, "b": 1}
    assert [body for address, body in sender.sent if address == "a"] == ["a0", "a1", "a2"]

"""Senders drain the outbox: per channel, within its rate limits, with retries.

A channel's sender implements `ChannelSender.send`, which makes one attempt and says what
happened (`Delivery`). The `OutboxWorker` of that channel claims due rows (replies and
assignments before bulk), paces them with the channel's limits, and records the outcome:
sent; retry later with exponential backoff (or the provider's retry-after); failed for
good; or stopped, which also marks the contact so nothing more is queued for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol

from bot.domain.clock import Clock
from store import outbox as outbox_store
from store import people as people_store
from store.db import Database
from store.outbox import StoredOutbound

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BASE_BACKOFF_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 600.0
# Starts are spaced this much wider than the rate says, so that arrivals at the provider,
# jittered by the network and the event loop, stay within its limit too (30/s: 28.8/s).
RATE_MARGIN = 0.04


@dataclass(frozen=True)
class Delivery:
    """The outcome of one attempt to send a message."""

    status: Literal["sent", "retry", "failed", "stopped"]
    provider_id: str | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds, when the provider said how long to wait


@dataclass(frozen=True)
class Limits:
    """How fast a channel may send: overall, to one address, and to one group chat.

    `concurrency` is also the crash bound: at most that many messages can be in flight
    (handed to the provider, outcome not yet recorded) when the process dies, and only
    those can be sent a second time after the restart.
    """

    per_second: float
    per_address_per_second: float | None = None
    concurrency: int = 8
    per_group_per_minute: float | None = None  # Telegram: 20 a minute into one group
    group_prefix: str | None = None  # addresses of group chats start with it ("-")

    def gap(self, address: str) -> float:
        """Seconds to leave between two messages to this address (0: no limit)."""
        if self.group_prefix and self.per_group_per_minute and address.startswith(
                self.group_prefix):
            return 60.0 / self.per_group_per_minute
        return 1.0 / self.per_address_per_second if self.per_address_per_second else 0.0


class ChannelSender(Protocol):
    """One channel's way of making a single delivery attempt."""

    channel: str
    limits: Limits

    async def send(self, message: StoredOutbound) -> Delivery:
        """Try to deliver one message; never raise for provider errors."""
        ...


Timer = Callable[[], float]
Sleeper = Callable[[float], Awaitable[None]]


class RateLimiter:
    """Starts spaced evenly at `rate` a second: never a burst, so at most `rate` starts in
    any one-second window, even after the event loop was held up for a while.

    `margin` widens the spacing a little, so that the requests' arrival at the provider,
    jittered by the network and the event loop, also stays within the limit.
    """

    def __init__(self, rate: float, margin: float = 0.0, timer: Timer = time.monotonic,
                 sleep: Sleeper = asyncio.sleep) -> None:
        self.interval = (1.0 / rate if rate > 0 else 1.0) * (1 + margin)
        self.last: float | None = None
        self.timer = timer
        self.sleep = sleep

    async def acquire(self) -> None:
        """Wait until the next start is allowed, and take it.

        A start counts at its planned moment when the event loop woke the waiter a little
        late (less than half an interval), so the cadence does not slow down by the loop's
        lateness; after a longer hold-up it counts from now, so nothing bursts.
        """
        while True:
            now = self.timer()
            if self.last is None:
                self.last = now
                return
            planned = self.last + self.interval
            if now >= planned - 1e-9:
                self.last = planned if now - planned < self.interval / 2 else now
                return
            await self.sleep(planned - now)


class AddressPacer:
    """Spaces the messages to one address (a chat, a group) by its gap.

    Messages to one address take turns (a lock per address, waited for without holding a
    send slot); each waits until the gap has passed since the previous one really started.
    """

    def __init__(self, limits: Limits, timer: Timer = time.monotonic,
                 sleep: Sleeper = asyncio.sleep) -> None:
        self.limits = limits
        self.started: dict[str, float] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.timer = timer
        self.sleep = sleep

    @contextlib.asynccontextmanager
    async def turn(self, address: str) -> AsyncIterator[None]:
        """Hold this address's turn: wait out its gap, then send within the block."""
        gap = self.limits.gap(address)
        if not gap:
            yield
            return
        lock = self.locks.setdefault(address, asyncio.Lock())
        async with lock:
            last = self.started.get(address)
            if last is not None and last + gap > self.timer():
                await self.sleep(last + gap - self.timer())
            yield
        if len(self.locks) > 10_000:  # forget addresses nobody waits for
            now = self.timer()
            self.locks = {a: k for a, k in self.locks.items() if k.locked()}
            self.started = {a: t for a, t in self.started.items()
                            if a in self.locks or now - t < self.limits.gap(a)}

    def mark(self, address: str) -> None:
        """Note that a message to this address starts now."""
        if self.limits.gap(address):
            self.started[address] = self.timer()


def backoff(attempts: int, retry_after: float | None) -> float:
    """Seconds to wait before the next attempt."""
    if retry_after is not None:
        return max(retry_after, 0.0)
    return float(min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0)))


class OutboxWorker:
    """Drains one channel's queue until stopped."""

    def __init__(self, db: Database, sender: ChannelSender, clock: Clock,
                 poll_seconds: float = 1.0) -> None:
        self.db = db
        self.sender = sender
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.limiter = RateLimiter(sender.limits.per_second, margin=RATE_MARGIN)
        self.pacer = AddressPacer(sender.limits)
        self.wake = asyncio.Event()
        # Shared by every batch: at most `concurrency` messages are ever in flight.
        self.gate = asyncio.Semaphore(sender.limits.concurrency)
        self.stopped: set[str] = set()  # addresses that said stop since the last claim
        self._task: asyncio.Task[None] | None = None
        self._tails: set[asyncio.Future[list[None]]] = set()
        # Sends of the current batches: still waiting for their turn, or handed over.
        self._waiting: set[asyncio.Task[Any]] = set()
        self._handed_over: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        """Run in the background."""
        self._task = asyncio.create_task(self.run(), name=f"outbox-{self.sender.channel}")

    async def stop(self) -> None:
        """Stop sending: what was handed to the provider is recorded first; what still
        waited for its turn stays `sending` and is queued again at the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for waiting in list(self._waiting):
            waiting.cancel()
        if self._handed_over:  # a cut here would send them again after the restart
            await asyncio.wait(list(self._handed_over))
        if self._tails:
            await asyncio.gather(*self._tails, return_exceptions=True)

    async def run(self) -> None:
        """Claim and send due messages; sleep until woken or the next poll.

        The next batch is claimed as soon as every message of the current one has started
        (the last ones are still under way), so the rate does not dip between batches.
        """
        while True:
            sent = await self._drain(None, wait=False)
            if sent == 0:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.poll_seconds)

    async def drain_once(self, batch: int | None = None) -> int:
        """Send what is due now, up to `batch` messages (default: about a second's worth,
        so a reply never waits long behind bulk), and record every outcome; return how
        many were tried."""
        return await self._drain(batch, wait=True)

    async def _drain(self, batch: int | None, *, wait: bool) -> int:
        size = batch or min(200, max(10, int(self.sender.limits.per_second)))
        self.pacer.limits = self.sender.limits  # a test may have lifted them
        async with self.db.transaction() as conn:
            messages = await outbox_store.claim(conn, self.sender.channel, self.clock.now(),
                                                size)
        if not messages:
            return 0
        if not self._tails:  # the claim left out whoever stopped before it
            self.stopped.clear()
        waiting = len(messages)
        all_started = asyncio.Event()

        def started() -> None:
            nonlocal waiting
            waiting -= 1
            if waiting == 0:
                all_started.set()

        async def one(message: StoredOutbound) -> None:
            me = asyncio.current_task()
            assert me is not None
            self._waiting.add(me)
            try:
                # The address's turn is waited for before taking a slot: others go on.
                async with self.pacer.turn(message.address), self.gate:
                    if message.address in self.stopped:
                        started()
                        await self._record(message, Delivery("failed",
                                                             error="recipient opted out"))
                        return
                    await self.limiter.acquire()
                    # Handed over from here: stop() waits for the outcome to be recorded.
                    self._waiting.discard(me)
                    self._handed_over.add(me)
                    started()
                    self.pacer.mark(message.address)
                    await self._send_and_record(message)
            finally:
                self._waiting.discard(me)
                self._handed_over.discard(me)

        batch_done = asyncio.gather(*(one(m) for m in messages))
        if wait:
            await batch_done
            return len(messages)
        self._tails.add(batch_done)
        batch_done.add_done_callback(self._tail_done)
        begun: asyncio.Future[Any] = asyncio.ensure_future(all_started.wait())
        either: set[asyncio.Future[Any]] = {batch_done, begun}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            begun.cancel()
        return len(messages)

    async def _send_and_record(self, message: StoredOutbound) -> None:
        try:
            delivery = await self.sender.send(message)
        except Exception as exc:  # noqa: BLE001 - a sender bug must not stop sending
            log.exception("sender %s failed on %s", self.sender.channel, message.id)
            delivery = Delivery("retry", error=f"{type(exc).__name__}: {exc}")
        if delivery.status == "stopped":
            self.stopped.add(message.address)
        await self._record(message, delivery)

    def _tail_done(self, tail: asyncio.Future[list[None]]) -> None:
        self._tails.discard(tail)
        if tail.cancelled():
            return
        error = tail.exception()
        # Stopping cancels the sends under way: gather reports that as an exception.
        if error is not None and not isinstance(error, asyncio.CancelledError):
            log.error("sending a batch on %s failed", self.sender.channel,
                      exc_info=error)

    async def _record(self, message: StoredOutbound, delivery: Delivery) -> None:
        now = self.clock.now()
        async with self.db.transaction() as conn:
            if delivery.status == "sent":
                await outbox_store.record_sent(conn, message.id, delivery.provider_id, now)
            elif delivery.status == "stopped":
                await outbox_store.record_failed(conn, message.id,
                                                 delivery.error or "recipient stopped")
                await people_store.set_opted_out(conn, message.channel, message.address, True)
            elif delivery.status == "retry":
                attempts = await outbox_store.attempts_of(conn, message.id)
                if attempts >= MAX_ATTEMPTS:
                    await outbox_store.record_failed(
                        conn, message.id, f"gave up after {attempts} attempts: {delivery.error}")
                else:
                    wait = backoff(attempts, delivery.retry_after)
                    await outbox_store.record_retry(conn, message.id, delivery.error or "retry",
                                                    now + timedelta(seconds=wait))
            else:
                await outbox_store.record_failed(conn, message.id, delivery.error or "failed")

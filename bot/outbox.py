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
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, Protocol

from bot.clock import Clock
from store import outbox as outbox_store
from store import people as people_store
from store.db import Database
from store.outbox import StoredOutbound

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BASE_BACKOFF_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 600.0


@dataclass(frozen=True)
class Delivery:
    """The outcome of one attempt to send a message."""

    status: Literal["sent", "retry", "failed", "stopped"]
    provider_id: str | None = None
    error: str | None = None
    retry_after: float | None = None  # seconds, when the provider said how long to wait


@dataclass(frozen=True)
class Limits:
    """How fast a channel may send: overall, and to one address."""

    per_second: float
    per_address_per_second: float | None = None
    concurrency: int = 8


class ChannelSender(Protocol):
    """One channel's way of making a single delivery attempt."""

    channel: str
    limits: Limits

    async def send(self, message: StoredOutbound) -> Delivery:
        """Try to deliver one message; never raise for provider errors."""
        ...


class RateLimiter:
    """At most `rate` starts in any one-second window (a sliding log of start times)."""

    def __init__(self, rate: float) -> None:
        self.capacity = max(1, int(rate))
        self.window = self.capacity / rate if rate > 0 else 1.0
        self.starts: deque[float] = deque()

    async def acquire(self) -> None:
        """Wait until one more start fits in the window."""
        while True:
            now = time.monotonic()
            while self.starts and now - self.starts[0] >= self.window:
                self.starts.popleft()
            if len(self.starts) < self.capacity:
                self.starts.append(now)
                return
            await asyncio.sleep(self.window - (now - self.starts[0]))


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
        self.limiter = RateLimiter(sender.limits.per_second)
        self.last_to_address: dict[str, float] = {}
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run in the background."""
        self._task = asyncio.create_task(self.run(), name=f"outbox-{self.sender.channel}")

    async def stop(self) -> None:
        """Stop after the sends under way (their outcome is recorded)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run(self) -> None:
        """Claim and send due messages; sleep until woken or the next poll."""
        while True:
            sent = await self.drain_once()
            if sent == 0:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.poll_seconds)

    async def drain_once(self, batch: int = 100) -> int:
        """Send what is due now, up to `batch` messages; return how many were tried."""
        async with self.db.transaction() as conn:
            messages = await outbox_store.claim(conn, self.sender.channel, self.clock.now(),
                                                batch)
        if not messages:
            return 0
        gate = asyncio.Semaphore(self.sender.limits.concurrency)

        async def one(message: StoredOutbound) -> None:
            async with gate:
                await self._pace(message.address)
                try:
                    delivery = await self.sender.send(message)
                except Exception as exc:  # noqa: BLE001 - a sender bug must not stop sending
                    log.exception("sender %s failed on %s", self.sender.channel, message.id)
                    delivery = Delivery("retry", error=f"{type(exc).__name__}: {exc}")
                await self._record(message, delivery)

        await asyncio.gather(*(one(m) for m in messages))
        return len(messages)

    async def _pace(self, address: str) -> None:
        per_address = self.sender.limits.per_address_per_second
        if per_address:
            gap = 1.0 / per_address
            last = self.last_to_address.get(address)
            if last is not None and time.monotonic() - last < gap:
                await asyncio.sleep(gap - (time.monotonic() - last))
            self.last_to_address[address] = time.monotonic()
        await self.limiter.acquire()

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

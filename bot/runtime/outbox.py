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
import heapq
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol

from bot.domain.clock import Clock
from bot.runtime.supervisor import TRANSIENT_ERRORS, Health, Reporter, Supervisor
from store import outbox as outbox_store
from store import people as people_store
from store.db import Connection, Database
from store.leader import Leadership
from store.outbox import PRIORITY_REPLY, StoredOutbound

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BASE_BACKOFF_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 600.0
# Starts are spaced this much wider than the rate says, so that arrivals at the provider,
# jittered by the network and the event loop, stay within its limit too (30/s: 28.8/s).
RATE_MARGIN = 0.04
MAX_HELD = 2000  # claimed messages waiting in memory for their address's turn, at most
STOPPING_RECORD_TRIES = 3  # when stopping, an outcome the database refuses is given up
# Several processes: a new sender for a channel starts this long after taking the role.
TAKEOVER_PAUSE = 1.0
# ...and renews the leases of what it holds this often (a lease is GRIDBOT_LEASE_SECONDS,
# 60 by default; at least 2 here: a lease shorter than twice this would run out on a
# live process).
RENEW_SECONDS = 0.5
# A sender that starts sending for a channel (a takeover, or the first start after a crash)
# first reads what the channel sent this long back, and counts it against its limits.
SEEN_SECONDS = 60.0
# `sent_at` is stored to the second and written when the provider answered: a send counts
# as made at the end of its stored second, never earlier than it was.
STAMP_RESOLUTION = 1.0


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

    One address gets a token bucket: `per_address_burst` messages at once, then one every
    1/`per_address_per_second` seconds; a group chat one every 60/`per_group_per_minute`
    seconds, never in a burst.

    `concurrency` is also the crash bound: at most that many messages can be in flight
    (handed to the provider, outcome not yet recorded) when the process dies, and only
    those can be sent a second time after the restart.
    """

    per_second: float
    per_address_per_second: float | None = None
    concurrency: int = 8
    per_group_per_minute: float | None = None  # Telegram: 20 a minute into one group
    group_prefix: str | None = None  # addresses of group chats start with it ("-")
    per_address_burst: int = 1

    def turn(self, address: str) -> tuple[float, int]:
        """(seconds between two messages to this address, burst); (0, 0): no limit."""
        if self.group_prefix and self.per_group_per_minute and address.startswith(
                self.group_prefix):
            return 60.0 / self.per_group_per_minute, 1
        if self.per_address_per_second:
            return 1.0 / self.per_address_per_second, max(1, self.per_address_burst)
        return 0.0, 0

    def gap(self, address: str) -> float:
        """Seconds to leave between two messages to this address after a burst (0: none)."""
        return self.turn(address)[0]


# A delivery's outcome waiting to be recorded, and where its delivery waits for that.
_Outcome = tuple[StoredOutbound, Delivery, "asyncio.Future[None]"]


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
        # The actual moments of the last `rate` starts: the start `rate` ago must be a full
        # second old, which the planned cadence alone does not ensure after a late wake.
        self.recent: deque[float] = deque(maxlen=max(1, int(rate)))

    async def acquire(self) -> None:
        """Wait until the next start is allowed, and take it.

        A start counts at its planned moment when the event loop woke the waiter a little
        late (less than half an interval), so the cadence does not slow down by the loop's
        lateness; after a longer hold-up it counts from now, so nothing bursts. Either way a
        start waits until the one `rate` starts before it is a second old, so a late start
        followed by punctual ones cannot put `rate` + 1 into one second.
        """
        while True:
            now = self.timer()
            if self.last is None:
                self.last = now
                self.recent.append(now)
                return
            planned = self.last + self.interval
            full = len(self.recent) == self.recent.maxlen
            window_opens = self.recent[0] + 1.0 if full else now
            if now >= planned - 1e-9 and now >= window_opens:
                self.last = planned if now - planned < self.interval / 2 else now
                self.recent.append(now)
                return
            await self.sleep(max(planned, window_opens) - now)

    def seed(self, starts: list[float]) -> None:
        """Count starts made elsewhere (another process, or this one before a restart),
        at these moments of `timer`, oldest first: the next start keeps the spacing and
        the one-second window after them as if this limiter had made them."""
        if not starts:
            return
        merged = sorted([*self.recent, *starts])
        self.recent.clear()
        self.recent.extend(merged[-(self.recent.maxlen or 1):])
        self.last = max(self.last if self.last is not None else merged[-1], merged[-1])


class AddressTurns:
    """A token bucket per address: who may start now, and when the others may.

    An address's bucket holds up to `burst` starts and refills one every `gap` seconds
    (`Limits.turn`); a start takes one. So a private chat can get a short reply of two or
    three messages at once, then one a second; a group gets one every three seconds.
    """

    def __init__(self, limits: Limits, timer: Timer = time.monotonic) -> None:
        self.limits = limits
        self.timer = timer
        self.buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, as of)

    def _tokens(self, address: str, gap: float, burst: int, now: float) -> float:
        state = self.buckets.get(address)
        if state is None:
            return float(burst)
        tokens, at = state
        return min(float(burst), tokens + (now - at) / gap)

    def ready_at(self, address: str) -> float:
        """When the next message to this address may start: now, or a moment later."""
        gap, burst = self.limits.turn(address)
        now = self.timer()
        if not gap:
            return now
        tokens = self._tokens(address, gap, burst, now)
        return now if tokens >= 1 - 1e-9 else now + (1 - tokens) * gap

    def seed(self, address: str, starts: list[float]) -> None:
        """Count starts to this address made elsewhere, at these moments of `timer`
        (oldest first): its bucket is what it would be had they been taken here, unless
        this one's own is emptier."""
        gap, burst = self.limits.turn(address)
        if not gap or not starts:
            return
        tokens, at = float(burst), starts[0]
        for moment in starts:
            tokens = min(float(burst), tokens + (moment - at) / gap) - 1
            at = moment
        now = self.timer()
        own = self.buckets.get(address)
        if own is None or self._tokens(address, gap, burst, now) > min(
                float(burst), tokens + (now - at) / gap):
            self.buckets[address] = (tokens, at)

    def take(self, address: str) -> None:
        """A message to this address starts now."""
        gap, burst = self.limits.turn(address)
        if not gap:
            return
        now = self.timer()
        self.buckets[address] = (self._tokens(address, gap, burst, now) - 1, now)
        if len(self.buckets) > 10_000:  # forget the full buckets: they start full anyway
            self.buckets = {a: (t, at) for a, (t, at) in self.buckets.items()
                            if self._tokens(a, *self.limits.turn(a), now)
                            < self.limits.turn(a)[1]}


def backoff(attempts: int, retry_after: float | None) -> float:
    """Seconds to wait before the next attempt."""
    if retry_after is not None:
        return max(retry_after, 0.0)
    return float(min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0)))


class OutboxWorker:
    """Drains one channel's queue until stopped: each address in its turn, the best first.

    Claimed messages wait in memory by address (`held`, still `sending` in the database,
    so a restart queues them again). Only each address's first message competes for a
    start: at once when its address's bucket allows, else at the moment it will. Among
    those, replies and assignments go before bulk, and addresses take turns (start-time
    fair queuing: an address's k-th message goes after the others' first ones). A chat
    waiting for its turn is skipped by the next claims, so one chat's burst never holds up
    the messages to anyone else, and the channel's overall rate and concurrency (the
    crash bound) hold for the whole.

    A database error (locked, busy) neither loses a message nor stops the worker: it is
    reported to the health registry, and the claim or the record is tried again after a
    growing pause; a delivery's outcome is kept in memory until it is recorded.
    """

    def __init__(self, db: Database, sender: ChannelSender, clock: Clock,
                 poll_seconds: float = 1.0, health: Reporter | None = None,
                 timer: Timer = time.monotonic, sleep: Sleeper = asyncio.sleep) -> None:
        self.db = db
        self.sender = sender
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.name = f"outbox-{sender.channel}"
        self.health = health or Health(clock).reporter(self.name)
        self.timer = timer
        self.sleep = sleep
        self.limiter = RateLimiter(sender.limits.per_second, margin=RATE_MARGIN, timer=timer,
                                   sleep=sleep)
        self.turns = AddressTurns(sender.limits, timer)
        self.wake = asyncio.Event()
        # Shared by every send: at most `concurrency` messages are ever in flight.
        self.gate = asyncio.Semaphore(sender.limits.concurrency)
        self.stopped: set[str] = set()  # addresses that said stop, while messages to them wait
        self.held: dict[str, deque[StoredOutbound]] = {}  # claimed, not started, by address
        self._held = 0
        self._ready: list[tuple[int, int, int, str]] = []  # (priority, turn, id, address)
        self._later: list[tuple[float, int, str]] = []  # (when its turn comes, seq, address)
        self._order = itertools.count()
        self._round = 0  # the fair-queuing turn of the latest start
        self._rounds: dict[str, int] = {}  # address -> the turn of its latest message
        self._flying: Counter[str] = Counter()  # addresses with a message in flight
        # Addresses whose attempt is under way, and those of them whose next message waits
        # for its answer: one chat's messages go one after another, or they could arrive
        # in another order (several connections, the provider's own queues).
        self._sending: set[str] = set()
        self._parked: set[str] = set()
        self._unparked = asyncio.Event()
        self._flying_ids: set[int] = set()  # the messages in flight
        self._in_flight: set[asyncio.Task[None]] = set()
        self._outcomes: list[_Outcome] = []  # delivered, not recorded yet
        self._recorder: asyncio.Task[None] | None = None
        self._more = True  # the latest claim may have left due messages behind
        self._claiming: asyncio.Task[None] | None = None  # the background loop's claim
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # With several processes on PostgreSQL one process sends for a channel, so that its
        # pacer sees every message and the provider's limits hold for all together
        # (store/leader.py). None: always this process.
        self.leadership: Leadership | None = None
        self._led = False
        self.sent_count = 0  # deliveries the provider accepted (/metrics)
        self.error_count = 0  # attempts the provider refused or failed (/metrics)

    async def _leads(self) -> bool:
        """Whether this process sends for the channel now (taking the role if free).

        When it starts sending — it has just taken the role from another process, or it
        is the first start after a crash on SQLite — it first counts what the channel
        sent in the last minute (`_count_recent_sends`), so that a group that had its 20
        this minute, a chat its burst, or the bot its 30 this second get nothing more
        until the limits allow. A process that has just taken the role also waits
        `TAKEOVER_PAUSE` before its first send: the process it took over from may have
        handed messages to the provider whose sending it never recorded, and its last
        second and this one's first together must stay within the limits (overall, and
        1 a second per chat).
        """
        leads = True if self.leadership is None else await self.leadership.holds(self.name)
        if leads and not self._led:
            await self._count_recent_sends()
            if self.leadership is not None:
                self.limiter.last = max(self.limiter.last or 0.0, self.timer()
                                        + TAKEOVER_PAUSE - self.limiter.interval)
        self._led = leads
        return leads

    async def _count_recent_sends(self) -> None:
        """Seed the pacers with the channel's sends of the last `SEEN_SECONDS` (recorded
        by any process), each counted at the end of its stored second."""
        now = self.clock.now()
        async with self.db.transaction() as conn:
            sends = await outbox_store.recent_sends(conn, self.sender.channel,
                                                    now - timedelta(seconds=SEEN_SECONDS))
        if not sends:
            return
        timer_now = self.timer()
        # Wall-clock stamps onto this worker's timer; never later than one stored second
        # ahead (a clock set back must not silence the channel).
        moments: list[tuple[str, float]] = [
            (address, timer_now - min(SEEN_SECONDS, max(
                -STAMP_RESOLUTION, (now - sent).total_seconds() - STAMP_RESOLUTION)))
            for address, sent in sends]
        self.turns.limits = self.sender.limits
        self.limiter.seed([moment for _, moment in moments])
        per_address: dict[str, list[float]] = {}
        for address, moment in moments:
            per_address.setdefault(address, []).append(moment)
        for address, starts in per_address.items():
            self.turns.seed(address, starts)
        log.info("%s: counted %d messages sent in the last %.0f s against the limits",
                 self.name, len(sends), SEEN_SECONDS)

    @property
    def batch(self) -> int:
        """How many messages to claim at a time: about a second's worth."""
        return min(200, max(10, int(self.sender.limits.per_second)))

    @property
    def low_water(self) -> int:
        """Claim again when fewer messages than this are ready to start: half a batch."""
        return max(1, self.batch // 2)

    def start(self, supervisor: Supervisor | None = None) -> None:
        """Run in the background (under the supervisor, which restarts it should it die)."""
        self._stopping = False
        if supervisor is not None:
            self._task = supervisor.start(self.name, self.run)
        else:
            self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        """Stop sending: what was handed to the provider is recorded first; what still
        waited for its turn stays `sending` and is queued again at the next start."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._in_flight:  # a cut here would send them again after the restart
            await asyncio.wait(list(self._in_flight))

    async def run(self) -> None:
        """Start each claimed message as its turn comes, and claim due ones alongside;
        sleep until woken, a claim's end, the next turn or the next poll. Database errors
        are reported and waited out.

        A claim runs as its own task, so the messages already held keep starting while
        it waits for the database (behind the engine's commits and the outcomes' records):
        run inline, every start that set `_more` paid a claim transaction first, and
        under load the sender started no faster than the claims went.
        """
        self._more = True
        poll_at = renew_at = self.timer()
        try:
            while True:
                if self._claiming is not None and self._claiming.done():
                    claiming, self._claiming = self._claiming, None
                    claiming.result()  # a claim's unexpected error stops the worker
                if self.leadership is not None and self.timer() >= renew_at:
                    try:
                        await self._renew_leases()
                    except TRANSIENT_ERRORS as exc:
                        await self.sleep(self.health.failed(exc))
                        continue
                    renew_at = self.timer() + RENEW_SECONDS
                if self._claiming is None and (self.timer() >= poll_at
                                               or self._should_claim()):
                    self.wake.clear()
                    poll_at = self.timer() + self.poll_seconds
                    self._claiming = asyncio.create_task(self._claim_round(),
                                                         name=f"{self.name}-claim")
                    await asyncio.sleep(0)  # let it take the lock if free: no 1-start delay
                if await self._start_next():
                    continue
                # A claim under way wakes the loop as it ends, and an answer a chat's next
                # message waits for as it comes (the send's own timeout bounds it): no
                # poll until then.
                until = None if self._claiming or self._parked else poll_at
                if self._later:
                    turn = self._later[0][0]
                    until = turn if until is None else min(until, turn)
                await self._nap(None if until is None else until - self.timer())
        finally:
            if self._claiming is not None:
                self._claiming.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._claiming
                self._claiming = None

    async def _claim_round(self) -> None:
        """One claim of the background loop, if this process sends for the channel; a
        database error is reported and waited out here, not in the starts."""
        try:
            if await self._leads():
                await self._claim(self.batch)
        except TRANSIENT_ERRORS as exc:
            self._more = True
            await self.sleep(self.health.failed(exc))
            return
        self.health.ok()

    def _should_claim(self) -> bool:
        """Whether to claim before the next poll: when new messages were queued (woken)
        or more were left behind, once the ready ones run low, or at once when the best
        ready one is bulk (a new reply goes first).

        Claiming at every start or every engine commit instead cost the webhook a tenth
        of its rate: a claim is a write transaction that scans past every waiting address.
        """
        if not (self.wake.is_set() or self._more):
            return False
        if len(self._ready) < self.low_water:
            return True
        return self.wake.is_set() and self._ready[0][0] > PRIORITY_REPLY

    async def drain_once(self, batch: int | None = None) -> int:
        """Send what is due now, up to `batch` messages (default: about a second's worth),
        each address in its turn, and record every outcome; return how many were tried."""
        limit = batch or self.batch
        tried = 0
        self._more = True
        while tried < limit:
            if self._more and self._held < limit - tried:
                await self._claim(limit - tried - self._held)
            if await self._start_next():
                tried += 1
            elif self._later:
                await self.sleep(self._later[0][0] - self.timer())
            elif self._parked:  # their next messages wait for an answer under way
                await asyncio.wait(list(self._in_flight), return_when=asyncio.FIRST_COMPLETED)
            else:
                break
        if self._in_flight:
            await asyncio.wait(list(self._in_flight))
        return tried

    # --- claiming and taking turns -------------------------------------------------------

    def holding(self) -> set[int]:
        """The messages this worker holds: claimed and waiting for their turn, or being
        sent (their rows are `sending`)."""
        return {m.id for queue in self.held.values() for m in queue} | self._flying_ids

    async def _renew_leases(self) -> None:
        """With several processes: what this one holds keeps its lease (each poll)."""
        if self.leadership is None:
            return
        ids = self.holding()
        if ids:
            async with self.db.transaction() as conn:
                await outbox_store.extend_leases(conn, ids, self.clock.now())

    async def _claim(self, size: int) -> int:
        """Claim due messages for addresses not already waiting; return how many."""
        limits = self.sender.limits
        self.turns.limits = limits  # a test may have lifted them
        room = min(size, MAX_HELD - self._held)
        if room <= 0:
            return 0
        # Who said stop is known to the claim's query once nothing to them is under way.
        self.stopped = {a for a in self.stopped if a in self.held or self._flying[a]}
        per_address = max(1, limits.per_address_burst) if limits.per_address_per_second \
            else None
        # An address whose last held message starts while this claim runs (the loop
        # claims in the background) sets `_more` again: its further messages are due.
        self._more = False
        try:
            async with self.db.transaction() as conn:
                messages = await outbox_store.claim(conn, self.sender.channel,
                                                    self.clock.now(), room,
                                                    skip=self.held.keys(),
                                                    per_address=per_address)
        except BaseException:
            self._more = True
            raise
        self._more = self._more or len(messages) >= room
        for message in messages:
            queue = self.held.get(message.address)
            if queue is None:
                self.held[message.address] = deque([message])
                self._schedule(message.address)
            else:
                queue.append(message)
            self._held += 1
        return len(messages)

    def _schedule(self, address: str) -> None:
        """Put the address's first waiting message where it belongs: ready, or later, or
        parked until the address's attempt under way is answered."""
        if address in self._sending:
            self._parked.add(address)
            return
        at = self.turns.ready_at(address)
        if at > self.timer():
            heapq.heappush(self._later, (at, next(self._order), address))
        else:
            self._make_ready(address)

    def _make_ready(self, address: str) -> None:
        head = self.held[address][0]
        turn = max(self._round, self._rounds.get(address, 0)) + 1
        self._rounds[address] = turn
        heapq.heappush(self._ready, (head.priority, turn, head.id, address))

    def _promote(self) -> None:
        """Make ready the addresses whose turn has come."""
        now = self.timer()
        while self._later and self._later[0][0] <= now:
            self._make_ready(heapq.heappop(self._later)[2])

    async def _start_next(self) -> bool:
        """Start the best message whose turn has come, within the rate and concurrency;
        False when none may start now."""
        self._promote()
        if not self._ready:
            return False
        await self.gate.acquire()
        try:
            await self.limiter.acquire()
        except BaseException:
            self.gate.release()
            raise
        self._promote()  # time went on: a better one may be ready now
        _, turn, _, address = heapq.heappop(self._ready)
        queue = self.held[address]
        message = queue.popleft()
        self._held -= 1
        self._round = max(self._round, turn)
        if address not in self.stopped:
            self.turns.take(address)
        self._sending.add(address)
        if queue:
            self._schedule(address)
        else:  # the next claim may take this address's further messages
            del self.held[address]
            self._rounds.pop(address, None)
            self._more = True
        self._flying[address] += 1
        self._flying_ids.add(message.id)
        task = asyncio.create_task(self._deliver(message), name=f"{self.name}-{message.id}")
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return True

    async def _nap(self, seconds: float | None) -> None:
        """Wait that long (None: no limit), or until woken, or until the claim under way
        ends (woken meanwhile, the next claim waits for that one's end anyway)."""
        if self._unparked.is_set():
            self._unparked.clear()
            return
        if seconds is not None and seconds <= 0 or (self.wake.is_set()
                                                     and self._claiming is None):
            return
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._unparked.wait())}
        if seconds is not None:
            waiters.add(asyncio.ensure_future(self.sleep(seconds)))
        if self._claiming is None:
            waiters.add(asyncio.ensure_future(self.wake.wait()))
        try:
            await asyncio.wait({*waiters, *([self._claiming] if self._claiming else [])},
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # --- sending and recording -----------------------------------------------------------

    async def _deliver(self, message: StoredOutbound) -> None:
        """One attempt (unless the address said stop meanwhile), its outcome recorded."""
        try:
            try:
                if message.address in self.stopped:
                    delivery = Delivery("failed", error="recipient opted out")
                else:
                    delivery = await self._attempt(message)
                    if delivery.status == "sent":
                        self.sent_count += 1
                    else:
                        self.error_count += 1
            finally:
                self._answered(message.address)
            await self._record_surely(message, delivery)
        finally:
            self._flying_ids.discard(message.id)
            self._flying[message.address] -= 1
            if self._flying[message.address] <= 0:
                del self._flying[message.address]
            self.gate.release()

    def _answered(self, address: str) -> None:
        """The address's attempt is over: its next message, if held, takes its turn."""
        self._sending.discard(address)
        if address in self._parked:
            self._parked.discard(address)
            if address in self.held:
                self._schedule(address)
                self._unparked.set()

    async def _attempt(self, message: StoredOutbound) -> Delivery:
        try:
            delivery = await self.sender.send(message)
        except Exception as exc:  # noqa: BLE001 - a sender bug must not stop sending
            log.exception("sender %s failed on %s", self.sender.channel, message.id)
            delivery = Delivery("retry", error=f"{type(exc).__name__}: {exc}")
        if delivery.status == "stopped":
            self.stopped.add(message.address)
        return delivery

    async def _record_surely(self, message: StoredOutbound, delivery: Delivery) -> None:
        """Record the outcome, waiting out database errors: the provider has the message,
        so forgetting the outcome would send it again after the next restart.

        Outcomes are recorded together (group commit): the one recorder at a time writes
        every outcome that arrived while it waited for the database in one transaction,
        instead of one transaction (three round trips to its thread) per message.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outcomes.append((message, delivery, done))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_waiting(),
                                                 name=f"{self.name}-record")
        await asyncio.shield(done)

    async def _record_waiting(self) -> None:
        """Record the outcomes waiting, a transaction for all of them, until none waits."""
        failures = 0
        while self._outcomes:
            batch: list[_Outcome] = []
            try:
                async with self.db.transaction() as conn:
                    # Taken once the lock is held: what arrived while waiting comes along.
                    batch, self._outcomes = self._outcomes, []
                    for message, delivery, _ in batch:
                        await self._record(conn, message, delivery)
            except TRANSIENT_ERRORS as exc:
                self._outcomes[:0] = batch  # kept in memory, first in line again
                failures += 1
                delay = self.health.failed(exc)
                if self._stopping and failures >= STOPPING_RECORD_TRIES:
                    for message, delivery, done in self._outcomes:
                        log.error("the outcome of outbox %s (%s) could not be recorded; it"
                                  " is queued again at the next start", message.id,
                                  delivery.status)
                        done.set_result(None)
                    self._outcomes = []
                    return
                await self.sleep(min(delay, 1.0) if self._stopping else delay)
                continue
            except Exception:  # noqa: BLE001 - find the culprit: one transaction each
                log.warning("recording %d outcomes failed; recording them one by one",
                            len(batch))
                for item in batch:
                    await self._record_alone(item)
                continue
            if failures:
                self.health.ok()
                failures = 0
            for _, _, done in batch:
                done.set_result(None)

    async def _record_alone(self, item: _Outcome) -> None:
        """Record one outcome in its own transaction; its error goes to its delivery."""
        message, delivery, done = item
        try:
            async with self.db.transaction() as conn:
                await self._record(conn, message, delivery)
        except TRANSIENT_ERRORS:
            self._outcomes.insert(0, item)  # the database, not the row: again with the rest
            return
        except Exception as exc:  # noqa: BLE001 - its delivery's task hears of it
            done.set_exception(exc)
            return
        done.set_result(None)

    async def _record(self, conn: Connection, message: StoredOutbound,
                      delivery: Delivery) -> None:
        now = self.clock.now()
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

"""The scheduler: APScheduler as a clock, the database as the memory.

APScheduler 3.11's `AsyncIOScheduler` only says "now" — every `GRIDBOT_TICK_SECONDS`,
and at the digest and weekly meeting times. Each tick asks the services what is due at
the injected clock's time, each step in its own transactions:

- scheduled notices and meeting invitations (also right after one is confirmed: `poke`;
  bot/services/notices.py, meetings.py);
- the case timers: breaches, 80 % warnings, rating reminders (bot/services/deadlines.py);
- meeting reminders a day and an hour before;
- departments' own Open311 systems: dispatched cases POSTed, their updates pulled
  (bot/services/open311_outbound.py);
- the morning and evening digests and the weekly meeting notice
  (bot/services/digests.py), each occurrence once;
- SQLite's planner statistics, taken again when the cases have doubled (store/planner.py).

Timers are columns on the rows (cleared once acted on) and each occurrence of a job is
recorded when it runs, so a restart loses nothing, repeats nothing, and a late start
catches up once: only the latest missed occurrence of a job runs, if within `GRACE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.domain.clock import Clock, iso
from bot.runtime.supervisor import TRANSIENT_ERRORS, Health, Reporter, backoff_delay
from bot.services import meetings, notices
from bot.services.deadlines import Deadlines
from bot.services.digests import Digests
from bot.services.open311_outbound import DepartmentSystems
from bot.services.reference import ReferenceData
from bot.services.render import Renderer
from bot.settings import Settings, crontab_fields
from store import notices as notice_store
from store import planner
from store import schedule as schedule_store
from store.db import Database
from store.leader import Leadership

log = logging.getLogger(__name__)

GRACE = timedelta(hours=12)  # a job occurrence missed by more than this is not run late


@dataclass(frozen=True)
class Job:
    """A job that runs at the times of a cron trigger."""

    name: str
    trigger: CronTrigger
    run: Callable[[datetime], Awaitable[int]]  # (now) -> messages queued


def latest_occurrence(trigger: CronTrigger, now: datetime,
                      grace: timedelta = GRACE) -> datetime | None:
    """The latest time the trigger fired in (now - grace, now], if any."""
    latest = None
    moment = trigger.get_next_fire_time(None, now - grace)
    while moment is not None and moment <= now:
        latest = moment
        moment = trigger.get_next_fire_time(moment, moment + timedelta(microseconds=1))
    return latest


class Scheduler:
    """Everything that happens because time passes."""

    def __init__(self, db: Database, reference: ReferenceData, renderer: Renderer, clock: Clock,
                 settings: Settings, health: Reporter | None = None) -> None:
        self.db = db
        self.reference = reference
        self.renderer = renderer
        self.clock = clock
        self.settings = settings
        self.outreach = notices.Outreach(renderer, reference, settings.quiet_hours)
        self.deadlines = Deadlines(db, reference, renderer, self.outreach)
        self.digests = Digests(db, reference, renderer, self.outreach)
        self.departments = DepartmentSystems(db, reference, renderer, clock)
        self.jobs = self._jobs()
        self.on_queued: list[Callable[[], None]] = []  # told when messages were queued
        self._lock = asyncio.Lock()
        self._aps: AsyncIOScheduler | None = None
        self._poked: asyncio.Task[None] | None = None
        self._ran: dict[str, str] = {}  # job -> latest period known to have run
        self.health = health or Health(clock).reporter("scheduler")
        self._retry: asyncio.Task[None] | None = None  # an early tick after a database error
        # With several processes on PostgreSQL the sweeps run in the one holding this role
        # (store/leader.py); bootstrap hands it in. None: always this process.
        self.leadership: Leadership | None = None
        self.sweep_seconds: dict[str, float] = {}  # each step's latest duration (/metrics)
        self.skipped_ticks = 0  # clock ticks skipped because the previous one still ran

    # --- the clock ---------------------------------------------------------------------

    def start(self) -> None:
        """Start ticking: every GRIDBOT_TICK_SECONDS and at each job's time."""
        aps = AsyncIOScheduler(timezone=self.reference.tz)
        # A job returns at once while a tick runs (`_clock_tick`), so APScheduler never
        # reaches its instance limit and logs no "maximum number of running instances".
        options: dict[str, Any] = {"max_instances": 3, "coalesce": True,
                                   "misfire_grace_time": None}
        aps.add_job(self._clock_tick, IntervalTrigger(seconds=self.settings.tick_seconds),
                    id="tick", next_run_time=datetime.now(self.reference.tz), **options)
        for job in self.jobs:
            aps.add_job(self._clock_tick, job.trigger, id=f"at-{job.name}", **options)
        aps.start()
        self._aps = aps

    async def _clock_tick(self) -> None:
        """The clock's tick: skipped while one is under way (it was slower than the
        interval, under load); the next one does what is due then."""
        if self._lock.locked():
            self.skipped_ticks += 1
            log.debug("a tick is still under way; this one is skipped")
            return
        await self.tick()

    async def stop(self) -> None:
        """Stop ticking and wait for a tick under way to finish."""
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None
        for task in (self._poked, self._retry):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        async with self._lock:
            pass

    def poke(self) -> None:
        """Send confirmed notices and meeting invitations soon (after the current commit).

        Only while the clock runs; tests call `send_pending` or `tick` themselves.
        """
        if self._aps is not None and (self._poked is None or self._poked.done()):
            self._poked = asyncio.get_running_loop().create_task(self._send_pending_now())

    async def _send_pending_now(self) -> None:
        try:
            await self.send_pending(self.clock.now())
        except TRANSIENT_ERRORS as exc:  # the next tick tries again
            self.health.failed(exc, retry_in=self.settings.tick_seconds)
        except Exception:  # noqa: BLE001 - the next tick tries again
            log.exception("sending pending notices failed")

    async def tick(self) -> dict[str, int]:
        """Do everything that is due now; return how many messages each step queued.

        A step that fails on a bug is logged and the others go on. A transient database
        error (locked, busy) ends the tick: the later steps would only wait for the same
        lock. It is reported to the health registry, and the clock ticks again early.
        """
        async with self._lock:
            now = self.clock.now()
            done: dict[str, int] = {}
            if self.leadership is not None:
                try:
                    if not await self.leadership.holds("scheduler"):
                        return done  # another process sweeps; this one checks each tick
                except TRANSIENT_ERRORS as exc:
                    self.health.failed(exc, retry_in=self.settings.tick_seconds)
                    return done
            steps: list[tuple[str, Callable[[datetime], Awaitable[int]]]] = [
                ("notices", self.send_pending), ("breaches", self.sweep_breaches),
                ("warnings", self.sweep_warnings), ("meetings", self.remind_meetings),
                ("ratings", self.remind_ratings), ("jobs", self.run_jobs),
                ("open311", self.departments.sync), ("statistics", self.refresh_statistics)]
            trouble: BaseException | None = None
            for name, step in steps:
                started = time.perf_counter()
                try:
                    done[name] = await step(now)
                    self.sweep_seconds[name] = time.perf_counter() - started
                except TRANSIENT_ERRORS as exc:
                    trouble = exc
                    done[name] = 0
                    break
                except Exception:  # noqa: BLE001 - one failing step must not stop the others
                    log.exception("scheduler step %s failed", name)
                    done[name] = 0
            if trouble is None:
                self.health.ok()
            else:
                delay = min(backoff_delay(self.health.status.failures + 1),
                            self.settings.tick_seconds)
                self.health.failed(trouble, retry_in=delay)
                self._tick_again(delay)
            if any(done.values()):
                for callback in self.on_queued:
                    callback()
            return done

    def _tick_again(self, delay: float) -> None:
        """Tick once more after `delay` (while the clock runs), not only at the next tick."""
        if self._aps is None or (self._retry is not None and not self._retry.done()):
            return

        async def later() -> None:
            await asyncio.sleep(delay)
            await self.tick()

        self._retry = asyncio.get_running_loop().create_task(later(), name="scheduler-retry")

    # --- notices and meetings ------------------------------------------------------------

    async def send_pending(self, now: datetime) -> int:
        """Send the notices whose time has come and the invitations of new meetings."""
        if not await notice_store.any_due(self.db.conn, now):
            return 0
        async with self.db.transaction() as conn:
            count = await notices.send_due(conn, self.outreach, now)
            count += await meetings.invite_pending(conn, self.outreach, now)
        if count:
            for callback in self.on_queued:
                callback()
        return count

    async def remind_meetings(self, now: datetime) -> int:
        """Queue the meeting reminders that are due."""
        async with self.db.transaction() as conn:
            return await meetings.remind_due(conn, self.outreach, now)

    # --- case timers (bot/services/deadlines.py) ------------------------------------------

    async def sweep_breaches(self, now: datetime) -> int:
        """Escalate every case past its deadline (or tell supervisors); return messages."""
        return await self.deadlines.sweep_breaches(now)

    async def sweep_warnings(self, now: datetime) -> int:
        """Warn the person in charge of every case past 80% of its time limit."""
        return await self.deadlines.sweep_warnings(now)

    async def remind_ratings(self, now: datetime) -> int:
        """Ask once, 24 h after closing, the reporters who have not rated."""
        return await self.deadlines.remind_ratings(now)

    # --- the database ----------------------------------------------------------------------

    async def refresh_statistics(self, now: datetime) -> int:
        """Take SQLite's planner statistics again when they are missing or the cases have
        doubled since (store/planner.py); no message is queued."""
        if not await planner.stale(self.db.conn):
            return 0
        started = time.perf_counter()
        async with self.db.transaction() as conn:
            await planner.analyze(conn)
        log.info("planner statistics taken again in %.1f s", time.perf_counter() - started)
        return 0

    # --- jobs at set times ---------------------------------------------------------------

    def _jobs(self) -> list[Job]:
        tz = self.reference.tz
        jobs = []
        for name, moment, run in (
                ("digest_morning", self.settings.digest_morning, self.digests.morning),
                ("digest_evening", self.settings.digest_evening, self.digests.evening)):
            if moment is not None:
                jobs.append(Job(name, CronTrigger(hour=moment.hour, minute=moment.minute,
                                                  timezone=tz), run))
        if self.settings.meeting_cron:
            fields = crontab_fields(self.settings.meeting_cron)
            jobs.append(Job("weekly_meeting", CronTrigger(
                minute=fields[0], hour=fields[1], day=fields[2], month=fields[3],
                day_of_week=fields[4], timezone=tz), self.digests.weekly_meeting))
        return jobs

    async def run_jobs(self, now: datetime) -> int:
        """Run each job's latest occurrence if it has not run; return messages queued."""
        queued = 0
        for job in self.jobs:
            occurrence = latest_occurrence(job.trigger, now)
            if occurrence is None:
                continue
            period = iso(occurrence)
            if self._ran.get(job.name) == period:
                continue
            async with self.db.transaction() as conn:
                if await schedule_store.claim_run(conn, job.name, period, now):
                    queued += await job.run(now)
            self._ran[job.name] = period
        return queued

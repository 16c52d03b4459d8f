"""The scheduler: APScheduler as a clock, the database as the memory.

APScheduler 3.11's `AsyncIOScheduler` only says "now" — every `GRIDBOT_TICK_SECONDS`,
and at the digest and weekly meeting times. Each tick asks the database what is due at
the injected clock's time and does it, each step in its own transactions:

- scheduled notices and meeting invitations (also right after one is confirmed: `poke`);
- deadline breaches (100%): the case escalates one level with a new deadline from the
  calendar, the level above gets the supervision notice (督办) and the former holder the
  overdue notice; where nothing is above (the street), supervisors are told instead;
- deadline warnings (80% of the time limit, in working time when the limit is);
- meeting reminders a day and an hour before; a rating reminder 24 h after closing;
- the morning and evening digests of each grid chief, and the weekly meeting notice.

Timers are columns on the rows (cleared once acted on) and each occurrence of a job is
recorded when it runs, so a restart loses nothing, repeats nothing, and a late start
catches up once: only the latest missed occurrence of a job runs, if within `GRACE`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.domain import workflow
from bot.domain.categories import TimeLimit
from bot.domain.channels import spec_for
from bot.domain.clock import Clock, iso, parse_iso
from bot.domain.messages import Choice, Reply
from bot.domain.workflow import Actor, Event, EventKind, Role
from bot.runtime.supervisor import TRANSIENT_ERRORS, Health, Reporter, backoff_delay
from bot.services import casework, meetings, notices
from bot.services.notify import PersonalMessage, render_personal
from bot.services.reference import ReferenceData
from bot.services.render import Renderer
from bot.settings import Settings, crontab_fields
from store import cases as case_store
from store import notices as notice_store
from store import outbox as outbox_store
from store import people as people_store
from store import schedule as schedule_store
from store.cases import CaseConflict, CaseDetails, StoredCase
from store.db import Database
from store.outbox import PRIORITY_REPLY, OutboundRow

log = logging.getLogger(__name__)

SYSTEM = Actor(person_id=None, role=Role.SYSTEM, scope=None)
WARN_SHARE = 0.8
CHUNK = 200  # escalations per transaction, so inbound messages never wait long
WARN_CHUNK = 400  # warnings per transaction (recorded in bulk)
# A case the sweep cannot load or act on is logged and looked at again this much later,
# so one broken row neither blocks the others nor fills the log every tick.
BROKEN_RETRY = timedelta(hours=1)
GRACE = timedelta(hours=12)  # a job occurrence missed by more than this is not run late
RATING_DELAY = timedelta(hours=24)
PRIORITY_DIGEST = 5


@dataclass(frozen=True)
class Job:
    """A job that runs at the times of a cron trigger."""

    name: str
    trigger: CronTrigger
    run: Callable[[datetime, datetime], Awaitable[int]]  # (occurrence, now) -> messages


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
        self.jobs = self._jobs()
        self.on_queued: list[Callable[[], None]] = []  # told when messages were queued
        self._lock = asyncio.Lock()
        self._aps: AsyncIOScheduler | None = None
        self._poked: asyncio.Task[None] | None = None
        self._ran: dict[str, str] = {}  # job -> latest period known to have run
        self.health = health or Health(clock).reporter("scheduler")
        self._retry: asyncio.Task[None] | None = None  # an early tick after a database error

    # --- the clock ---------------------------------------------------------------------

    def start(self) -> None:
        """Start ticking: every GRIDBOT_TICK_SECONDS and at each job's time."""
        aps = AsyncIOScheduler(timezone=self.reference.tz)
        options: dict[str, Any] = {"max_instances": 1, "coalesce": True,
                                   "misfire_grace_time": None}
        aps.add_job(self.tick, IntervalTrigger(seconds=self.settings.tick_seconds),
                    id="tick", next_run_time=datetime.now(self.reference.tz), **options)
        for job in self.jobs:
            aps.add_job(self.tick, job.trigger, id=f"at-{job.name}", **options)
        aps.start()
        self._aps = aps

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
            steps: list[tuple[str, Callable[[datetime], Awaitable[int]]]] = [
                ("notices", self.send_pending), ("breaches", self.sweep_breaches),
                ("warnings", self.sweep_warnings), ("meetings", self.remind_meetings),
                ("ratings", self.remind_ratings), ("jobs", self.run_jobs)]
            trouble: BaseException | None = None
            for name, step in steps:
                try:
                    done[name] = await step(now)
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

    # --- deadlines -----------------------------------------------------------------------

    async def sweep_breaches(self, now: datetime) -> int:
        """Escalate every case past its deadline (or tell supervisors); return messages."""
        return await self._sweep(schedule_store.due_breaches, self._breach, now)

    async def sweep_warnings(self, now: datetime) -> int:
        """Warn the person in charge of every case past 80% of its time limit.

        Warnings are the sweep's bulk (every case gets one), so they are recorded in bulk:
        the pure workflow applies each WARN (which changes nothing but the version), then
        one statement bumps the versions (checked), one appends the audit lines, and the
        messages are rendered for all recipients at once.
        """
        queued = 0
        while True:
            async with self.db.transaction() as conn:
                rows = await schedule_store.due_warning_rows(conn, now, WARN_CHUNK)
                starts = await schedule_store.deadline_periods(conn, [r[0] for r in rows])
                moves: list[tuple[int, datetime | None]] = []
                warned: list[tuple[workflow.Transition, StoredCase]] = []
                for case_id, text, description, subcategory, address in rows:
                    try:
                        stored = StoredCase(case_store.case_from_json(text, case_id),
                                            CaseDetails(description, subcategory, address))
                        outcome = self._warning(stored, starts.get(case_id), now)
                    except Exception:  # noqa: BLE001 - one broken case must not stop the rest
                        log.exception("case id %s: its warning could not be worked out;"
                                      " trying again at %s", case_id, iso(now + BROKEN_RETRY))
                        moves.append((case_id, now + BROKEN_RETRY))
                        continue
                    if isinstance(outcome, workflow.Transition):
                        warned.append((outcome, stored))
                    else:
                        moves.append((case_id, outcome))
                await schedule_store.move_warnings(conn, moves)
                done = await schedule_store.record_warnings(
                    conn, [(s.case.id or 0, s.case.version) for _, s in warned],
                    [t.audit for t, _ in warned])
                out = await self._warning_messages(
                    conn, [(t, s) for t, s in warned if s.case.id in done], now)
                await outbox_store.enqueue(conn, out, now)
            queued += len(out)
            if len(rows) < WARN_CHUNK:
                return queued

    def _warning(self, stored: StoredCase, start: datetime | None,
                 now: datetime) -> workflow.Transition | datetime | None:
        """The WARN transition when due; else when to look again (None: never)."""
        case = stored.case
        moment = self.warn_moment(stored, start or case.registered_at or case.created_at)
        if moment is None or case.state not in schedule_store.RUNNING:
            return None
        if moment > now:
            return moment
        if case.deadline is not None and case.deadline <= now:
            return None  # the breach deals with it
        try:
            transition = workflow.apply(case, Event(EventKind.WARN), SYSTEM, now)
        except workflow.TransitionRefused:
            return None
        # Recorded in bulk as a version bump: the workflow's WARN must change nothing else.
        changed = {k: v for k, v in vars(transition.case).items() if vars(case)[k] != v}
        assert changed == {"version": case.version + 1}, changed
        return transition

    async def _warning_messages(
        self, conn: Any, warned: list[tuple[workflow.Transition, StoredCase]], now: datetime,
    ) -> list[OutboundRow]:
        """The warnings' messages, each to the person in charge where they last wrote from."""
        wanted: list[tuple[int, Reply]] = []
        for transition, stored in warned:
            for effect in transition.effects:
                if effect.kind != "notify" or effect.template is None:
                    continue
                context = casework.case_context(transition.case, stored.details, effect.data)
                for person in await casework.audience(conn, transition.case, effect):
                    wanted.append((person, Reply(effect.template, context)))
        reach = {r.person_id: r for r in await notice_store.reach_people(
            conn, sorted({person for person, _ in wanted}))}
        rows = []
        for person, reply in wanted:
            contact = reach.get(person)
            if contact is None:
                continue
            body, payload = self.renderer.render(
                reply, contact.locale or self.reference.default_locale,
                spec_for(contact.channel), None)
            rows.append(OutboundRow(contact.channel, contact.address, person, body, payload,
                                    priority=PRIORITY_REPLY))
        return rows

    async def _sweep(self, find: Callable[..., Awaitable[list[int]]],
                     act: Callable[..., Awaitable[list[OutboundRow]]], now: datetime) -> int:
        queued = 0
        while True:
            async with self.db.transaction() as conn:
                ids = await find(conn, now, CHUNK)
                starts = await schedule_store.deadline_periods(conn, ids)
                rows: list[OutboundRow] = []
                for case_id in ids:
                    await conn.execute("SAVEPOINT one_case")
                    try:
                        stored = await case_store.get_by_id(conn, case_id)
                        if stored is not None:
                            rows += await act(conn, stored, starts.get(case_id), now)
                    except Exception:  # noqa: BLE001 - one broken case must not stop the rest
                        await conn.execute("ROLLBACK TO one_case")
                        log.exception("case id %s: its deadline could not be acted on;"
                                      " trying again at %s", case_id, iso(now + BROKEN_RETRY))
                        await schedule_store.postpone_breach(conn, case_id, now + BROKEN_RETRY)
                    await conn.execute("RELEASE one_case")
                await outbox_store.enqueue(conn, rows, now)
            queued += len(rows)
            if len(ids) < CHUNK:
                return queued

    def _limit(self, stored: StoredCase) -> TimeLimit:
        catalog = self.reference.catalog
        try:
            return catalog.time_limit_of(stored.case.category, stored.details.subcategory)
        except KeyError:
            return catalog.time_limit_of(catalog.fallback.code)

    def warn_moment(self, stored: StoredCase, start: datetime) -> datetime | None:
        """When 80% of the case's current time limit has passed (working time if it counts
        so), from the start of its deadline period; None without a deadline."""
        deadline = stored.case.deadline
        if deadline is None:
            return None
        if deadline <= start:
            return start
        if not self._limit(stored).working:
            return start + (deadline - start) * WARN_SHARE
        calendar, tz = self.reference.calendar, self.reference.tz
        minutes = calendar.working_time_between(start, deadline, tz).total_seconds() / 60
        if minutes < 1:
            return start + (deadline - start) * WARN_SHARE
        share = TimeLimit(max(1, math.floor(minutes * WARN_SHARE)), "minutes", True)
        return calendar.deadline(start, share, tz)

    async def _breach(self, conn: Any, stored: StoredCase, start: datetime | None,
                      now: datetime) -> list[OutboundRow]:
        case = stored.case
        assert case.id is not None
        if case.state not in schedule_store.RUNNING:
            await schedule_store.clear_breach(conn, case.id)
            return []
        deadline = self.reference.calendar.deadline(now, self._limit(stored), self.reference.tz)
        event = Event(EventKind.ESCALATE, deadline=deadline,
                      note=self.renderer.label(self.reference.default_locale, "note.overdue"))
        try:
            _, told = await casework.apply_event(conn, self.reference, stored, event, SYSTEM,
                                                 now)
        except (workflow.TransitionRefused, CaseConflict):
            told = await self._supervise_in_place(conn, stored, now)
            await schedule_store.clear_breach(conn, case.id)
        return await self._render(conn, told, now)

    async def _supervise_in_place(self, conn: Any, stored: StoredCase,
                                  now: datetime) -> list[PersonalMessage]:
        """A case that cannot go higher: supervisors (else the street) and its holder hear."""
        case = stored.case
        try:
            await casework.apply_event(conn, self.reference, stored,
                                       Event(EventKind.WARN, note="overdue"), SYSTEM, now)
            reloaded = await case_store.get_by_id(conn, case.id or 0)
            case = reloaded.case if reloaded else case
        except (workflow.TransitionRefused, CaseConflict):
            pass  # still tell people; the audit trail only lacks the line
        street = case.street_code
        overseers = await people_store.holders(conn, ["supervisor"], street) if street else []
        if not overseers and street:
            overseers = await people_store.holders(conn, ["dispatcher"], street)
        context = casework.case_context(case, stored.details, {"reason": "", "note": ""})
        told = [PersonalMessage(person, Reply("case_supervision", context)) for person in overseers]
        holder = case.assignee_id
        if holder is not None and holder not in overseers:
            told.append(PersonalMessage(holder, Reply("case_overdue",
                                             {**context, "escalated_to": ""})))
        return told

    async def _render(self, conn: Any, told: list[PersonalMessage],
                      now: datetime) -> list[OutboundRow]:
        return await render_personal(conn, self.renderer, self.reference.default_locale, told,
                                    now, priority=PRIORITY_REPLY)

    # --- rating reminders ----------------------------------------------------------------

    async def remind_ratings(self, now: datetime) -> int:
        """Ask once, 24 h after closing, the reporters who have not rated."""
        until = now - RATING_DELAY
        async with self.db.transaction() as conn:
            mark = await schedule_store.get_mark(conn, "rating_reminders_until")
            after = parse_iso(mark) if mark else until - timedelta(days=1)
            if after >= until:
                return 0
            told = [PersonalMessage(reporter, Reply("rate_reminder", {"number": number}, tuple(
                        Choice(f"rate:{number}:{n}", "★" * n) for n in range(5, 0, -1))))
                    for _case_id, reporter, number in
                    await schedule_store.closed_unrated(conn, after, until)]
            rows = await render_personal(conn, self.renderer, self.reference.default_locale,
                                        told, now, priority=PRIORITY_DIGEST)
            rows = [self._held(row, now) for row in rows]
            await outbox_store.enqueue(conn, rows, now)
            await schedule_store.set_mark(conn, "rating_reminders_until", iso(until))
        return len(rows)

    def _held(self, row: OutboundRow, now: datetime) -> OutboundRow:
        """The same row, held until the quiet hours end when queued inside them."""
        not_before = self.outreach.bulk(now).not_before()
        if not_before is None:
            return row
        return OutboundRow(row.channel, row.address, row.person_id, row.body, row.payload,
                           row.priority, row.inbox_id, next_attempt_at=not_before,
                           expires_at=row.expires_at)

    # --- jobs at set times ---------------------------------------------------------------

    def _jobs(self) -> list[Job]:
        tz = self.reference.tz
        jobs = []
        for name, moment, run in (
                ("digest_morning", self.settings.digest_morning, self._digest_morning),
                ("digest_evening", self.settings.digest_evening, self._digest_evening)):
            if moment is not None:
                jobs.append(Job(name, CronTrigger(hour=moment.hour, minute=moment.minute,
                                                  timezone=tz), run))
        if self.settings.meeting_cron:
            fields = crontab_fields(self.settings.meeting_cron)
            jobs.append(Job("weekly_meeting", CronTrigger(
                minute=fields[0], hour=fields[1], day=fields[2], month=fields[3],
                day_of_week=fields[4], timezone=tz), self._weekly_meeting))
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
                    queued += await job.run(occurrence, now)
            self._ran[job.name] = period
        return queued

    async def _digest_morning(self, occurrence: datetime, now: datetime) -> int:
        return await self._digest("digest_morning", now, today_only=False)

    async def _digest_evening(self, occurrence: datetime, now: datetime) -> int:
        return await self._digest("digest_evening", now, today_only=True)

    async def _digest(self, template: str, now: datetime, *, today_only: bool) -> int:
        """Each grid chief's open cases, overdue first (evening: only what is due today)."""
        conn = self.db.conn
        grids: dict[int, list[str]] = {}
        for person_id, grid in await schedule_store.grid_chiefs(conn):
            grids.setdefault(person_id, []).append(grid)
        local = now.astimezone(self.reference.tz)
        end_of_day = datetime.combine(local.date() + timedelta(days=1), time(0),
                                      tzinfo=self.reference.tz)
        told = []
        for person_id, codes in grids.items():
            cases = [self._digest_line(row, now)
                     for row in await schedule_store.open_cases_of(conn, person_id, codes)]
            if today_only:
                cases = [c for c in cases if c["deadline"] is not None
                         and c["deadline"] < end_of_day]
            if cases:
                overdue = sum(1 for c in cases if c["overdue"])
                told.append(PersonalMessage(person_id, Reply(template, {
                    "cases": cases[:30], "total": len(cases), "overdue": overdue,
                    "more": max(0, len(cases) - 30)})))
        rows = await render_personal(conn, self.renderer, self.reference.default_locale, told,
                                    now, priority=PRIORITY_DIGEST)
        await outbox_store.enqueue(conn, rows, now)
        return len(rows)

    def _digest_line(self, row: tuple[Any, ...], now: datetime) -> dict[str, Any]:
        number, category, state, deadline, _created, address = row
        due = parse_iso(deadline) if deadline else None
        return {"number": number, "category": category, "state": state, "deadline": due,
                "overdue": due is not None and due < now, "place": address or ""}

    async def _weekly_meeting(self, occurrence: datetime, now: datetime) -> int:
        """The weekly grid meeting notice to every grid chief (as a notice: "收到" counts)."""
        conn = self.db.conn
        district = self.reference.district
        total = 0
        for street in sorted(c for c, a in district.areas.items() if a.level == "street"):
            notice_id = await notice_store.create(
                conn, sender_id=None, issuer=street, scope=street, audience="chiefs", body="",
                photo_id=None, send_at=now, now=now, kind="weekly")
            notice = await notice_store.get(conn, notice_id)
            assert notice is not None
            total += await notices.send(conn, self.outreach, notice, now)
        return total


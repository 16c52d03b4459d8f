"""Case timers: the 80 % warning, the breach at 100 %, the rating reminder after closing.

Each sweep asks the database what is due at `now` (the timers are indexed columns of the
case, cleared once acted on) and works it off in chunks, one transaction each, so inbound
messages never wait long behind it:

- deadline breaches (100%): the case escalates one level with a new deadline from the
  calendar, the level above gets the supervision notice (督办) and the former holder the
  overdue notice; where nothing is above (the street), supervisors are told instead;
- deadline warnings (80% of the time limit, in working time when the limit is);
- a rating reminder 24 h after closing, once, outside quiet hours.

A case that cannot be loaded or acted on is rolled back to its savepoint, logged, and
looked at again `BROKEN_RETRY` later, so one broken row neither blocks the others nor
fills the log every tick. The scheduler (bot/runtime/scheduler.py) only says when.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from bot.domain import workflow
from bot.domain.categories import TimeLimit
from bot.domain.channels import spec_for
from bot.domain.clock import iso, parse_iso
from bot.domain.messages import Choice, Reply
from bot.domain.workflow import Actor, Event, EventKind, Role
from bot.services import casework, notices, relay
from bot.services.broadcast import PRIORITY_DIGEST
from bot.services.notify import PersonalMessage, render_personal
from bot.services.reference import ReferenceData
from bot.services.render import Renderer
from store import cases as case_store
from store import notices as notice_store
from store import outbox as outbox_store
from store import people as people_store
from store import schedule as schedule_store
from store.cases import CaseConflict, CaseDetails, StoredCase
from store.db import TRANSIENT_ERRORS, Database, savepoint
from store.outbox import PRIORITY_REPLY, OutboundRow

log = logging.getLogger(__name__)

SYSTEM = Actor(person_id=None, role=Role.SYSTEM, scope=None)
WARN_SHARE = 0.8
CHUNK = 200  # escalations per transaction, so inbound messages never wait long
WARN_CHUNK = 400  # warnings per transaction (recorded in bulk)
BROKEN_RETRY = timedelta(hours=1)
RATING_DELAY = timedelta(hours=24)


class Deadlines:
    """The sweeps over the cases' timers."""

    def __init__(self, db: Database, reference: ReferenceData, renderer: Renderer,
                 outreach: notices.Outreach) -> None:
        self.db = db
        self.reference = reference
        self.renderer = renderer
        self.outreach = outreach

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
                    except TRANSIENT_ERRORS:
                        raise  # the database, not this case: the scheduler waits it out
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
                    try:
                        async with savepoint(conn, "one_case"):  # undone if it fails
                            stored = await case_store.get_by_id(conn, case_id)
                            if stored is not None:
                                rows += await act(conn, stored, starts.get(case_id), now)
                    except TRANSIENT_ERRORS:
                        raise  # the database, not this case: the scheduler waits it out
                    except Exception:  # noqa: BLE001 - one broken case must not stop the rest
                        log.exception("case id %s: its deadline could not be acted on;"
                                      " trying again at %s", case_id, iso(now + BROKEN_RETRY))
                        await schedule_store.postpone_breach(conn, case_id, now + BROKEN_RETRY)
                await outbox_store.enqueue(conn, rows, now)
            queued += len(rows)
            if len(ids) < CHUNK:
                return queued

    def _limit(self, stored: StoredCase) -> TimeLimit:
        return self.reference.time_limit_of(stored.case.category, stored.details.subcategory)

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
            told = [await relay.to_reporter(conn, case_id, reporter, Reply(
                        "rate_reminder", {"number": number}, tuple(
                            Choice(f"rate:{number}:{n}", "★" * n) for n in range(5, 0, -1))))
                    for case_id, reporter, number in
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

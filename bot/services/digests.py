"""The grid chiefs' lists at set times and the weekly grid meeting notice.

The morning list holds each chief's open cases, overdue first; the evening one only what
is due by the end of the day. The weekly meeting notice goes to every grid chief of each
street as a notice, so "收到" counts. The scheduler decides when each runs, once.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from bot.domain.clock import parse_iso
from bot.domain.messages import Reply
from bot.services import households, notices
from bot.services.broadcast import PRIORITY_DIGEST
from bot.services.notify import PersonalMessage, render_personal
from bot.services.reference import ReferenceData
from bot.services.render import Renderer
from store import outbox as outbox_store
from store import people as people_store
from store import schedule as schedule_store
from store.db import Database

LIST_LENGTH = 30  # cases shown in one list; the rest are counted


class Digests:
    """What goes out at the digest and meeting times."""

    def __init__(self, db: Database, reference: ReferenceData, renderer: Renderer,
                 outreach: notices.Outreach) -> None:
        self.db = db
        self.reference = reference
        self.renderer = renderer
        self.outreach = outreach

    async def morning(self, now: datetime) -> int:
        """Each grid chief's open cases, overdue first, and the households due a visit
        today; return messages queued."""
        return (await self._digest("digest_morning", now, today_only=False)
                + await self.visits_due(now))

    async def visits_due(self, now: datetime) -> int:
        """Each grid chief's households due a visit by the end of today (per-tag rules);
        return messages queued. Each listing is logged as a read of those households."""
        conn = self.db.conn
        told = []
        for person_id in sorted({pid for pid, _ in await schedule_store.grid_chiefs(conn)}):
            person = await people_store.get_person(conn, person_id)
            locale = (person.locale if person else None) or self.reference.default_locale
            due = await households.due_for_chief(conn, self.reference, person_id, now, locale)
            if due:
                told.append(PersonalMessage(person_id, Reply("visits_due", {
                    "total": len(due), "households": [
                        {"label": d.label, "overdue_days": d.overdue_days, "due_at": d.due_at}
                        for d in due[:LIST_LENGTH]]})))
        rows = await render_personal(conn, self.renderer, self.reference.default_locale, told,
                                    now, priority=PRIORITY_DIGEST)
        await outbox_store.enqueue(conn, rows, now)
        return len(rows)

    async def evening(self, now: datetime) -> int:
        """Each grid chief's cases due by the end of today; return messages queued."""
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
                    "cases": cases[:LIST_LENGTH], "total": len(cases), "overdue": overdue,
                    "more": max(0, len(cases) - LIST_LENGTH)})))
        rows = await render_personal(conn, self.renderer, self.reference.default_locale, told,
                                    now, priority=PRIORITY_DIGEST)
        await outbox_store.enqueue(conn, rows, now)
        return len(rows)

    def _digest_line(self, row: tuple[Any, ...], now: datetime) -> dict[str, Any]:
        number, category, state, deadline, _created, address = row
        due = parse_iso(deadline) if deadline else None
        return {"number": number, "category": category, "state": state, "deadline": due,
                "overdue": due is not None and due < now, "place": address or ""}

    async def weekly_meeting(self, now: datetime) -> int:
        """The weekly grid meeting notice to every grid chief (as a notice: "收到" counts)."""
        conn = self.db.conn
        district = self.reference.district
        total = 0
        for street in sorted(c for c, a in district.areas.items() if a.level == "street"):
            _, count = await notices.create_notice(
                conn, sender_id=None, issuer=street, scope=street, audience="chiefs", body="",
                send_at=now, now=now, kind="weekly", outreach=self.outreach)
            total += count or 0
        return total


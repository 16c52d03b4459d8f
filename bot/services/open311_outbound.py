"""Departments with their own Open311 systems: their cases are POSTed there, and what they
report back is applied as their actions.

A dispatch to such a department queues a row (store.open311.queue_outbound, in the
dispatch's transaction: `casework.apply_event`) before any attempt. On each scheduler
tick `push` POSTs the due rows to the department's `requests.json` (retrying with backoff,
giving up after MAX_ATTEMPTS), and `pull` reads its `servicerequestupdates.json` for the
cases it holds, applying each update once, as the department: accepted (sign), done
(report_done), returned with the reason (return). The endpoint and key come from
departments.toml only; nothing is fetched from an address a user gave.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import datetime, timedelta
from typing import Any

import httpx

from bot.domain import open311 as spec
from bot.domain.clock import Clock
from bot.domain.departments import Open311Link, open311_link
from bot.domain.open311 import Open311Error
from bot.domain.workflow import Actor, EventKind, Role
from bot.services.notify import render_personal
from bot.services.open311 import apply_events
from bot.services.reference import ReferenceData
from bot.services.render import Renderer
from store import cases as case_store
from store import open311 as open311_store
from store import outbox as outbox_store
from store.db import Database

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BASE_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
TIMEOUT = 15.0
# All of one tick's sync together: it runs inside the scheduler's lock, so a hanging
# department system must not hold escalations, warnings or shutdown for long.
SYNC_DEADLINE = 10.0


def api_key_of(link: Open311Link) -> str:
    """The department's key: as written, or from the environment variable "env:NAME"."""
    if link.api_key.startswith("env:"):
        return os.environ.get(link.api_key[4:], "")
    return link.api_key


class DepartmentSystems:
    """The sender and the puller for departments' Open311 systems."""

    def __init__(self, db: Database, reference: ReferenceData, renderer: Renderer,
                 clock: Clock, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.db = db
        self.reference = reference
        self.renderer = renderer
        self.clock = clock
        self.transport = transport
        self._recovered = False
        self.deadline = SYNC_DEADLINE

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False,
                                 transport=self.transport)

    async def sync(self, now: datetime) -> int:
        """POST what is due, then pull the updates, within `deadline` seconds in all (what
        is left waits for the next tick); return the messages queued."""
        if not any(d.open311 for d in self.reference.departments):
            return 0
        try:
            async with asyncio.timeout(self.deadline):
                await self.push(now)
                return await self.pull(now)
        except TimeoutError:
            log.warning("departments' Open311 systems took over %.0f s; the rest waits for"
                        " the next tick", self.deadline)
            async with self.db.transaction() as conn:  # claimed rows not yet sent
                await open311_store.requeue_sending(conn)
            return 0

    # --- out ----------------------------------------------------------------------------

    async def push(self, now: datetime) -> int:
        """POST the due queued cases to their departments; return how many were tried."""
        async with self.db.transaction() as conn:
            if not self._recovered:  # a crash mid-POST left rows 'sending'
                await open311_store.requeue_sending(conn)
                self._recovered = True
            rows = await open311_store.claim_outbound(conn, now)
        if not rows:
            return 0
        async with self._client() as client:
            for row in rows:
                await self._send(client, row, now)
        return len(rows)

    async def _send(self, client: httpx.AsyncClient, row: open311_store.Outbound,
                    now: datetime) -> None:
        link = open311_link(self.reference.departments, row.department)
        stored = await case_store.get_by_id(self.db.conn, row.case_id)
        if link is None or stored is None:
            async with self.db.transaction() as conn:
                await open311_store.outbound_failed(conn, row.id, "no Open311 system or case")
            return
        case, details = stored.case, stored.details
        ours = spec.service_code(case.category, details.subcategory)
        form: dict[str, Any] = {
            "api_key": api_key_of(link), "service_code": link.service_code_for(case.category,
                                                                               ours),
            "description": f"{details.description}\n\n(gridbot case {case.number})"[:4000],
            "attribute[gridbot_case]": case.number,
        }
        if link.jurisdiction_id:
            form["jurisdiction_id"] = link.jurisdiction_id
        if details.lat is not None and details.lon is not None:
            form["lat"], form["long"] = f"{details.lat:.6f}", f"{details.lon:.6f}"
        else:
            form["address_string"] = details.address or self.reference.district.name(
                case.grid_code or case.street_code, "zh_CN")
        error: str
        try:
            response = await client.post(f"{link.endpoint}/requests.json", data=form)
            if response.status_code in (200, 201):
                external = str(response.json()[0]["service_request_id"])
                async with self.db.transaction() as conn:
                    await open311_store.outbound_sent(conn, row.id, external, self.clock.now())
                return
            error = f"HTTP {response.status_code}: {response.text[:200]}"
            if 400 <= response.status_code < 500 and response.status_code != 429:
                async with self.db.transaction() as conn:  # the same request fails again
                    await open311_store.outbound_failed(conn, row.id, error)
                return
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        async with self.db.transaction() as conn:
            if row.attempts >= MAX_ATTEMPTS:
                await open311_store.outbound_failed(
                    conn, row.id, f"gave up after {row.attempts} attempts: {error}")
            else:
                wait = min(MAX_BACKOFF, BASE_BACKOFF * 2 ** (row.attempts - 1))
                await open311_store.outbound_retry(conn, row.id, error, now + wait)

    # --- back ---------------------------------------------------------------------------

    async def pull(self, now: datetime) -> int:
        """Apply each department's new updates on the cases it holds; return messages."""
        queued = 0
        async with self._client() as client:
            for department in self.reference.departments:
                if department.open311 is None:
                    continue
                try:
                    queued += await self._pull_one(client, department.code,
                                                   department.open311, now)
                except (httpx.HTTPError, ValueError) as exc:
                    log.warning("pulling updates from %s failed: %s", department.code, exc)
        return queued

    async def _pull_one(self, client: httpx.AsyncClient, code: str, link: Open311Link,
                        now: datetime) -> int:
        open_rows = await open311_store.open_outbound(self.db.conn, code)
        if not open_rows:
            return 0
        by_external = {r.external_id: r for r in open_rows if r.external_id}
        params = {"api_key": api_key_of(link),
                  "start_date": spec.w3c(now - spec.MAX_WINDOW + timedelta(minutes=1),
                                         self.reference.tz),
                  "end_date": spec.w3c(now, self.reference.tz)}
        if link.jurisdiction_id:
            params["jurisdiction_id"] = link.jurisdiction_id
        response = await client.get(f"{link.endpoint}/servicerequestupdates.json",
                                    params=params)
        response.raise_for_status()
        updates = response.json()
        if not isinstance(updates, list):
            raise ValueError("servicerequestupdates did not answer a list")
        objects = [u for u in updates if isinstance(u, dict)]
        if len(objects) < len(updates):
            log.warning("%s: skipped %d updates that are not objects", code,
                        len(updates) - len(objects))
        queued = 0
        actor = Actor(person_id=None, role=Role.DEPARTMENT, scope=code)
        for update in sorted(objects, key=lambda u: str(u.get("updated_datetime", ""))):
            row = by_external.get(str(update.get("service_request_id")))
            update_id = str(update.get("update_id", ""))
            if row is None or not update_id:
                continue
            queued += await self._apply(code, row, update_id, update, actor, now)
        return queued

    async def _apply(self, code: str, row: open311_store.Outbound, update_id: str,
                     update: dict[str, Any], actor: Actor, now: datetime) -> int:
        note = str(update.get("description") or "")[:spec.MAX_DESCRIPTION]
        async with self.db.transaction() as conn:
            if await open311_store.was_pulled(conn, code, update_id):
                return 0
            stored = await case_store.get_by_id(conn, row.case_id)
            assert stored is not None
            try:
                kinds = spec.department_events(stored.case, str(update.get("status", "")),
                                               note)
                notices = await apply_events(conn, self.reference, stored.case.number, kinds,
                                             note, actor, now)
                outcome = ",".join(k.value for k in kinds) or "nothing"
            except Open311Error as refused:  # recorded, not retried: it would fail again
                kinds, notices, outcome = [], [], f"refused: {refused.description}"[:300]
            await open311_store.mark_pulled(conn, code, update_id, row.case_id, outcome, now)
            if EventKind.RETURN in kinds or EventKind.REPORT_DONE in kinds:
                await open311_store.outbound_closed(conn, row.id, now)
            rows = await render_personal(conn, self.renderer, self.reference.default_locale,
                                         notices, now)
            await outbox_store.enqueue(conn, rows, now)
        return len(rows)

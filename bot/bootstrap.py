"""The composition root: settings in, a running set of collaborators out."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from bot.channels.base import Channel
from bot.channels.registry import configured_channels
from bot.channels.telegram import TelegramChannel
from bot.domain.categories import Catalog
from bot.domain.clock import Clock, SystemClock
from bot.domain.departments import load_departments
from bot.domain.households import TagCatalog
from bot.domain.worktime import WorkCalendar
from bot.runtime.engine import Engine
from bot.runtime.outbox import OutboxWorker
from bot.runtime.scheduler import Scheduler
from bot.runtime.supervisor import TRANSIENT_ERRORS, Health, Supervisor
from bot.services import households, links
from bot.services.districts import District, load_demo
from bot.services.reference import ReferenceData
from bot.services.render import Renderer
from bot.settings import Settings
from store import areas as area_store
from store import outbox as outbox_store
from store.areas import AreaListener
from store.db import Database
from store.leader import Leadership
from store.pg import PgConnection

log = logging.getLogger(__name__)


@dataclass
class Gridbot:
    """Everything one gridbot process runs on."""

    settings: Settings
    db: Database
    reference: ReferenceData
    renderer: Renderer
    engine: Engine
    clock: Clock
    channels: list[Channel] = field(default_factory=list)
    workers: list[OutboxWorker] = field(default_factory=list)
    scheduler: Scheduler | None = None
    # Every background worker reports here (/healthz shows it); the supervisor restarts
    # a worker that dies.
    health: Health = field(init=False)
    supervisor: Supervisor = field(init=False)
    # The roles this process holds among several on one PostgreSQL (store/leader.py).
    leadership: Leadership = field(init=False)
    _housekeeper: asyncio.Task[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.health = Health(self.clock)
        self.supervisor = Supervisor(self.health)
        self.leadership = Leadership(self.settings.database)

    @property
    def lease(self) -> timedelta:
        """How long a claimed message or a stored payload stays this process's."""
        return timedelta(seconds=self.settings.lease_seconds)

    def channel(self, name: str) -> Channel:
        """The running channel of that name (its webhook endpoints use this)."""
        for channel in self.channels:
            if channel.name == name:
                return channel
        raise LookupError(f"channel {name!r} is not configured")

    async def start(self) -> None:
        """Finish what a crash left, then connect the channels and start sending."""
        async with self.db.transaction() as conn:
            await outbox_store.requeue_in_flight(conn, self.clock.now())
        await self.engine.recover()
        for channel in self.channels:
            await channel.start()
        for worker in self.workers:
            worker.start(self.supervisor)
        if self.scheduler is not None:
            self.scheduler.start()
        if self.db.postgres:
            self._housekeeper = self.supervisor.start("takeover", self._take_over)
        self.supervisor.start("areas", self._follow_areas)

    async def _follow_areas(self) -> None:
        """Reload the grid index when an import (`gridbot import-grids`, another process)
        changed the areas: at once on PostgreSQL's NOTIFY, else within a tick (polled)."""
        reporter = self.health.reporter("areas")
        listener = (AreaListener(str(self.settings.database)) if self.db.postgres else None)
        seen: str | None = None
        first = True
        try:
            while True:
                try:
                    mark = await area_store.change_mark(self.db.conn)
                    if not first and mark != seen:
                        self.reference.district = await District.load(self.db)
                        log.info("areas changed: grid index reloaded")
                    seen, first = mark, False
                    if listener is not None:
                        await listener.wait(self.settings.tick_seconds)
                    else:
                        await asyncio.sleep(self.settings.tick_seconds)
                except TRANSIENT_ERRORS as exc:
                    await asyncio.sleep(reporter.failed(exc))
                    continue
                reporter.ok()
        finally:
            if listener is not None:
                await listener.close()

    async def _take_over(self) -> None:
        """With several processes: each tick, what a dead process held goes on here —
        messages whose lease passed are queued again, payloads it stored are processed."""
        reporter = self.health.reporter("takeover")
        while True:
            try:
                held = set().union(*(worker.holding() for worker in self.workers))
                async with self.db.transaction() as conn:
                    await outbox_store.requeue_in_flight(conn, self.clock.now(), keep=held)
                await self.engine.recover()
            except TRANSIENT_ERRORS as exc:
                await asyncio.sleep(reporter.failed(exc))
                continue
            reporter.ok()
            await asyncio.sleep(min(self.settings.tick_seconds, self.settings.lease_seconds))

    async def stop(self) -> None:
        """Stop the clock, stop sending, let processing finish, disconnect the channels."""
        if self.scheduler is not None:
            await self.scheduler.stop()
        for worker in reversed(self.workers):
            await worker.stop()
        await self.engine.stop()  # before the channels: a parser may still fetch a photo
        for channel in reversed(self.channels):
            await channel.stop()
        await self.supervisor.stop_all()
        await self.leadership.close()  # another process takes the roles at once

    async def close(self) -> None:
        """Close the database; nothing else runs on it after this."""
        await self.leadership.close()
        await self.db.close()


async def build(settings: Settings, clock: Clock | None = None) -> Gridbot:
    """Open the database (loading the demo district into an empty one) and wire the parts."""
    clock = clock or SystemClock()
    catalog = Catalog.load(settings.categories)
    calendar = WorkCalendar.load(settings.holidays)
    db = await Database.open(settings.database)
    try:
        tags = TagCatalog.load(settings.household_tags)
        if settings.demo and await area_store.count_areas(db.conn) == 0:
            await load_demo(db, clock.now())
            await households.load_demo(db, tags, settings.phone_region, clock.now())
        reference = ReferenceData(catalog=catalog, district=await District.load(db),
                            calendar=calendar, tz=settings.timezone,
                            default_locale=settings.locale, media_dir=settings.media_dir,
                            departments=load_departments(settings.departments),
                            household_tags=tags, phone_region=settings.phone_region,
                            public_url=settings.public_url)
    except BaseException:
        await db.close()
        raise
    renderer = Renderer(settings.timezone)
    renderer.media_link = lambda media_id: links.media_url(settings, media_id, clock.now())
    renderer.globals["category_name"] = lambda code, locale: _category_name(catalog, code,
                                                                            locale)
    engine = Engine(db, reference, renderer, clock)
    bot = Gridbot(settings, db, reference, renderer, engine, clock)
    engine.lease = bot.lease
    if isinstance(db.conn, PgConnection):
        db.conn.outbox_lease = bot.lease
    engine.health = bot.health.reporter("inbox")
    bot.scheduler = Scheduler(db, reference, renderer, clock, settings,
                              health=bot.health.reporter("scheduler"))
    if bot.leadership.shared:
        bot.scheduler.leadership = bot.leadership
    engine.on_queued.append(bot.scheduler.poke)  # a confirmed notice goes out at once
    for channel in configured_channels(settings, engine, clock):
        engine.parsers[channel.name] = channel.parser()
        sender = channel.sender()
        worker = OutboxWorker(db, sender, clock,
                              health=bot.health.reporter(f"outbox-{sender.channel}"))
        if bot.leadership.shared:
            worker.leadership = bot.leadership
        if isinstance(channel, TelegramChannel):
            channel.menus.health = bot.health.reporter("telegram-menus")
            if bot.leadership.shared:
                channel.menus.leadership = bot.leadership
            if settings.telegram_mode == "polling":
                channel.polling_health = bot.health.reporter("telegram-polling")
        engine.on_queued.append(worker.wake.set)
        bot.scheduler.on_queued.append(worker.wake.set)
        bot.channels.append(channel)
        bot.workers.append(worker)
    return bot


def _category_name(catalog: Catalog, code: str, locale: str) -> str:
    try:
        return catalog.get(code).name(locale)
    except KeyError:
        return code

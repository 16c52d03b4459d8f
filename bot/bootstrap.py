"""The composition root: settings in, a running set of collaborators out."""

from __future__ import annotations

from dataclasses import dataclass

from bot.categories import Catalog
from bot.clock import Clock, SystemClock
from bot.districts import District, load_demo
from bot.engine import Engine
from bot.render import Renderer
from bot.services import Services
from bot.settings import Settings
from bot.worktime import WorkCalendar
from store import areas as area_store
from store.db import Database


@dataclass
class Gridbot:
    """Everything one gridbot process runs on."""

    settings: Settings
    db: Database
    services: Services
    renderer: Renderer
    engine: Engine
    clock: Clock

    async def close(self) -> None:
        """Stop in order: nothing else runs on the database after this."""
        await self.db.close()


async def build(settings: Settings, clock: Clock | None = None) -> Gridbot:
    """Open the database (loading the demo district into an empty one) and wire the parts."""
    clock = clock or SystemClock()
    catalog = Catalog.load(settings.categories)
    calendar = WorkCalendar.load(settings.holidays)
    db = await Database.open(settings.database)
    try:
        if settings.demo and await area_store.count_areas(db.conn) == 0:
            await load_demo(db, clock.now())
        services = Services(catalog=catalog, district=await District.load(db),
                            calendar=calendar, tz=settings.timezone,
                            default_locale=settings.locale, media_dir=settings.media_dir)
    except BaseException:
        await db.close()
        raise
    renderer = Renderer(settings.timezone)
    engine = Engine(db, services, renderer, clock)
    return Gridbot(settings, db, services, renderer, engine, clock)

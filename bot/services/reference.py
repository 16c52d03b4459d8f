"""Reference data: what the flows consult besides the database (catalog, district, calendar)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.domain.categories import Catalog, TimeLimit
from bot.domain.departments import Department
from bot.domain.households import TagCatalog
from bot.domain.worktime import WorkCalendar
from bot.services.districts import District
from store.db import Database


@dataclass
class ReferenceData:
    """The read-mostly collaborators of every flow, built once by `bootstrap`."""

    catalog: Catalog
    district: District
    calendar: WorkCalendar
    tz: ZoneInfo
    default_locale: str
    media_dir: Path
    departments: list[Department] = field(default_factory=list)
    household_tags: TagCatalog = field(default_factory=TagCatalog.load)
    phone_region: str = "CN"  # numbers typed without a country code (GRIDBOT_PHONE_REGION)
    public_url: str = "http://127.0.0.1:8080"  # links given out in messages (the console's)

    async def reload_district(self, db: Database) -> None:
        """Read the district again from the database (after an import): every flow that
        asks `reference.district` (routing a report by its pin, notices, the console)
        uses the new areas, grid index and buildings from its next question on."""
        self.district = await District.load(db)

    def time_limit_of(self, category: str, subcategory: str | None = None) -> TimeLimit:
        """A case's time limit by its category and subcategory; the fallback category's
        when the catalog no longer knows them (edited since the case was filed)."""
        try:
            return self.catalog.time_limit_of(category, subcategory)
        except KeyError:
            return self.catalog.time_limit_of(self.catalog.fallback.code)

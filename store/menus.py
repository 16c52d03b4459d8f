"""The Telegram command menus of staff chats: who should have which, and what was set."""

from __future__ import annotations

from datetime import datetime

from bot.domain.clock import iso
from store.db import Connection, fetch


async def staff_chats(conn: Connection) -> list[tuple[str, str | None, list[str]]]:
    """Private Telegram chats of people with a staff role: (address, locale, roles)."""
    # From the few staff roles to their contacts (CROSS JOIN keeps that order), not from
    # every resident's Telegram contact: this runs every minute on the shared connection.
    # The roles are gathered here rather than by group_concat, which PostgreSQL lacks.
    rows = await fetch(
        conn, "SELECT DISTINCT c.address, p.locale, r.role FROM roles r"
        " CROSS JOIN contacts c ON c.person_id = r.person_id"
        " CROSS JOIN people p ON p.id = c.person_id"
        " WHERE r.revoked_at IS NULL AND r.role != 'resident' AND c.channel = 'telegram'"
        " AND c.opted_out = 0 AND c.address NOT LIKE '-%'"
        " ORDER BY c.address")
    chats: dict[str, tuple[str | None, set[str]]] = {}
    for address, locale, role in rows:
        chats.setdefault(address, (locale, set()))[1].add(role)
    return [(address, locale, sorted(roles)) for address, (locale, roles) in chats.items()]


async def recorded(conn: Connection) -> dict[str, str]:
    """The menu last set (or tried) for each chat."""
    rows = await fetch(conn, "SELECT address, menu FROM telegram_menus")
    return {r[0]: r[1] for r in rows}


async def record(conn: Connection, address: str, menu: str, now: datetime,
                 error: str | None = None) -> None:
    """Note the menu a chat was given (or the error Telegram answered)."""
    await conn.execute(
        "INSERT INTO telegram_menus (address, menu, set_at, error) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (address) DO UPDATE SET menu = excluded.menu,"
        " set_at = excluded.set_at, error = excluded.error",
        (address, menu, iso(now), error))


async def forget(conn: Connection, address: str) -> None:
    """The chat is back on the default menu."""
    await conn.execute("DELETE FROM telegram_menus WHERE address = ?", (address,))

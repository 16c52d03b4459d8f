"""The store on a real SQLite file: WAL, migrations, unique inbox, versions, rollback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from store import conversations, inbox
from store.cases import next_number
from store.conversations import ConversationConflict
from store.db import Database

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture
async def db(database: str):  # type: ignore[no-untyped-def]
    opened = await Database.open(database)
    yield opened
    await opened.close()


async def test_database_is_in_wal_mode_and_migrations_run_once(db: Database) -> None:
    if not db.postgres:
        rows = await db.fetchall("PRAGMA journal_mode")
        assert rows[0][0] == "wal"
        rows = await db.fetchall("PRAGMA cache_size")  # 64 MB, not SQLite's 2 MB
        assert rows[0][0] == -65_536
        rows = await db.fetchall("PRAGMA mmap_size")  # read through a memory map
        assert rows[0][0] > 0
    assert await db.migrate() == []
    names = [r[0] for r in await db.fetchall("SELECT name FROM schema_migrations ORDER BY name")]
    folder = Path(__file__).parent.parent / "store" / "migrations"
    files = sorted(p.name for p in folder.glob("*.sql") if not p.name.endswith(".postgresql.sql"))
    assert names == files and names[0] == "0001_init.sql"


async def test_inbox_keeps_a_provider_id_once(db: Database) -> None:
    async with db.transaction() as conn:
        first = await inbox.insert(conn, "telegram", "42", "chat", {"a": 1}, NOW)
        second = await inbox.insert(conn, "telegram", "42", "chat", {"a": 2}, NOW)
        other = await inbox.insert(conn, "sms", "42", "chat", {"a": 3}, NOW)
    assert first is not None and other is not None and second is None


async def test_a_failed_transaction_leaves_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await inbox.insert(conn, "telegram", "1", "chat", {}, NOW)
            raise RuntimeError("crash")
    rows = await db.fetchall("SELECT count(*) FROM inbox")
    assert rows[0][0] == 0


async def test_a_transaction_cancelled_while_it_begins_leaves_none_open(db: Database) -> None:
    async def write() -> None:
        async with db.transaction() as conn:
            await inbox.insert(conn, "telegram", "1", "chat", {}, NOW)

    task = asyncio.create_task(write())
    await asyncio.sleep(0)  # BEGIN is now on its way to the database thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with db.transaction() as conn:  # would fail: "transaction within a transaction"
        await inbox.insert(conn, "telegram", "2", "chat", {}, NOW)
    rows = await db.fetchall("SELECT provider_id FROM inbox")
    assert [r[0] for r in rows] == ["2"]


async def test_conversation_saved_by_someone_else_is_a_conflict(db: Database) -> None:
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO people (id, created_at) VALUES (1, 'x')")
        await conn.execute("INSERT INTO contacts (id, person_id, channel, address, created_at)"
                           " VALUES (1, 1, 'sms', '+86', 'x')")
        mine = await conversations.load(conn, 1)
        theirs = await conversations.load(conn, 1)
        mine.step = "a"
        await conversations.save(conn, mine, NOW)
        theirs.step = "b"
        with pytest.raises(ConversationConflict):
            await conversations.save(conn, theirs, NOW)
        again = await conversations.load(conn, 1)
    assert again.step == "a" and again.version == 1


async def test_case_numbers_are_per_day_and_readable(db: Database) -> None:
    async with db.transaction() as conn:
        numbers = [await next_number(conn, "261123") for _ in range(3)]
        other_day = await next_number(conn, "261124")
    assert numbers == ["261123-001", "261123-002", "261123-003"]
    assert other_day == "261124-001"

"""Move a SQLite deployment to PostgreSQL: every table's rows, then the counts checked.

The target is migrated first (the same numbered migrations) and must be empty. Tables go
in the order of their foreign keys (a table after those it refers to); a table that
refers to itself (areas.parent) gets those columns in a second pass, once every row is
there. Rows travel by PostgreSQL's COPY, in chunks, with the ids as they were; then each
identity column's sequence is moved past the highest id, so new rows do not collide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import aiosqlite

from store.pg import PgConnection

CHUNK = 5000
SKIPPED = {"schema_migrations", "sqlite_sequence", "sqlite_stat1", "sqlite_stat4"}


class CopyRefused(RuntimeError):
    """The copy cannot go ahead (the target holds data, a table is missing there)."""


@dataclass(frozen=True)
class Copied:
    """One table: rows in the source, rows in the target after the copy."""

    table: str
    source: int
    target: int


async def _tables(src: aiosqlite.Connection) -> list[str]:
    """The tables to copy: not SQLite's own, nor its full-text index (a virtual table and
    its shadow tables; PostgreSQL keeps its own index of the text, migration 0017)."""
    rows = await src.execute_fetchall(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " ORDER BY rowid")
    virtual = [str(r[0]) for r in rows if str(r[1] or "").upper().startswith("CREATE VIRTUAL")]
    return [r[0] for r in rows if r[0] not in SKIPPED
            and not any(r[0] == v or r[0].startswith(v + "_") for v in virtual)]


async def _references(src: aiosqlite.Connection, table: str) -> list[tuple[str, str]]:
    """(referenced table, column) of each foreign key of a table."""
    rows = await src.execute_fetchall(f'PRAGMA foreign_key_list("{table}")')
    return [(r[2], r[3]) for r in rows]


def _ordered(tables: list[str], refs: dict[str, list[tuple[str, str]]]) -> list[str]:
    done: list[str] = []
    todo = list(tables)
    while todo:
        for table in todo:
            if all(other == table or other in done or other not in tables
                   for other, _ in refs[table]):
                done.append(table)
                todo.remove(table)
                break
        else:  # a cycle between tables (none today): keep the creation order
            done += todo
            break
    return done


async def copy_database(src: aiosqlite.Connection, dst: PgConnection,
                        progress: Callable[[str, int], None] | None = None) -> list[Copied]:
    """Copy every table of `src` into the migrated, empty `dst`; return the counts."""
    raw = await dst.live()
    tables = await _tables(src)
    refs = {t: await _references(src, t) for t in tables}
    present = {r[0] for r in (await dst.execute_raw(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema()")).rows}
    missing = [t for t in tables if t not in present]
    if missing:
        raise CopyRefused(f"tables missing in the target (migrate both to the same version):"
                          f" {', '.join(missing)}")
    for table in tables:
        rows = (await dst.execute_raw(f'SELECT EXISTS (SELECT 1 FROM "{table}")')).rows
        if rows[0][0]:
            raise CopyRefused(f"the target is not empty: table {table} has rows")
    result = []
    async with raw.transaction():
        for table in _ordered(tables, refs):
            info = await src.execute_fetchall(f'PRAGMA table_info("{table}")')
            columns = [r[1] for r in info]
            later = [col for other, col in refs[table] if other == table]
            names = ", ".join(f'"{c}"' for c in columns)
            count = 0
            async with raw.cursor() as cursor, cursor.copy(
                    f'COPY "{table}" ({names}) FROM STDIN') as copy, src.execute(
                    f'SELECT {names} FROM "{table}"') as source:
                while chunk := list(await source.fetchmany(CHUNK)):
                    for row in chunk:
                        values = list(row)
                        for col in later:
                            values[columns.index(col)] = None
                        await copy.write_row(values)
                    count += len(chunk)
                    if progress is not None:
                        progress(table, count)
            if later:
                keys = [r[1] for r in info if r[5]]  # the primary key's columns
                sets = ", ".join(f'"{c}" = %s' for c in later)
                where = " AND ".join(f'"{k}" = %s' for k in keys)
                pairs = await src.execute_fetchall(
                    f'SELECT {", ".join(later + keys)} FROM "{table}"'
                    f" WHERE {' OR '.join(f'{c} IS NOT NULL' for c in later)}")
                async with raw.cursor() as cursor:
                    await cursor.executemany(f'UPDATE "{table}" SET {sets} WHERE {where}',
                                             [tuple(p) for p in pairs])
            if "id" in columns and any(r[1] == "id" and r[5] for r in info):
                await raw.execute(
                    f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'),"
                    f' coalesce((SELECT max(id) FROM "{table}"), 0) + 1, false)'
                    f" WHERE pg_get_serial_sequence('\"{table}\"', 'id') IS NOT NULL")
    for table in tables:
        source_count = (await src.execute_fetchall(f'SELECT count(*) FROM "{table}"'))
        target_count = (await dst.execute_raw(f'SELECT count(*) FROM "{table}"')).rows
        result.append(Copied(table, int(list(source_count)[0][0]), int(target_count[0][0])))
    return result

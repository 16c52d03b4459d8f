"""Move a deployment from SQLite to PostgreSQL (`gridbot copy-database FROM TO`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiosqlite

from store.copy import Copied, CopyRefused, copy_database
from store.db import Database
from store.pg import PgConnection, is_postgres_url

__all__ = ["Copied", "CopyRefused", "copy_sqlite_to_postgres"]


async def copy_sqlite_to_postgres(source: Path, target: str,
                                  progress: Callable[[str, int], None] | None = None
                                  ) -> list[Copied]:
    """Migrate both to the same version, copy every row, and return each table's counts
    (source and target); raises CopyRefused when the copy cannot go ahead."""
    if not source.is_file():  # noqa: ASYNC240 - one stat, before anything starts
        raise CopyRefused(f"{source} is not a SQLite file")
    if not is_postgres_url(target):
        raise CopyRefused(f"{target} is not a postgresql:// URL")
    src = await Database.open(source)  # brings an older file up to the current schema
    try:
        dst = await Database.open(target)
        try:
            assert isinstance(src.conn, aiosqlite.Connection)
            assert isinstance(dst.conn, PgConnection)
            return await copy_database(src.conn, dst.conn, progress)
        finally:
            await dst.close()
    finally:
        await src.close()

"""`gridbot copy-database FROM TO`: a SQLite deployment moved to PostgreSQL, counts checked."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.runtime import loop
from bot.services.copying import CopyRefused, copy_sqlite_to_postgres
from bot.settings import Settings
from store.pg import display_url


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `copy-database` to the command line."""
    copy = commands.add_parser(
        "copy-database", help="copy a SQLite database into an empty PostgreSQL one")
    copy.add_argument("source", type=Path, metavar="FROM", help="the SQLite file")
    copy.add_argument("target", metavar="TO", help="postgresql://USER@HOST/DATABASE (empty)")
    copy.set_defaults(run=_copy)


def _copy(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        try:
            copied = await copy_sqlite_to_postgres(args.source, args.target)
        except CopyRefused as exc:
            print(f"gridbot: copy-database: {exc}; nothing copied", file=sys.stderr)
            return 1
        width = max(len(c.table) for c in copied)
        wrong = [c for c in copied if c.source != c.target]
        for c in copied:
            mark = "" if c.source == c.target else f"  MISMATCH: {c.target} in the target"
            print(f"{c.table:<{width}}  {c.source:>9,}{mark}")
        if wrong:
            print(f"gridbot: copy-database: counts differ in {len(wrong)} tables",
                  file=sys.stderr)
            return 1
        total = sum(c.source for c in copied)
        print(f"copied {total:,} rows in {len(copied)} tables from {args.source} to"
              f" {display_url(args.target)}; every count checked")
        return 0

    return loop.run(run())

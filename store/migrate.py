"""The numbered migrations (store/migrations/NNNN_name.sql), for one database or the other.

One numbered set serves both: a file is plain DDL in the portable subset, which
store/dialect.py maps to PostgreSQL (types, identity columns). Where a migration's SQL
only SQLite runs (rebuilding a table to change a CHECK), a file of the same name ending
`.postgresql.sql` beside it holds PostgreSQL's way, and is recorded under the same name.
"""

from __future__ import annotations

import re
from importlib import resources

VARIANT = ".postgresql.sql"
_TRIGGER = re.compile(r"^\s*CREATE\s+TRIGGER\b", re.I)
_TRIGGER_BEGIN = re.compile(r"\bBEGIN\b", re.I)
_TRIGGER_END = re.compile(r"\bEND\s*$", re.I)


def migration_files(dialect: str) -> list[tuple[str, str]]:
    """(name, SQL) of each migration in order, with the dialect's variants in place."""
    folder = resources.files("store") / "migrations"
    base: dict[str, str] = {}
    variants: dict[str, str] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(VARIANT):
            variants[entry.name[: -len(VARIANT)] + ".sql"] = entry.read_text(encoding="utf-8")
        elif entry.name.endswith(".sql"):
            base[entry.name] = entry.read_text(encoding="utf-8")
    if dialect == "postgresql":
        base.update({name: sql for name, sql in variants.items() if name in base})
    return sorted(base.items())


def statements(sql: str) -> list[str]:
    """A migration's statements: split at semicolons, except inside a `$$ … $$` body (a
    PostgreSQL function) and a SQLite trigger's BEGIN … END; no semicolons inside
    strings, no `--` inside a body's text."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    pieces: list[str] = []  # the text between semicolons outside `$$` bodies
    current = ""
    for n, part in enumerate("\n".join(lines).split("$$")):
        if n % 2:  # inside a body: kept whole
            current += "$$" + part + "$$"
            continue
        first, *rest = part.split(";")
        current += first
        for piece in rest:
            pieces.append(current)
            current = piece
    pieces.append(current)
    found: list[str] = []
    pending = ""
    for piece in pieces:
        pending = f"{pending};{piece}" if pending else piece
        if (_TRIGGER.match(pending) and _TRIGGER_BEGIN.search(pending)
                and not _TRIGGER_END.search(pending)):
            continue  # a SQLite trigger's body goes on to its END
        if pending.strip():
            found.append(pending.strip())
        pending = ""
    return found

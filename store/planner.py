"""SQLite's planner statistics (`ANALYZE`), taken again as the cases grow.

Without statistics SQLite guesses how many rows each index condition leaves, and on a
large district it guesses wrong: at 1,000,000 cases with none, the console's list read
every closed case and sorted them for the commonest text (4 s; 30 ms with statistics).
PostgreSQL's autovacuum analyzes by itself; SQLite's statistics are only what `ANALYZE`
wrote (migrations 0017 and 0026 analyze their own index only). So the scheduler asks
each tick (`stale`, under a millisecond) and analyzes when there are ANALYZE_FROM cases
or more and an index of the cases has no statistics, or the cases have doubled since
they were taken: some ten times in a district's life, each a full `ANALYZE` (3.4 s at
1,000,000 cases, holding the database meanwhile).
"""

from __future__ import annotations

from store.db import Connection, fetch, is_postgres

ANALYZE_FROM = 1_000
GROWTH = 2  # analyze again when the cases have grown this many times
_TABLES = ("cases", "case_facts")  # the tables whose indexes' statistics are checked


async def stale(conn: Connection) -> bool:
    """Whether SQLite's statistics are missing or old for the cases (never on
    PostgreSQL, whose autovacuum keeps its own)."""
    if is_postgres(conn):
        return False
    rows = await fetch(conn, "SELECT max(id) FROM cases")
    cases = int(rows[0][0] or 0)
    if cases < ANALYZE_FROM:
        return False
    tables = ", ".join("?" * len(_TABLES))
    if not await fetch(conn, "SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'"):
        return True
    # A partial index that holds no row gets no statistics (the open cases' when none
    # is open): only the indexes of every row are asked for theirs.
    indexes = await fetch(
        conn, "SELECT m.name, s.stat FROM sqlite_master m LEFT JOIN sqlite_stat1 s"
        f" ON s.idx = m.name WHERE m.type = 'index' AND m.tbl_name IN ({tables})"
        " AND (m.sql IS NULL OR m.sql NOT LIKE '%where%')", _TABLES)
    if any(stat is None for _, stat in indexes):
        return True
    counted = max((int(str(stat).split()[0]) for _, stat in indexes), default=0)
    return cases >= GROWTH * counted


async def analyze(conn: Connection) -> None:
    """Take the statistics of every table and index again."""
    await conn.execute("ANALYZE")

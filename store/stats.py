"""The rows the monthly indicators are computed from, and the finished months kept."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from bot.domain.clock import iso, parse_iso
from bot.domain.stats import SIGN_WINDOW, CaseFacts, EventFacts, VisitFacts, source_of
from store.db import Connection, Row, fetch, is_postgres

# The area levels whose cases are found on case_facts' indexes of that level (migration
# 0019), and the column that holds a case's area of that level.
_AREA_COLUMNS = {"street": "street_code", "community": "community_code", "grid": "grid_code"}
_FACT_COLUMNS = ("case_id, grid_code, assignee_id, urgency, registered_at, deadline,"
                 " closed_at, closed_by_level, source_channel, found_on_patrol,"
                 " community_code, category")
_FACT_COLUMNS_OF_F = ", ".join(f"f.{c}" for c in _FACT_COLUMNS.split(", "))  # as `f`


async def _area_column(conn: Connection, scope: str) -> str | None:
    """The column that names this area, when it is a street, community or grid."""
    rows = await fetch(conn, "SELECT level FROM areas WHERE code = ?", (scope,))
    return _AREA_COLUMNS.get(str(rows[0][0])) if rows else None


async def facts(conn: Connection, start: datetime, end: datetime,
                scope: str | None = None, among: Collection[int] | None = None
                ) -> tuple[list[CaseFacts], list[EventFacts]]:
    """Cases that matter to the period [start, end) (in a scope, if given) and their
    audit lines that matter to it; with `among`, of those cases only (case ids: what
    changed since the period was last read, `changed_cases`)."""
    # A case matters to the period when it falls due, arrives or closes in it, or has an
    # audit line in it (an assignment, a report of done, a rating, ...): ranges that each
    # walk an index of case_facts (an area's, of its level), rather than every case
    # created before the end; the facts are read from its narrow rows.
    span = [iso(start), iso(end)]
    # Of the audit lines, only those in the period count, and the signing for an
    # assignment made in it, which comes within the longest signing limit after it.
    events_span = [iso(start), iso(end + SIGN_WINDOW)]
    column = await _area_column(conn, scope) if scope is not None else None
    if scope is None:
        inside, where, area = "", "", []
    elif column is not None:
        inside, where, area = f" AND {column} = ?", f" AND f.{column} = ?", [scope]
    else:  # a code that is no street, community or grid: compared with all three
        inside = " AND ? IN (grid_code, community_code, street_code)"
        where, area = " AND ? IN (f.grid_code, f.community_code, f.street_code)", [scope]
    # CROSS JOIN: the audit lines by their time first (SQLite would otherwise walk the
    # area's cases and look up the lines of each).
    lines = " FROM case_events e CROSS JOIN case_facts f ON f.case_id = e.case_id"
    if among is not None:
        return await _facts_among(conn, sorted(among), span, events_span, where, area)
    params: list[object] = [*span, *area] * 4
    if is_postgres(conn):
        # Each range's rows whole, one after the other, a case once by its id here:
        # PostgreSQL joined the ids of `case_id IN (…)` by reading all of case_facts
        # (a street's month: 520-1,050 ms at 1,000,000 cases; so, 170-210 ms).
        ranges = " UNION ALL ".join(
            f"SELECT {_FACT_COLUMNS} FROM case_facts WHERE {moment} >= ? AND {moment} < ?"
            f"{inside}" for moment in ("deadline", "created_at", "closed_at"))
        sql = (f"{ranges} UNION ALL SELECT {_FACT_COLUMNS_OF_F}{lines} WHERE e.at >= ? AND e.at < ?"
               f"{where}")
        found = {int(r[0]): r for r in await fetch(conn, sql, params)}
        cases = _case_facts([found[case_id] for case_id in sorted(found)])
    else:
        sql = (f"SELECT {_FACT_COLUMNS} FROM case_facts WHERE case_id IN ("
               f"SELECT case_id FROM case_facts WHERE deadline >= ? AND deadline < ?{inside}"
               " UNION SELECT case_id FROM case_facts WHERE created_at >= ? AND created_at < ?"
               f"{inside} UNION SELECT case_id FROM case_facts WHERE closed_at >= ? AND"
               f" closed_at < ?{inside} UNION SELECT e.case_id{lines} WHERE e.at >= ? AND"
               f" e.at < ?{where}) ORDER BY case_id")
        cases = _case_facts(await fetch(conn, sql, params))
    if not cases:
        return [], []
    if is_postgres(conn):
        # The lines of the cases just read, by their ids, sorted here: joined with
        # case_facts for the area, PostgreSQL read all of the area's facts to merge them
        # (75-90 ms for a street's month, against 10-20).
        rows = sorted(await fetch(
            conn, "SELECT e.case_id, e.event, e.actor_id, e.at, e.note, e.id FROM"
            " case_events e WHERE e.at >= ? AND e.at < ? AND e.case_id IN"
            " (SELECT CAST(value AS INTEGER) FROM json_each(?))",
            [*events_span, json.dumps([c.id for c in cases])]),
            key=lambda r: (int(r[0]), int(r[5])))
    else:
        rows = await fetch(conn, f"SELECT e.case_id, e.event, e.actor_id, e.at, e.note{lines}"
                           f" WHERE e.at >= ? AND e.at < ?{where} ORDER BY e.case_id, e.id",
                           [*events_span, *area])
    return cases, _event_facts(rows)


async def _facts_among(conn: Connection, ids: list[int], span: list[str],
                       events_span: list[str], where: str, area: list[str]
                       ) -> tuple[list[CaseFacts], list[EventFacts]]:
    """`facts` of the cases `ids` only: each case by its id, kept when it matters to the
    period as `facts` says (it falls due, arrives or closes in it, or has an audit line
    in it), and in the scope."""
    if not ids:
        return [], []
    listed = ", ".join("?" * len(ids))
    sql = (f"SELECT {_FACT_COLUMNS_OF_F} FROM case_facts f WHERE f.case_id IN ({listed}){where}"
           " AND ((f.deadline >= ? AND f.deadline < ?) OR (f.created_at >= ? AND"
           " f.created_at < ?) OR (f.closed_at >= ? AND f.closed_at < ?) OR EXISTS ("
           "SELECT 1 FROM case_events e WHERE e.case_id = f.case_id AND e.at >= ?"
           " AND e.at < ?)) ORDER BY f.case_id")
    cases = _case_facts(await fetch(conn, sql, [*ids, *area, *span * 4]))
    if not cases:
        return [], []
    kept = [c.id for c in cases]
    rows = await fetch(conn, "SELECT e.case_id, e.event, e.actor_id, e.at, e.note FROM"
                       f" case_events e WHERE e.case_id IN ({', '.join('?' * len(kept))})"
                       " AND e.at >= ? AND e.at < ? ORDER BY e.case_id, e.id",
                       [*kept, *events_span])
    return cases, _event_facts(rows)


def _case_facts(rows: list[Row]) -> list[CaseFacts]:
    read = parse_iso  # stored moments: clock.iso's text, read back in UTC
    return [CaseFacts(r[0], r[1], r[2], r[3], read(r[4]) if r[4] else None,
                      read(r[5]) if r[5] else None, read(r[6]) if r[6] else None,
                      r[7], source_of(r[8], bool(r[9])), r[10], r[11], r[8]) for r in rows]


def _event_facts(rows: list[Row]) -> list[EventFacts]:
    return [EventFacts(r[0], r[1], r[2], parse_iso(r[3]),
                       int(r[4]) if r[1] == "rate" and str(r[4]).isdigit() else None)
            for r in rows]


async def changed_cases(conn: Connection, basis: int, most: int) -> list[int] | None:
    """The cases whose facts changed, or that got an audit line, after audit line
    `basis`; None when more than `most` did (reading the period again is then as
    quick)."""
    # Each walks its index from `basis` on, in order (as `changed_since`: a generic plan
    # on PostgreSQL would otherwise read the whole table for a few rows).
    found: set[int] = set()
    for sql in ("SELECT case_id FROM case_facts WHERE changed_seq > ? ORDER BY changed_seq"
                " LIMIT ?", "SELECT case_id FROM case_events WHERE id > ? ORDER BY id LIMIT ?"):
        found.update(int(r[0]) for r in await fetch(conn, sql, (basis, most + 1)))
        if len(found) > most:
            return None
    return sorted(found)


async def chief_names(conn: Connection,
                      scope: str | None = None) -> dict[int, tuple[str, str]]:
    """Grid chiefs (in a scope's grids, if given): person id → (name, grid code)."""
    rows = await fetch(
        conn, "SELECT r.person_id, p.name, r.scope FROM roles r JOIN people p"
        " ON p.id = r.person_id LEFT JOIN areas a ON a.code = r.scope"
        " WHERE r.role = 'grid_chief' AND r.revoked_at IS NULL"
        " AND (? IS NULL OR r.scope = ? OR a.parent = ? OR a.parent IN"
        " (SELECT code FROM areas WHERE parent = ?)) ORDER BY r.scope",
        (scope, scope, scope, scope))
    return {int(r[0]): (r[1] or "", r[2] or "") for r in rows}


async def visits(conn: Connection, start: datetime, end: datetime,
                 scope: str | None = None) -> list[VisitFacts]:
    """Household visits logged in [start, end), in a scope's grids if given."""
    rows = await fetch(
        conn, "SELECT v.grid_code, v.person_id, v.household_id, v.follow_up FROM visits v"
        " LEFT JOIN areas a ON a.code = v.grid_code WHERE v.at >= ? AND v.at < ?"
        " AND (? IS NULL OR v.grid_code = ? OR a.parent = ? OR a.parent IN"
        " (SELECT code FROM areas WHERE parent = ?)) ORDER BY v.id",
        (iso(start), iso(end), scope, scope, scope, scope))
    return [VisitFacts(r[0], int(r[1]), int(r[2]) if r[2] is not None else None,
                       bool(r[3])) for r in rows]


async def kept_month(conn: Connection, scope: str | None, month: str
                     ) -> tuple[int, dict[str, Any]] | None:
    """A finished month's figures as kept (`keep_month`), with their basis, if any."""
    rows = await fetch(conn, "SELECT basis, figures FROM stats_months WHERE scope = ?"
                       " AND month = ?", (scope or "", month))
    return (int(rows[0][0]), json.loads(rows[0][1])) if rows else None


async def keep_month(conn: Connection, scope: str | None, month: str, basis: int,
                     figures: dict[str, Any] | None, now: datetime) -> None:
    """Keep a finished month's figures as of audit line `basis` (None: the kept figures
    still hold at this basis, only the basis moves on)."""
    if figures is None:
        await conn.execute("UPDATE stats_months SET basis = ? WHERE scope = ? AND month = ?"
                           " AND basis < ?", (basis, scope or "", month, basis))
        return
    await conn.execute(
        "INSERT INTO stats_months (scope, month, basis, figures, computed_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope, month) DO UPDATE SET"
        " basis = excluded.basis, figures = excluded.figures,"
        " computed_at = excluded.computed_at",
        (scope or "", month, basis, json.dumps(figures, ensure_ascii=False), iso(now)))


async def changed_since(conn: Connection, basis: int, end: datetime) -> bool:
    """Whether the figures of a period ending at `end`, computed as of audit line
    `basis`, may have moved since: a case created before the end (every fact of a case,
    its deadline, closing and audit lines, comes at or after its creation) changed its
    facts after that line, or a newer audit line is dated before the end or within the
    signing window after it."""
    # ORDER BY: the walk from `basis` on, along the index of the sequence. Without it
    # PostgreSQL, once psycopg has prepared the statement (its fifth run), may keep a
    # generic plan that guesses a third of the rows newer than any `basis` and reads the
    # whole table for none (227 ms at 1,000,000 cases, against 0.1 ms).
    changed = await fetch(conn, "SELECT 1 FROM case_facts WHERE changed_seq > ?"
                          " AND created_at < ? ORDER BY changed_seq LIMIT 1",
                          (basis, iso(end)))
    if changed:
        return True
    dated = await fetch(conn, "SELECT 1 FROM case_events WHERE id > ? AND at < ?"
                        " ORDER BY id LIMIT 1", (basis, iso(end + SIGN_WINDOW)))
    return bool(dated)

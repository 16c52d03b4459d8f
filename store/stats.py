"""The rows the monthly indicators are computed from."""

from __future__ import annotations

import json
from datetime import datetime

from bot.domain.clock import iso, parse_iso
from bot.domain.stats import CaseFacts, EventFacts, VisitFacts, source_of
from store.caselist import FINISHED_SQL, OPEN_SQL
from store.db import Connection, fetch


async def facts(conn: Connection, start: datetime, end: datetime,
                scope: str | None = None) -> tuple[list[CaseFacts], list[EventFacts]]:
    """Cases that matter to the period [start, end) (in a scope, if given) and their events."""
    # A case matters to the period when it falls due, arrives or closes in it, or has an
    # audit line in it (an assignment, a report of done, a rating, ...): ranges that each
    # walk an index, rather than every case created before the end. The deadline is read
    # on the console's partial indexes of open and of finished cases (store.caselist).
    sql = ("SELECT id, workflow, source_channel FROM cases WHERE id IN ("
           f"SELECT id FROM cases WHERE {OPEN_SQL} AND deadline >= ? AND deadline < ?"
           f" UNION SELECT id FROM cases WHERE {FINISHED_SQL} AND deadline >= ?"
           " AND deadline < ?"
           " UNION SELECT id FROM cases WHERE created_at >= ? AND created_at < ?"
           " UNION SELECT id FROM cases WHERE closed_at >= ? AND closed_at < ?"
           " UNION SELECT case_id FROM case_events WHERE at >= ? AND at < ?)")
    params: list[object] = [iso(start), iso(end)] * 5
    if scope is not None:
        sql += " AND ? IN (grid_code, community_code, street_code)"
        params.append(scope)
    sql += " ORDER BY id"
    def moment(value: str | None) -> datetime | None:
        return parse_iso(value) if value else None

    cases = []
    for row in await fetch(conn, sql, params):
        # Only the few fields the indicators need, read from the workflow JSON as
        # store.cases.case_to_json wrote them (the whole model would take twice as long).
        raw = json.loads(row[1])
        cases.append(CaseFacts(row[0], raw.get("grid_code"), raw.get("assignee_id"),
                               raw["urgency"], moment(raw.get("registered_at")),
                               moment(raw.get("deadline")), moment(raw.get("closed_at")),
                               raw.get("closed_by_level"),
                               source_of(row[2], bool(raw.get("found_on_patrol"))),
                               raw.get("community_code"), raw.get("category"), row[2]))
    if not cases:
        return [], []
    ids = [c.id for c in cases]
    marks = ", ".join("?" * len(ids))
    rows = await fetch(conn, f"SELECT case_id, event, actor_id, at, note FROM case_events"
                       f" WHERE case_id IN ({marks}) ORDER BY case_id, id", ids)
    events = [EventFacts(r[0], r[1], r[2], parse_iso(r[3]),
                         int(r[4]) if r[1] == "rate" and str(r[4]).isdigit() else None)
              for r in rows]
    return cases, events


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

"""The scheduler's view of the database: what is due, and what has run already.

Deadline timers live on the case row (`warn_at`, `breach_at`, indexed where not NULL):
`timer_columns` gives their values for a case being stored, and an update keeps the
values the sweep left (cleared, or moved to the exact warning moment) as long as the
deadline and the running state stay the same (`TIMER_UPDATE_SQL`). Scheduled jobs record
each occurrence they ran in `schedule_runs`, so a restart neither repeats nor loses one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from bot.domain.clock import iso, parse_iso
from bot.domain.workflow import AuditRecord, Case, State
from store.db import Connection, fetch, is_postgres

# The states in which a case's deadline clock runs (suspended, resolved... stop it).
RUNNING = (State.REGISTERED, State.DISPATCHED, State.IN_PROGRESS)
_RUNNING_SQL = "state IN (" + ", ".join(f"'{s.value}'" for s in RUNNING) + ")"
# Events after which a case has a deadline period starting at that event.
DEADLINE_EVENTS = ("register", "escalate", "approve_extension", "resume", "reopen",
                   "check_fail")

# For store.cases.update_case: SQLite evaluates SET expressions on the old row, so
# `deadline` and `state` below are the values before the update.
TIMER_UPDATE_SQL = (
    f"warn_at = CASE WHEN deadline IS ? AND ({_RUNNING_SQL}) = ? THEN warn_at ELSE ? END,"
    f" breach_at = CASE WHEN deadline IS ? AND ({_RUNNING_SQL}) = ? THEN breach_at ELSE ? END")


def timer_columns(case: Case) -> tuple[str | None, str | None]:
    """(warn_at, breach_at) for a case as stored: both None unless its clock runs.

    warn_at starts at the registration time, which is always past: the next sweep then
    computes the exact 80% moment (in working time when the limit is) and moves it there.
    """
    if case.state not in RUNNING or case.deadline is None:
        return None, None
    start = case.registered_at or case.created_at
    return iso(start), iso(case.deadline)


def timer_update_params(case: Case) -> tuple[object, ...]:
    """The parameters of `TIMER_UPDATE_SQL` for the case being stored."""
    warn_at, breach_at = timer_columns(case)
    deadline = iso(case.deadline) if case.deadline else None
    running = case.state in RUNNING  # a bool: compared with a boolean on PostgreSQL
    return (deadline, running, warn_at, deadline, running, breach_at)


async def due_breaches(conn: Connection, now: datetime, limit: int) -> list[int]:
    """Ids of cases whose deadline has passed and was not acted on, oldest first."""
    rows = await fetch(conn, "SELECT id FROM cases WHERE breach_at IS NOT NULL"
                       " AND breach_at <= ? ORDER BY breach_at LIMIT ?", (iso(now), limit))
    return [int(r[0]) for r in rows]


async def clear_breach(conn: Connection, case_id: int) -> None:
    """The deadline breach was acted on (and the warning with it)."""
    await conn.execute("UPDATE cases SET breach_at = NULL, warn_at = NULL WHERE id = ?",
                       (case_id,))


async def postpone_breach(conn: Connection, case_id: int, until: datetime) -> None:
    """Look at a case's breach again later (it could not be acted on now)."""
    await conn.execute("UPDATE cases SET breach_at = ? WHERE id = ?", (iso(until), case_id))


async def deadline_periods(
    conn: Connection, case_ids: Sequence[int]
) -> dict[int, datetime]:
    """When each case's current deadline period began (its last deadline-setting event)."""
    if not case_ids:
        return {}
    marks = ", ".join("?" * len(case_ids))
    kinds = ", ".join("?" * len(DEADLINE_EVENTS))
    rows = await fetch(conn, f"SELECT case_id, max(at) FROM case_events WHERE case_id IN"
                       f" ({marks}) AND event IN ({kinds}) GROUP BY case_id",
                       (*case_ids, *DEADLINE_EVENTS))
    return {int(r[0]): parse_iso(r[1]) for r in rows}


async def claim_run(conn: Connection, job: str, period: str, now: datetime) -> bool:
    """Record that one occurrence of a job runs now; False if it ran before."""
    cursor = await conn.execute(
        "INSERT OR IGNORE INTO schedule_runs (job, period, done_at) VALUES (?, ?, ?)",
        (job, period, iso(now)))
    return cursor.rowcount == 1


async def get_mark(conn: Connection, name: str) -> str | None:
    """A stored watermark, or None."""
    rows = await fetch(conn, "SELECT value FROM schedule_marks WHERE name = ?", (name,))
    return str(rows[0][0]) if rows else None


async def set_mark(conn: Connection, name: str, value: str) -> None:
    """Store a watermark."""
    await conn.execute("INSERT INTO schedule_marks (name, value) VALUES (?, ?)"
                       " ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, value))


CLOSED_UNRATED_PG = ("SELECT id, reporter_id, number FROM cases WHERE state = 'closed'"
                     " AND closed_at > ? AND closed_at <= ? AND reporter_id IS NOT NULL"
                     " ORDER BY closed_at")
# SQLite, never analysed, takes the (state, changed_at) index of 0010 for "state = 'closed'"
# and reads every closed case on each tick (150-230 ms over a million); the partial index
# of closings reads only the window's. PostgreSQL has no INDEXED BY and measures alone.
CLOSED_UNRATED = CLOSED_UNRATED_PG.replace("FROM cases", "FROM cases INDEXED BY"
                                           " cases_closed_unrated")


async def closed_unrated(
    conn: Connection, after: datetime, until: datetime
) -> list[tuple[int, int, str]]:
    """(case id, reporter id, number) of cases closed in (after, until] and still unrated."""
    rows = await fetch(conn, CLOSED_UNRATED_PG if is_postgres(conn) else CLOSED_UNRATED,
                       (iso(after), iso(until)))
    return [(int(r[0]), int(r[1]), str(r[2])) for r in rows]


async def grid_chiefs(conn: Connection) -> list[tuple[int, str]]:
    """(person id, grid code) of every active grid chief."""
    rows = await fetch(conn, "SELECT person_id, scope FROM roles WHERE role = 'grid_chief'"
                       " AND revoked_at IS NULL AND scope IS NOT NULL ORDER BY person_id, scope")
    return [(int(r[0]), str(r[1])) for r in rows]


async def open_cases_of(
    conn: Connection, person_id: int, grids: Sequence[str]
) -> list[tuple[str, str, str, str | None, str, str | None]]:
    """Open cases a chief answers for: in their grids (whoever holds them now: the chief
    confirms the result on site) or assigned to them.

    Rows (number, category, state, deadline, created_at, address), overdue first, then by
    deadline.
    """
    marks = ", ".join("?" * len(grids)) or "NULL"
    open_states = ", ".join(f"'{s.value}'" for s in (*RUNNING, State.SUBMITTED,
                                                     State.RESOLVED, State.SUSPENDED))
    rows = await fetch(
        conn, f"SELECT number, category, state, deadline, created_at, address FROM cases"
        f" WHERE state IN ({open_states}) AND (grid_code IN ({marks}) OR assignee_id = ?)"
        f" ORDER BY deadline IS NULL, deadline, id LIMIT 200",
        (*grids, person_id))
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


async def due_warning_rows(
    conn: Connection, now: datetime, limit: int
) -> list[tuple[int, str, str, str | None, str | None]]:
    """Cases whose warning is due: (id, workflow JSON, description, subcategory, address)."""
    rows = await fetch(conn, "SELECT id, workflow, description, subcategory, address FROM cases"
                       " WHERE warn_at IS NOT NULL AND warn_at <= ? ORDER BY warn_at LIMIT ?",
                       (iso(now), limit))
    return [(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


async def move_warnings(conn: Connection,
                        moves: Sequence[tuple[int, datetime | None]]) -> None:
    """Move each case's warning to its exact moment (None: no warning for this deadline)."""
    await conn.executemany("UPDATE cases SET warn_at = ? WHERE id = ?",
                           [(iso(at) if at else None, case_id) for case_id, at in moves])


_RECORD_WARNINGS = (
    "UPDATE cases SET version = version + 1, warn_at = NULL,"
    " workflow = json_set(workflow, '$.version', version + 1)"
    " WHERE (id, version) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))"
    " RETURNING id")
# PostgreSQL's JSON functions differ (jsonb_set; the pairs' elements as json, cast).
_RECORD_WARNINGS_PG = (
    "UPDATE cases SET version = version + 1, warn_at = NULL,"
    " workflow = CAST(jsonb_set(CAST(workflow AS jsonb), '{version}',"
    " to_jsonb(version + 1)) AS TEXT)"
    " WHERE (id, version) IN (SELECT CAST(p.value ->> 0 AS BIGINT),"
    " CAST(p.value ->> 1 AS BIGINT) FROM json_array_elements(CAST(? AS json)) AS p (value))"
    " RETURNING id")


async def record_warnings(
    conn: Connection, warned: Sequence[tuple[int, int]], audits: Sequence[AuditRecord],
) -> set[int]:
    """Record 80% warnings in bulk: each case's version goes up by one (if it is still the
    version given: (id, version) pairs), its audit line is appended and its warning
    cleared. Returns the ids recorded; a case changed meanwhile is left for the next tick.
    """
    if not warned:
        return set()
    pairs = json.dumps([[case_id, version] for case_id, version in warned])
    rows = await fetch(conn, _RECORD_WARNINGS_PG if is_postgres(conn) else _RECORD_WARNINGS,
                       (pairs,))
    done = {int(r[0]) for r in rows}
    await conn.executemany(
        "INSERT INTO case_events (case_id, event, actor_id, actor_role, from_state, to_state,"
        " at, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(r.case_id, r.event.value, r.actor.person_id, r.actor.role.value, r.from_state.value,
          r.to_state.value, iso(r.at), r.note) for r in audits if r.case_id in done])
    return done

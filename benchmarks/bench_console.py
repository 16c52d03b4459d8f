"""Console benchmark: the case list and the case page on 1,000,000 cases (30,000 open)
over 1,000 grids (benchmarks/console_db.py).

The pages are asked through the real app (Starlette's TestClient, signed in by a
one-time link like a browser) as an administrator, who sees every case (the widest
scope), and as a street dispatcher and a grid chief. The list is asked with every filter
the page offers, alone and combined, with each sort: the server time of each answer
(the whole page rendered), p95 over all of them, goal < 100 ms. The query plans of the
page's two queries (the page and the counts per state) are printed for each filter
combination (for every status, the open and the finished half; a text search narrowed
by the trigram index of migration 0017 as the page narrows it) and checked to use an
index (no `SCAN cases` without one). Then 60 case pages (open cases with their audit
trail), goal p95 < 50 ms.

Run: python -m benchmarks.bench_console  (BENCH_CASES, BENCH_OPEN, BENCH_GRIDS, BENCH_CALLS;
BENCH_DB=path keeps and reuses a filled database; BENCH_PG=1 on PostgreSQL (plans by its
EXPLAIN, checked for no `Seq Scan on cases`), BENCH_PG_DIR=folder keeping its server:
benchmarks/console_db.py; BENCH_PLANS=1 prints the slowest combinations' plans, on
PostgreSQL with EXPLAIN (ANALYZE, BUFFERS))
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from benchmarks import console_db
from benchmarks.benchkit import StealMeter, load_average, machine_line
from benchmarks.console_db import full_scan, plan_lines
from bot.bootstrap import build
from bot.domain.clock import iso
from bot.domain.workflow import Actor, Role
from bot.entrypoints.http import create_app
from bot.runtime import loop
from bot.services import caselist, console_auth
from bot.settings import Settings
from store.caselist import as_read, count_sql, counts, halves, select_sql
from store.db import Database
from tests.serve_harness import rows

CALLS = int(os.environ.get("BENCH_CALLS", "3"))
LIST_GOAL_MS, CASE_GOAL_MS = 100.0, 50.0


def combinations(plan: console_db.Layout, today: str) -> list[dict[str, str]]:
    """Filter combinations of the list page: each filter alone, in pairs that people
    use, the browser test's, each with the three sorts and the statuses."""
    community, grid = plan.communities[3], plan.grids[77]
    alone: list[dict[str, str]] = [
        {}, {"status": "all"}, {"status": "closed"}, {"status": "registered"},
        {"category": "sanitation"}, {"urgency": "U1"}, {"community": community},
        {"grid": grid}, {"channel": "sms"}, {"overdue": "1"}, {"due_today": "1"},
        {"q": "井盖"}, {"q": "编号123456"}, {"from": today}, {"to": today},
        {"status": "all", "category": "roads"}, {"status": "all", "community": community},
        {"status": "all", "grid": grid}, {"status": "all", "q": "编号999999"},
        {"status": "all", "q": "井盖"}, {"status": "all", "q": "号楼附近"},
        {"status": "all", "q": "鼎"},
        {"status": "all", "from": (datetime.fromisoformat(today) - timedelta(days=7))
         .date().isoformat()},
        {"status": "closed", "urgency": "U1", "channel": "open311"},
        {"overdue": "1", "category": "sanitation", "community": community},
        {"overdue": "1", "urgency": "U1", "grid": grid},
        {"due_today": "1", "community": community},
        {"category": "sanitation", "q": "垃圾", "community": community},
        {"status": "all", "page": "40"},
    ]
    return [{**combo, "sort": sort} for combo in alone
            for sort in ("deadline", "newest", "changed")]


def signed_in(client: TestClient, link: str) -> None:
    """Sign the client in by its link, as the browser does."""
    path = link.split("://", 1)[1].split("/", 1)[1]
    assert client.get("/" + path, follow_redirects=False).status_code == 303
    answer = client.post("/console/login", headers={"Origin": "http://testserver"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text


ROLES = {"admin": lambda plan: [Actor(1, Role.ADMIN)],
         "dispatcher": lambda plan: [Actor(1, Role.DISPATCHER, plan.streets[0])],
         "grid_chief": lambda plan: [Actor(1, Role.GRID_CHIEF, plan.grids[5])]}


async def fresh_link(settings: Settings, person_id: int) -> str:
    """A sign-in link made just before it is used (a link works for 10 minutes), on a
    connection of its own beside the app's."""
    db = await Database.open(settings.database)
    try:
        async with db.transaction() as conn:
            return await console_auth.issue_link(conn, person_id, datetime.now(UTC),
                                                 "http://testserver")
    finally:
        await db.close()


def plans(database: Path | str, filters: caselist.Filters, now: datetime, tz: Any,
          actors: list[Actor] | None = None, *, analyze: bool = False) -> list[str]:
    """The query plans of the page's SELECTs (the open cases' and, for every status, the
    finished ones') and its counts, with the text narrowed and the halves read as the
    page does (as an administrator unless told otherwise); `analyze`: PostgreSQL's
    EXPLAIN (ANALYZE, BUFFERS)."""
    query = caselist.query_for(filters, actors or [Actor(1, Role.ADMIN)], now, tz)

    async def explain() -> list[str]:
        db = await Database.open(database)
        try:
            narrowed = await as_read(db.conn, query)
            parts = halves(narrowed, await counts(db.conn, narrowed), postgres=db.postgres)
            lines = []
            for sql, params in [*(select_sql(part) for part in parts), count_sql(narrowed)]:
                lines += await plan_lines(db.conn, sql, params, analyze=analyze)
            return lines
        finally:
            await db.close()

    return loop.run(explain())


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[18] if len(times) > 1 else times[0]


def main() -> None:
    print(machine_line("Console benchmark"))
    print(f"load average at the start: {load_average()}")
    now = datetime.now(UTC)
    with console_db.prepared(now) as (settings, plan):

        async def staff() -> dict[str, int]:
            bot = await build(settings)
            found = {}
            try:
                async with bot.db.transaction() as conn:
                    for role, scope in (("admin", None), ("dispatcher", plan.streets[0]),
                                        ("grid_chief", plan.grids[5])):
                        rows = await conn.execute_fetchall(
                            "INSERT INTO people (name, created_at) VALUES (?, ?) RETURNING id",
                            (f"bench {role}", iso(now)))
                        person = int(list(rows)[0][0])
                        await conn.execute("INSERT INTO roles (person_id, role, scope,"
                                           " granted_at) VALUES (?, ?, ?, ?)",
                                           (person, role, scope, iso(now)))
                        found[role] = person
            finally:
                await bot.close()
            return found

        people = loop.run(staff())
        tz = settings.timezone
        today = now.astimezone(tz).date().isoformat()
        combos = combinations(plan, today)
        scans = []
        shown: set[tuple[str, ...]] = set()
        for combo in combos:
            lines = plans(settings.database, caselist.Filters.from_params(combo), now, tz)
            if full_scan(lines):
                scans.append(combo)
            if tuple(lines) not in shown and combo.get("sort") == "deadline":
                shown.add(tuple(lines))
                print(f"  plan {combo}:")
                for line in lines:
                    print(f"      {line}")
        print(f"query plans: {len(combos)} combinations, {len(scans)} with a full scan of"
              f" cases{': ' + str(scans) if scans else ''}")

        steal = StealMeter()
        ok = True
        with TestClient(create_app(settings)) as client:
            for role in ("admin", "dispatcher", "grid_chief"):
                client.cookies.clear()
                signed_in(client, loop.run(fresh_link(settings, people[role])))
                times: list[tuple[float, dict[str, str]]] = []
                for combo in combos:
                    for _ in range(CALLS):
                        began = time.perf_counter()
                        answer = client.get("/console/cases", params=combo)
                        times.append(((time.perf_counter() - began) * 1000, combo))
                        assert answer.status_code == 200, answer.text[:300]
                values = [t for t, _ in times]
                worst = sorted(times, key=lambda t: -t[0])[:3]
                if os.environ.get("BENCH_PLANS"):
                    for _, combo in worst:
                        print(f"  {role} {combo}: " + " / ".join(plans(
                            settings.database, caselist.Filters.from_params(combo), now, tz,
                            ROLES[role](plan), analyze=console_db.ON_POSTGRES)))
                good = p95(values) < LIST_GOAL_MS
                ok = ok and good
                print(f"case list as {role}: {len(values)} pages over {len(combos)}"
                      f" combinations, median {statistics.median(values):.1f} ms,"
                      f" p95 {p95(values):.1f} ms (goal < {LIST_GOAL_MS:.0f} ms)"
                      f" {'ok' if good else 'MISSED'}; slowest:"
                      + "; ".join(f" {t:.0f} ms {c}" for t, c in worst))
                texts = [t for t, c in times if c.get("q")]
                others = [t for t, c in times if not c.get("q")]
                print(f"  of which text searches: {len(texts)} pages, median"
                      f" {statistics.median(texts):.1f} ms, p95 {p95(texts):.1f} ms; the"
                      f" other filters: median {statistics.median(others):.1f} ms, p95"
                      f" {p95(others):.1f} ms")
            client.cookies.clear()
            signed_in(client, loop.run(fresh_link(settings, people["admin"])))
            open_numbers = [r[0] for r in rows(
                str(settings.database), "SELECT number FROM cases WHERE state = 'registered'"
                " ORDER BY random() LIMIT 60")]
            times_case = []
            for number in open_numbers:
                began = time.perf_counter()
                answer = client.get(f"/console/cases/{number}")
                times_case.append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200, answer.text[:300]
            good = p95(times_case) < CASE_GOAL_MS
            ok = ok and good
            print(f"case page: {len(times_case)} open cases, median"
                  f" {statistics.median(times_case):.1f} ms, p95 {p95(times_case):.1f} ms"
                  f" (goal < {CASE_GOAL_MS:.0f} ms) {'ok' if good else 'MISSED'}")
        print(f"{steal.line()}; load average at the end {load_average()}")
        print("console benchmark: " + ("all goals met" if ok and not scans else
                                       "a goal was MISSED"))


if __name__ == "__main__":
    main()

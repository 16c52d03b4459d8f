"""Console statistics benchmark: the statistics page of a street for a month, with
1,000,000 cases in the database (the big district of benchmarks/console_db.py: 5 streets,
1,000 grids, 30,000 open cases).

Asked through the real app (Starlette's TestClient, signed in by a one-time link) as the
street's dispatcher, server time of the whole answer:

- the page for this month and for last month, the first time (the month's report
  computed: `stats.month_report`, as `gridbot stats`);
- the page again after a case changed (a new audit line: computed again);
- the page while nothing changed (the app keeps the report it computed: the goal,
  median under 300 ms over BENCH_CALLS calls);
- the charts' data (12 months: the first time computes the 11 earlier months too),
  the XLSX export, and a community's page.

Run: python -m benchmarks.bench_console_stats  (BENCH_CASES, BENCH_OPEN, BENCH_GRIDS,
BENCH_CALLS; BENCH_DB=path keeps and reuses a filled database)
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.testclient import TestClient

from benchmarks import console_db
from benchmarks.bench_console import fresh_link, signed_in
from benchmarks.benchkit import StealMeter, machine_line
from bot.bootstrap import build
from bot.domain.clock import iso
from bot.entrypoints.http import create_app
from bot.runtime import loop
from bot.services.stats import month_of

CALLS = int(os.environ.get("BENCH_CALLS", "10"))
GOAL_MS = 300.0


def timed(client: TestClient, url: str) -> float:
    """Milliseconds for one GET answered 200."""
    started = time.perf_counter()
    answer = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
    return elapsed


def touch_a_case(database: Path, now: datetime) -> None:
    """Write one audit line, as any action does: every kept report is now stale."""
    with sqlite3.connect(database) as conn:
        conn.execute("INSERT INTO case_events (case_id, event, actor_id, actor_role,"
                     " from_state, to_state, at, note) SELECT id, 'note', NULL, 'system',"
                     " state, state, ?, '' FROM cases WHERE state = 'registered' LIMIT 1",
                     (iso(now),))


def main() -> None:
    print(machine_line("Console statistics benchmark"))
    now = datetime.now(UTC)
    with console_db.prepared(now) as (settings, plan):
        street, community = plan.streets[0], plan.communities[0]

        async def dispatcher() -> int:
            bot = await build(settings)
            try:
                async with bot.db.transaction() as conn:
                    rows = await conn.execute_fetchall(
                        "INSERT INTO people (name, created_at) VALUES (?, ?) RETURNING id",
                        ("bench dispatcher", iso(now)))
                    person = int(list(rows)[0][0])
                    await conn.execute("INSERT INTO roles (person_id, role, scope, granted_at)"
                                       " VALUES (?, ?, ?, ?)",
                                       (person, "dispatcher", street, iso(now)))
            finally:
                await bot.close()
            return person

        person = loop.run(dispatcher())
        tz = settings.timezone
        this_month = f"{now.astimezone(tz):%Y-%m}"
        last_start, _ = month_of(month_of(now, tz)[0] - timedelta(days=1), tz)
        last_month = f"{last_start:%Y-%m}"
        with sqlite3.connect(settings.database) as conn:
            cases_in_month = conn.execute(
                "SELECT count(*) FROM cases WHERE street_code = ? AND created_at >= ?"
                " AND created_at < ?", (street, iso(month_of(now, tz)[0]), iso(now))).fetchone()
        meter = StealMeter()
        bot = loop.run(build(settings))
        try:
            app = create_app(settings, bot)
            app.state.gridbot = bot
            with TestClient(app) as client:
                signed_in(client, loop.run(fresh_link(settings, person)))
                page = f"/console/stats?month={this_month}&scope={street}"
                first = timed(client, page)
                warm = [timed(client, page) for _ in range(CALLS)]
                touch_a_case(settings.database, now)
                changed = timed(client, page)
                last_first = timed(client, f"/console/stats?month={last_month}&scope={street}")
                data_first = timed(client, f"/console/stats/data.json?month={this_month}"
                                   f"&scope={street}")
                data_warm = [timed(client, f"/console/stats/data.json?month={this_month}"
                                   f"&scope={street}") for _ in range(CALLS)]
                xlsx = timed(client, f"/console/stats/export.xlsx?month={this_month}"
                             f"&scope={street}")
                community_first = timed(client, f"/console/stats?month={this_month}"
                                        f"&scope={community}")
        finally:
            loop.run(bot.close())
        median = statistics.median(warm)
        print(f"street {street}, {this_month}: {cases_in_month[0]:,} cases reported so far"
              f" this month in the street")
        print(f"  page, first time (report computed):      {first:8.0f} ms")
        print(f"  page, nothing changed (kept report):      median {median:6.1f} ms,"
              f" max {max(warm):6.1f} ms over {CALLS} calls"
              f"  goal < {GOAL_MS:.0f} ms: {'met' if median < GOAL_MS else 'NOT met'}")
        print(f"  page after a case changed (recomputed):  {changed:8.0f} ms"
              f"  goal < {GOAL_MS:.0f} ms: {'met' if changed < GOAL_MS else 'NOT met'}")
        print(f"  last month ({last_month}), first time:        {last_first:8.0f} ms")
        print(f"  chart data, first time (12 months):      {data_first:8.0f} ms;"
              f" then median {statistics.median(data_warm):.1f} ms")
        print(f"  XLSX export:                             {xlsx:8.0f} ms")
        print(f"  a community's page, first time:          {community_first:8.0f} ms")
        print(meter.line())


if __name__ == "__main__":
    main()

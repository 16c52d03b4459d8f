"""Console statistics benchmark: the statistics page of a street for a month, with
1,000,000 cases in the database (the big district of benchmarks/console_db.py: 5 streets,
1,000 grids, 30,000 open cases).

Asked through the real app (Starlette's TestClient, signed in by a one-time link) as the
street's dispatcher, server time of the whole answer:

- the page for this month, the first time after the app started;
- the page while nothing changed (the app keeps the report it computed): p50, p95;
- the page cold: right after a case changed (a new audit line), so that no report kept
  in memory may be used and the month is computed again, from its facts kept up to date
  by reading the cases changed (`stats.MonthFacts`): p50, p95 over BENCH_CALLS changes
  (the goal: under 300 ms);
- the same with the month's facts read whole (what the first call after a start, and
  the first a minute after the last whole read, do): p50, p95;
- last month's page the first time;
- the charts' data (the 12-month trend): the first time with no finished month kept in
  the database (stats_months emptied: as just after the upgrade), then cold (after a
  change: this month computed again, the finished months checked and read back), then
  warm: p50, p95 (the goal: cold under 300 ms);
- the XLSX export, and a community's page.

For the cold answers the process's CPU time is printed too: on a shared, loaded host the
wall time is mostly waiting for a core.

Run: python -m benchmarks.bench_console_stats  (BENCH_CASES, BENCH_OPEN, BENCH_GRIDS,
BENCH_CALLS; BENCH_DB=path keeps and reuses a filled database; BENCH_PG=1 on PostgreSQL,
BENCH_PG_DIR=folder keeping its server: benchmarks/console_db.py)
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.testclient import TestClient

from benchmarks import console_db
from benchmarks.bench_console import fresh_link, signed_in
from benchmarks.benchkit import StealMeter, load_average, machine_line
from bot.bootstrap import build
from bot.domain.clock import iso
from bot.entrypoints.http import create_app
from bot.runtime import loop
from bot.services.console_stats import ReportMemory
from bot.services.stats import month_of
from tests.serve_harness import count, execute

CALLS = int(os.environ.get("BENCH_CALLS", "10"))
GOAL_MS = 300.0


def timed(client: TestClient, url: str, cpu: list[float] | None = None) -> float:
    """Milliseconds for one GET answered 200 (and the process's CPU milliseconds for it
    appended to `cpu`: the app runs in this process; on a loaded host the wall time is
    mostly waiting for a core)."""
    started, used = time.perf_counter(), time.process_time()
    answer = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    if cpu is not None:
        cpu.append((time.process_time() - used) * 1000)
    assert answer.status_code == 200, (url, answer.status_code, answer.text[:300])
    return elapsed


def touch_a_case(database: Path | str, now: datetime) -> None:
    """Write one audit line, as any action does: every kept report is now stale."""
    execute(str(database), "INSERT INTO case_events (case_id, event, actor_id, actor_role,"
            " from_state, to_state, at, note) SELECT id, 'note', NULL, 'system', state,"
            " state, ?, '' FROM cases WHERE state = 'registered' LIMIT 1", (iso(now),))


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
        cases_in_month = count(
            str(settings.database), "SELECT count(*) FROM cases WHERE street_code = ? AND"
            " created_at >= ? AND created_at < ?", (street, iso(month_of(now, tz)[0]), iso(now)))
        meter = StealMeter()
        bot = loop.run(build(settings))
        try:
            app = create_app(settings, bot)
            app.state.gridbot = bot
            with TestClient(app) as client:
                signed_in(client, loop.run(fresh_link(settings, person)))
                query = f"month={this_month}&scope={street}"
                page, data = f"/console/stats?{query}", f"/console/stats/data.json?{query}"
                first = timed(client, page)
                warm = [timed(client, page) for _ in range(CALLS)]
                cold: list[float] = []
                cold_cpu: list[float] = []
                for _ in range(CALLS):
                    touch_a_case(settings.database, now)
                    cold.append(timed(client, page, cold_cpu))
                whole: list[float] = []
                for _ in range(CALLS):
                    touch_a_case(settings.database, now)
                    app.state.stats_memory = ReportMemory()  # nothing kept: read whole
                    whole.append(timed(client, page))
                last_first = timed(client, f"/console/stats?month={last_month}&scope={street}")
                forget_kept_months(settings.database)
                touch_a_case(settings.database, now)
                trend_first = timed(client, data)
                trend_cold: list[float] = []
                trend_cpu: list[float] = []
                for _ in range(CALLS):
                    touch_a_case(settings.database, now)
                    trend_cold.append(timed(client, data, trend_cpu))
                trend_warm = [timed(client, data) for _ in range(CALLS)]
                xlsx = timed(client, f"/console/stats/export.xlsx?{query}")
                community_first = timed(client, f"/console/stats?month={this_month}"
                                        f"&scope={community}")
        finally:
            loop.run(bot.close())
        print(f"street {street}, {this_month}: {cases_in_month:,} cases reported so far"
              f" this month in the street; {CALLS} calls each; load {load_average()}")
        print(f"  page, first time after start:            {first:8.0f} ms")
        print(f"  page, nothing changed (warm):            {spread(warm)}")
        print(f"  page after a case changed (cold):        {spread(cold)}"
              f"  goal < {GOAL_MS:.0f} ms: {met(cold)}")
        print(f"    CPU of the process for it:             {spread(cold_cpu)}")
        print(f"  the same, the month read whole:          {spread(whole)}"
              f"  goal < {GOAL_MS:.0f} ms: {met(whole)}")
        print(f"  last month ({last_month}), first time:        {last_first:8.0f} ms")
        print(f"  chart data (12 months), no month kept:   {trend_first:8.0f} ms")
        print(f"  chart data after a case changed (cold):  {spread(trend_cold)}"
              f"  goal < {GOAL_MS:.0f} ms: {met(trend_cold)}")
        print(f"    CPU of the process for it:             {spread(trend_cpu)}")
        print(f"  chart data, nothing changed (warm):      {spread(trend_warm)}")
        print(f"  XLSX export:                             {xlsx:8.0f} ms")
        print(f"  a community's page, first time:          {community_first:8.0f} ms")
        print(meter.line())


def percentile(values: list[float], share: float) -> float:
    """The value below which this share of the values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def spread(values: list[float]) -> str:
    """p50 and p95 of timings, in ms."""
    return (f"p50 {statistics.median(values):6.1f} ms, p95 {percentile(values, 0.95):6.1f} ms")


def met(values: list[float]) -> str:
    """Whether the p95 is under the goal."""
    return "met" if percentile(values, 0.95) < GOAL_MS else "NOT met"


def forget_kept_months(database: Path | str) -> None:
    """Empty the finished months kept in the database (if this version keeps them)."""
    if console_db.has_table(database, "stats_months"):
        execute(str(database), "DELETE FROM stats_months")


if __name__ == "__main__":
    main()

"""Console map benchmark: the map's data (/console/map/data.json: every grid's outline
with its counts, and the matching cases as points) on 1,000,000 cases (30,000 open) over
1,000 grids (benchmarks/console_db.py, the case list benchmark's district).

Asked through the real app (Starlette's TestClient, signed in by a one-time link like a
browser) as an administrator (every grid, 30,000 open cases), a street dispatcher (the
street's 200 grids, 6,000 open cases) and a grid chief, with the list's filters alone and
combined (the open cases, which the map is for): the server time of each answer with the
JSON, p95 over all of them, goal < 200 ms. Past `casemap.POINTS_AT_ONCE` matching cases
the first answer (the whole area, no bounds) holds the grids' counts and no points; the
page then asks for its view's bounds, timed too: zoomed to one community (20 grids, about
600 open cases), with the same filters. The query plans of its queries (the counts per
grid, the points) are printed and checked to use an index. The answer to a poll while
nothing changed (304, by ETag) is timed too. Closed and all-status maps are timed apart:
they draw the latest 2,000 filed and have no goal.

Run: python -m benchmarks.bench_console_map  (BENCH_CASES, BENCH_OPEN, BENCH_GRIDS,
BENCH_CALLS, BENCH_DB to keep the filled database between runs; BENCH_PG=1 on
PostgreSQL, BENCH_PG_DIR=folder keeping its server: benchmarks/console_db.py)
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from benchmarks import console_db
from benchmarks.bench_console import p95, signed_in
from benchmarks.benchkit import StealMeter, load_average, machine_line
from benchmarks.console_db import full_scan, plan_lines
from bot.bootstrap import build
from bot.domain.clock import iso
from bot.domain.workflow import Actor, Role
from bot.entrypoints.http import create_app
from bot.runtime import loop
from bot.services import caselist, casemap, console_auth
from store.casemap import Box, cases_sql, counts_sql
from store.db import Database

CALLS = int(os.environ.get("BENCH_CALLS", "3"))
GOAL_MS = 200.0


def combinations(plan: console_db.Layout, today: str) -> list[dict[str, str]]:
    """The map's filters (the list's, without the sort): each alone and in pairs."""
    community, grid = plan.communities[3], plan.grids[77]
    return [
        {}, {"status": "registered"}, {"category": "sanitation"}, {"urgency": "U1"},
        {"community": community}, {"grid": grid}, {"channel": "sms"}, {"overdue": "1"},
        {"due_today": "1"}, {"q": "井盖"}, {"from": today}, {"to": today},
        {"overdue": "1", "category": "sanitation", "community": community},
        {"overdue": "1", "urgency": "U1"}, {"due_today": "1", "community": community},
        {"category": "sanitation", "q": "垃圾"},
    ]


def plans(database: Path | str, filters: caselist.Filters, now: datetime, tz: Any,
          actors: list[Actor], within: Box | None) -> list[str]:
    """The query plans of the map's queries (the outlines aside): the counts per grid and
    the points (of the view's bounds, when given)."""
    query = caselist.query_for(filters, actors, now, tz)

    async def explain() -> list[str]:
        db = await Database.open(database)
        try:
            lines = []
            for sql, params in (counts_sql(query, now), cases_sql(
                    query, now, casemap.POINTS_AT_ONCE + 1, within=within)):
                lines += await plan_lines(db.conn, sql, params)
            return lines
        finally:
            await db.close()

    return loop.run(explain())


def community_view(plan: console_db.Layout, community: str) -> Box:
    """The bounds a page zoomed to one community asks for: its grids and a tenth more on
    each side (bot/static/console/map.js pads the view so)."""
    indexes = [i for i, grid in enumerate(plan.grids) if plan.community_of(grid) == community]
    lats = [console_db.grid_centre(i)[0] for i in indexes]
    lons = [console_db.grid_centre(i)[1] for i in indexes]
    south, north = min(lats) - console_db.CELL / 2, max(lats) + console_db.CELL / 2
    west, east = min(lons) - console_db.CELL / 2, max(lons) + console_db.CELL / 2
    pad_lat, pad_lon = (north - south) * 0.1, (east - west) * 0.1
    return west - pad_lon, south - pad_lat, east + pad_lon, north + pad_lat


def main() -> None:
    print(machine_line("Console map benchmark"))
    print(f"load average at the start: {load_average()}")
    now = datetime.now(UTC)
    with console_db.prepared(now) as (settings, plan):
        roles = {"admin": (None, [Actor(1, Role.ADMIN)]),
                 "grid_chief": (plan.grids[5], [Actor(1, Role.GRID_CHIEF, plan.grids[5])]),
                 "dispatcher": (plan.streets[0], [Actor(1, Role.DISPATCHER, plan.streets[0])])}

        async def staff() -> dict[str, str]:
            bot = await build(settings)
            links = {}
            try:
                async with bot.db.transaction() as conn:
                    for role, (scope, _) in roles.items():
                        rows = await conn.execute_fetchall(
                            "INSERT INTO people (name, created_at) VALUES (?, ?) RETURNING id",
                            (f"bench map {role}", iso(now)))
                        person = int(list(rows)[0][0])
                        await conn.execute("INSERT INTO roles (person_id, role, scope,"
                                           " granted_at) VALUES (?, ?, ?, ?)",
                                           (person, role, scope, iso(now)))
                        links[role] = await console_auth.issue_link(conn, person, now,
                                                                    "http://testserver")
            finally:
                await bot.close()
            return links

        links = loop.run(staff())
        tz = settings.timezone
        today = now.astimezone(tz).date().isoformat()
        combos = combinations(plan, today)
        zoomed = community_view(plan, plan.communities[3])  # in the dispatcher's street
        scans = []
        shown: set[tuple[str, ...]] = set()
        for role, (_, actors) in roles.items():
            for combo in combos:
                for within in (None, zoomed):
                    lines = plans(settings.database, caselist.Filters.from_params(combo),
                                  now, tz, actors, within)
                    if full_scan(lines):
                        scans.append((role, combo, within))
                    if tuple(lines) not in shown and role != "grid_chief":
                        shown.add(tuple(lines))
                        print(f"  plan {role} {combo}{' zoomed' if within else ''}:")
                        for line in lines:
                            print(f"      {line}")
        print(f"query plans: {len(combos) * len(roles) * 2} role, filter and view"
              f" combinations, {len(scans)} with a full scan of cases"
              f"{': ' + str(scans) if scans else ''}")

        steal = StealMeter()
        ok = True
        sizes: dict[tuple[str, str], tuple[int, bool]] = {}
        bbox = ",".join(f"{edge:.5f}" for edge in zoomed)
        views = {"whole area": {}, "zoomed to a community": {"bbox": bbox}}
        with TestClient(create_app(settings)) as client:
            for role in roles:
                client.cookies.clear()
                signed_in(client, links[role])
                for view, extra in views.items():
                    if role == "grid_chief" and extra:
                        continue  # a grid's 30 cases never come as counts
                    times: list[tuple[float, dict[str, str], int, int]] = []
                    polls = []
                    aggregated = 0
                    for combo in combos:
                        for _ in range(CALLS):
                            began = time.perf_counter()
                            answer = client.get("/console/map/data.json",
                                                params={**combo, **extra})
                            elapsed = (time.perf_counter() - began) * 1000
                            assert answer.status_code == 200, answer.text[:300]
                            data = answer.json()
                            if not combo:
                                sizes[(role, view)] = (len(answer.content),
                                                       bool(data.get("aggregated")))
                            aggregated += bool(data.get("aggregated"))
                            times.append((elapsed, combo, len(data["grids"]["features"]),
                                          len(data["points"])))
                            began = time.perf_counter()
                            again = client.get("/console/map/data.json",
                                               params={**combo, **extra},
                                               headers={"If-None-Match": answer.headers["etag"]})
                            # 200 when a minute turned in between (the ETag holds the minute)
                            if again.status_code == 304:
                                polls.append((time.perf_counter() - began) * 1000)
                    values = [t[0] for t in times]
                    worst = sorted(times, key=lambda t: -t[0])[:3]
                    widest = max(times, key=lambda t: t[3])
                    good = p95(values) < GOAL_MS
                    ok = ok and good
                    print(f"map data as {role}, {view}: {len(values)} answers over"
                          f" {len(combos)} filter combinations ({aggregated} as per-grid"
                          f" counts; up to {widest[2]:,} grids and {widest[3]:,} points),"
                          f" median {statistics.median(values):.1f} ms, p95"
                          f" {p95(values):.1f} ms (goal < {GOAL_MS:.0f} ms)"
                          f" {'ok' if good else 'MISSED'}; slowest:"
                          + "; ".join(f" {t:.0f} ms {c} ({n:,} points)" for t, c, _, n in worst))
                    if polls:
                        print(f"  a poll while nothing changed (304): median"
                              f" {statistics.median(polls):.1f} ms, p95 {p95(polls):.1f} ms")
            for status in ("closed", "all"):
                began = time.perf_counter()
                answer = client.get("/console/map/data.json", params={"status": status})
                elapsed = (time.perf_counter() - began) * 1000
                assert answer.status_code == 200, answer.text[:300]
                data = answer.json()
                print(f"map data as dispatcher, status={status} (no goal):"
                      f" {len(data['points']):,} points{' (capped)' if data['truncated'] else ''}"
                      f" in {elapsed:.0f} ms")
            for (role, view), (size, counted) in sizes.items():
                print(f"map data size as {role}, {view}, no filter: {size:,} bytes of JSON"
                      f"{' (per-grid counts)' if counted else ''}")
        print(f"{steal.line()}; load average at the end {load_average()}")
        print("console map benchmark: " + ("all goals met" if ok and not scans else
                                           "a goal was MISSED"))


if __name__ == "__main__":
    main()

"""A big district for the console's benchmarks: 1,000 grids (5 streets × 10 communities
× 20 grids, square outlines) and 1,000,000 cases over the last year, 30,000 of them open,
written straight into SQLite as bench_outbox.py and bench_open311.py do (after `build`
migrated the file), with each case's workflow JSON, and the audit trail (submit,
register) of the open ones.

    fill(database, now)         # BENCH_CASES, BENCH_OPEN, BENCH_GRIDS override the sizes
    prepared(now)               # the benchmarks' settings over it (BENCH_DB, BENCH_PG)

With BENCH_PG=1 the benchmarks run on PostgreSQL: a server of Debian's package started
for the run (tests/pg_harness.py; fsync on), the filled SQLite file moved into it with
`gridbot copy-database` as a deployment moves, then VACUUM ANALYZE. The copy of a
million cases takes minutes: BENCH_PG_DIR=folder keeps the server's data there for the
next runs. BENCH_PG_CTYPE: the database's LC_CTYPE (C.UTF-8 unless told; see PG_CTYPE).

Open cases: a third overdue, some due today, the rest later; every category of the
catalog, the four urgencies, the channels in proportion (Telegram, SMS, Open311).
"""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.benchkit import copy_to_postgres
from bot.bootstrap import build
from bot.domain.categories import Catalog
from bot.domain.clock import iso
from bot.domain.workflow import Level, State, new_case
from bot.runtime import loop
from bot.settings import Settings
from store.cases import OPEN_STATES, case_to_json
from store.db import Connection, fetch, is_postgres
from store.pg import is_postgres_url
from tests.pg_harness import running_server
from tests.serve_harness import rows

CASES = int(os.environ.get("BENCH_CASES", "1000000"))
OPEN = int(os.environ.get("BENCH_OPEN", "30000"))
GRIDS = int(os.environ.get("BENCH_GRIDS", "1000"))
# BENCH_PG=1: on PostgreSQL (a server started for the run; BENCH_PG_DIR keeps its folder
# and the copied district between runs), instead of the SQLite file.
ON_POSTGRES = os.environ.get("BENCH_PG", "") not in ("", "0")
# The database's character classes (LC_CTYPE; its collation stays C). pg_trgm finds the
# words of a text by them: under C no Chinese character is a letter, so a Chinese text has
# no trigrams and the list's trigram indexes (migration 0017) cannot narrow a search for
# one. C.UTF-8, as a cluster made on a UTF-8 system gets, is the default; BENCH_PG_CTYPE=C
# measures the other (tests/pg_harness.py's own databases are C).
PG_CTYPE = os.environ.get("BENCH_PG_CTYPE", "C.UTF-8")
PG_DATABASE = "console" + ("" if PG_CTYPE == "C" else "_" + re.sub(r"\W", "", PG_CTYPE).lower())
COUNTY = "330106"
STREETS, COMMUNITIES = 5, 10  # per county, per street; grids per community: the rest
CELL = 0.002  # degrees: a grid's side
ORIGIN = (30.20, 120.05)
CHANNELS = ("telegram",) * 5 + ("sms",) * 3 + ("open311",) + ("sim-telegram",)
WORDS = ("垃圾堆放", "路灯不亮", "井盖松动", "占道经营", "噪音扰民", "树枝断落", "污水外溢",
         "违章停车", "小广告", "楼道堆物")
OPEN_SHARES = (State.REGISTERED, State.REGISTERED, State.DISPATCHED, State.IN_PROGRESS,
               State.RESOLVED)


@dataclass(frozen=True)
class Layout:
    """The codes of the big district."""

    streets: list[str]
    communities: list[str]  # in street order
    grids: list[str]  # in community order

    def community_of(self, grid: str) -> str:
        """A grid's community code."""
        return grid[:-2] + "00"

    def street_of(self, code: str) -> str:
        """An area's street code."""
        return code[:9] + "00000"


def layout(grids: int = GRIDS) -> Layout:
    """Streets, communities and grids: 14-digit codes as the national norm has them."""
    per_community = max(1, grids // (STREETS * COMMUNITIES))
    streets, communities, grid_codes = [], [], []
    for s in range(1, STREETS + 1):
        street = f"{COUNTY}{s:03d}00000"
        streets.append(street)
        for c in range(1, COMMUNITIES + 1):
            community = f"{COUNTY}{s:03d}{c:03d}00"
            communities.append(community)
            grid_codes += [f"{COUNTY}{s:03d}{c:03d}{g:02d}" for g in range(1, per_community + 1)]
    return Layout(streets, communities, grid_codes[:grids])


def _square(row: int, col: int, size: float = CELL) -> dict[str, Any]:
    lat, lon = ORIGIN[0] + row * size, ORIGIN[1] + col * size
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size],
            [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def _bounds(squares: list[dict[str, Any]]) -> dict[str, Any]:
    xs = [x for sq in squares for x, _ in sq["coordinates"][0]]
    ys = [y for sq in squares for _, y in sq["coordinates"][0]]
    ring = [[min(xs), min(ys)], [max(xs), min(ys)], [max(xs), max(ys)], [min(xs), max(ys)],
            [min(xs), min(ys)]]
    return {"type": "Polygon", "coordinates": [ring]}


def grid_centre(index: int, per_row: int = 40) -> tuple[float, float]:
    """The centre (lat, lon) of the grid at this index of `layout().grids`."""
    row, col = divmod(index, per_row)
    return ORIGIN[0] + (row + 0.5) * CELL, ORIGIN[1] + (col + 0.5) * CELL


def fill_areas(conn: sqlite3.Connection, plan: Layout, now: datetime, per_row: int = 40
               ) -> None:
    """The district, its streets, communities and grids, with square outlines."""
    stamp = iso(now)
    squares = {code: _square(*divmod(i, per_row)) for i, code in enumerate(plan.grids)}
    rows: list[tuple[Any, ...]] = []
    county = f"{COUNTY}00000000"
    rows.append((county, "大区", "Big District", "district", None,
                 json.dumps(_bounds(list(squares.values()))), stamp))
    for s, street in enumerate(plan.streets, 1):
        inside = [sq for code, sq in squares.items() if plan.street_of(code) == street]
        rows.append((street, f"第{s}街道", f"Street {s}", "street", county,
                     json.dumps(_bounds(inside or [_square(0, 0)])), stamp))
    for community in plan.communities:
        inside = [sq for code, sq in squares.items() if plan.community_of(code) == community]
        n = int(community[9:12])
        rows.append((community, f"{community[6:9]}街道第{n}社区", f"Community {community[6:12]}",
                     "community", plan.street_of(community),
                     json.dumps(_bounds(inside or [_square(0, 0)])), stamp))
    for code, square in squares.items():
        rows.append((code, f"{code[9:12]}社区第{int(code[12:])}网格", f"Grid {code[9:]}",
                     "grid", plan.community_of(code), json.dumps(square), stamp))
    conn.executemany("INSERT INTO areas (code, name, name_en, level, parent, geometry,"
                     " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def fill(database: Path, now: datetime, *, cases: int = CASES, open_cases: int = OPEN,
         grids: int = GRIDS, seed: int = 13) -> Layout:
    """Fill a migrated, empty database with the big district and its cases."""
    plan = layout(grids)
    catalog = Catalog.default()
    categories = [(c.code, c.subcategories[0].code if c.subcategories else None)
                  for c in catalog.categories]
    chance = random.Random(seed)
    span = timedelta(days=365)
    start = now - span
    template = new_case("NUMBER", "sanitation", "U2", None, plan.grids[0],
                        plan.community_of(plan.grids[0]), plan.streets[0], None, now)

    # The workflow JSON of each state once, with markers replaced per case (fast).
    marked = replace(template, category="@CAT@", urgency="@URG@", grid_code="@GRID@",
                     community_code="@COMM@", street_code="@STREET@", version=2,
                     level=Level.GRID)
    created_mark, deadline_mark = now - timedelta(days=999), now + timedelta(days=999)
    texts = {state: case_to_json(replace(
        marked, state=state, created_at=created_mark, registered_at=created_mark,
        deadline=deadline_mark,
        closed_at=deadline_mark if state == State.CLOSED else None))
        for state in (*OPEN_SHARES, State.CLOSED)}
    created_text, deadline_text = iso(created_mark), iso(deadline_mark)

    def workflow_json(number: str, state: State, created: datetime,
                      deadline: datetime, category: str, urgency: str, grid: str) -> str:
        text = texts[state]
        for mark, value in (("NUMBER", number), ("@CAT@", category), ("@URG@", urgency),
                            ("@GRID@", grid), ("@COMM@", plan.community_of(grid)),
                            ("@STREET@", plan.street_of(grid)), (created_text, iso(created)),
                            (deadline_text, iso(deadline))):
            text = text.replace(mark, value)
        return text

    def rows() -> Iterator[tuple[Any, ...]]:
        for i in range(cases):
            is_open = (i * open_cases) // cases != ((i + 1) * open_cases) // cases
            created = start + span * (i / cases)
            grid_index = chance.randrange(len(plan.grids))
            grid = plan.grids[grid_index]
            category, sub = categories[chance.randrange(len(categories))]
            urgency = ("U1", "U2", "U2", "U3", "U3", "U3", "U4")[chance.randrange(7)]
            if is_open:
                state = OPEN_SHARES[chance.randrange(len(OPEN_SHARES))]
                created = now - timedelta(days=chance.uniform(0, 20))
                kind = chance.randrange(10)
                deadline = (now - timedelta(hours=chance.uniform(1, 200)) if kind < 3 else
                            now + timedelta(hours=chance.uniform(0.2, 6)) if kind < 5 else
                            now + timedelta(days=chance.uniform(1, 10)))
            else:
                state = State.CLOSED
                deadline = created + timedelta(days=chance.uniform(0.2, 15))
            lat, lon = grid_centre(grid_index)
            number = f"{250000 + i // 9999:06d}-{i % 9999 + 1:04d}"  # digits, as real ones
            text = f"{chance.choice(WORDS)}，{chance.randrange(1, 40)}号楼附近，编号{i}"
            yield (number, state.value, category, sub, urgency, "general",
                   "grid", grid, plan.community_of(grid), plan.street_of(grid), None, None,
                   1 + i % 10_000, text, f"{chance.randrange(1, 40)}号楼",
                   lat + chance.uniform(-CELL / 3, CELL / 3),
                   lon + chance.uniform(-CELL / 3, CELL / 3),
                   CHANNELS[i % len(CHANNELS)], iso(created), iso(deadline),
                   iso(deadline) if state == State.CLOSED else None,  # as in the JSON
                   workflow_json(number, state, created, deadline, category, urgency, grid),
                   2, None, None,  # no deadline timer due: the scheduler has nothing to do
                   iso(created + timedelta(minutes=30)))

    with sqlite3.connect(database) as conn:
        # Bulk inserts go faster without the cases' indexes (and their facts'): drop them,
        # insert, make them again (as they were created by the migrations).
        tables = "tbl_name IN ('cases', 'case_facts') AND sql IS NOT NULL"
        indexes = [str(r[0]) for r in conn.execute(
            f"SELECT sql FROM sqlite_master WHERE type = 'index' AND {tables}")]
        for name in [str(r[0]) for r in conn.execute(
                f"SELECT name FROM sqlite_master WHERE type = 'index' AND {tables}")]:
            conn.execute(f"DROP INDEX {name}")
        fill_areas(conn, plan, now)
        conn.executemany("INSERT INTO people (name, created_at) VALUES (?, ?)",
                         ((f"居民{i}", iso(start)) for i in range(10_000)))
        conn.executemany(
            "INSERT INTO cases (number, state, category, subcategory, urgency, procedure,"
            " level, grid_code, community_code, street_code, department, assignee_id,"
            " reporter_id, description, address, lat, lon, source_channel, created_at,"
            " deadline, closed_at, workflow, version, warn_at, breach_at, changed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?)", rows())
        # What the statistics read of each case (store.cases writes it with the case).
        conn.execute(
            "INSERT INTO case_facts (case_id, street_code, community_code, grid_code,"
            " created_at, registered_at, deadline, closed_at, closed_by_level, assignee_id,"
            " urgency, category, source_channel, found_on_patrol) SELECT id, street_code,"
            " community_code, grid_code, created_at, created_at, deadline, closed_at, NULL,"
            " assignee_id, urgency, category, source_channel, 0 FROM cases")
        marks = ", ".join("?" * len(OPEN_STATES))
        conn.execute(
            "INSERT INTO case_events (case_id, event, actor_id, actor_role, from_state,"
            " to_state, at, note) SELECT id, 'submit', reporter_id, 'resident', 'submitted',"
            f" 'submitted', created_at, '' FROM cases WHERE state IN ({marks})", OPEN_STATES)
        conn.execute(
            "INSERT INTO case_events (case_id, event, actor_id, actor_role, from_state,"
            " to_state, at, note) SELECT id, 'register', NULL, 'system', 'submitted',"
            f" 'registered', created_at, '' FROM cases WHERE state IN ({marks})", OPEN_STATES)
        for sql in indexes:
            conn.execute(sql)
        conn.execute("ANALYZE")
    return plan


def _filled_sqlite(folder: Path, now: datetime) -> Path:
    """The big SQLite file, migrated: filled now in `folder`, or `BENCH_DB`, a database an
    earlier run filled and kept."""
    kept = os.environ.get("BENCH_DB")
    database = Path(kept) if kept else folder / "bench.db"
    fresh = not database.exists()

    async def migrate() -> None:
        await (await build(_settings(database, folder))).close()

    loop.run(migrate())
    if fresh:
        started = time.perf_counter()
        plan = fill(database, now)
        print(f"filled {CASES:,} cases ({OPEN:,} open) over {len(plan.grids):,} grids"
              f" in {time.perf_counter() - started:.1f} s")
    else:
        print(f"reusing {database} (BENCH_DB); its cases' times are those of its fill")
    return database


def _settings(database: Path | str, folder: Path) -> Settings:
    return Settings.from_mapping({
        "GRIDBOT_DATABASE": str(database),
        "GRIDBOT_MEDIA_DIR": str(folder / "media"), "GRIDBOT_DEMO": "false"})


@contextmanager
def _on_postgres(folder: Path, now: datetime) -> Iterator[str]:
    """The URL of the big district on a PostgreSQL server of this run: the SQLite file
    (`_filled_sqlite`) moved there by `gridbot copy-database` and analyzed; with
    BENCH_PG_DIR, a server folder kept between runs, the database copied there before
    (copied under another name and renamed once complete, so a copy cut short is not
    taken for one)."""
    kept = os.environ.get("BENCH_PG_DIR")
    with running_server(durable=True, folder=Path(kept) if kept else None) as server:
        with server.admin() as conn:
            there = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 (PG_DATABASE,)).fetchone()
        if there:
            print(f"reusing the PostgreSQL database in {kept} (BENCH_PG_DIR); its cases'"
                  " times are those of its fill")
        else:
            source = _filled_sqlite(folder, now)
            partial = PG_DATABASE + "_copying"
            with server.admin() as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {partial}")
                conn.execute(f"CREATE DATABASE {partial} TEMPLATE template0"
                             f" LC_COLLATE 'C' LC_CTYPE '{PG_CTYPE}'")
            url = server.url(partial)
            started = time.perf_counter()
            last = copy_to_postgres(source, url, {"GRIDBOT_DATABASE": url,
                                                  "GRIDBOT_MEDIA_DIR": str(folder / "media")})
            with server.admin() as conn:
                conn.execute(f"ALTER DATABASE {partial} RENAME TO {PG_DATABASE}")
            print(f"copied to PostgreSQL (gridbot copy-database, then VACUUM ANALYZE) in"
                  f" {time.perf_counter() - started:.0f} s: {last}")
        url = server.url(PG_DATABASE)
        version, buffers, ctype = rows(url, "SELECT current_setting('server_version'),"
                                            " current_setting('shared_buffers'), datctype"
                                            " FROM pg_database WHERE datname = ?",
                                       (PG_DATABASE,))[0]
        print(f"on PostgreSQL {version} (Debian's package, fsync on, shared_buffers"
              f" {buffers}; LC_CTYPE {ctype}), at {url}")
        yield url


@contextmanager
def prepared(now: datetime) -> Iterator[tuple[Settings, Layout]]:
    """Settings over the big database, migrated, and its layout. SQLite (`_filled_sqlite`)
    unless BENCH_PG is set: then PostgreSQL (`_on_postgres`)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if ON_POSTGRES:
            with _on_postgres(folder, now) as url:
                settings = _settings(url, folder)
                loop.run(_migrated(settings))
                yield settings, layout()
        else:
            yield _settings(_filled_sqlite(folder, now), folder), layout()


async def _migrated(settings: Settings) -> None:
    await (await build(settings)).close()


async def plan_lines(conn: Connection, sql: str, params: Sequence[Any], *,
                     analyze: bool = False) -> list[str]:
    """A query's plan, a line per step: SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN
    without costs (so that like plans print once); `analyze` (PostgreSQL): run it, with
    times and buffers."""
    if not is_postgres(conn):
        return [str(row[3]) for row in await fetch(conn, "EXPLAIN QUERY PLAN " + sql, params)]
    how = "(ANALYZE, BUFFERS)" if analyze else "(COSTS OFF)"
    return [str(row[0]) for row in await fetch(conn, f"EXPLAIN {how} " + sql, params)]


def full_scan(lines: list[str]) -> bool:
    """Whether a plan reads the cases table without an index (SQLite's `SCAN cases`,
    PostgreSQL's `Seq Scan on cases`)."""
    return any(re.fullmatch(r"SCAN cases", line.strip())
               or re.search(r"Seq Scan on cases\b", line) for line in lines)


def has_table(database: Path | str, name: str) -> bool:
    """Whether the database has this table (a benchmark run against an older version)."""
    if is_postgres_url(database):
        return bool(rows(str(database), "SELECT to_regclass(?) IS NOT NULL", (name,))[0][0])
    return bool(rows(str(database), "SELECT 1 FROM sqlite_master WHERE name = ?", (name,)))

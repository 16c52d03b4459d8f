"""Outbox and scheduler benchmark: queue, sweep, drain, and the server's peak memory.

One database holds a street of 100,000 residents on Telegram and 1,000,000 cases (97 %
closed, 3 % open with their timers in the future, as a year or two of a big street).

In this process, with a fake clock on a Monday morning:
- queue a notice to 100,000 residents: audience query, rendering, 100,000 recipient rows
  and 100,000 outbox rows in one transaction (goal < 3 s; median of 3);
- one scheduler tick over the 1,000,000 cases with nothing due (goal < 50 ms; median
  of 20);
- one tick with 10,000 cases due for their 80 % warning (goal < 2 s; median of 3): each
  a workflow event, an audit line and a message to the person in charge.

Then `gridbot serve` runs as its own process on that database, Telegram pointed at the
fake Bot API (tests.fake_telegram, in a thread here) at Telegram's real limit of 30
messages a second. A notice to the 100,000 is scheduled for now and 10,000 cases are due
again, so the server's first tick queues the notice and works off the 10,000; then it
drains. The fake stamps each message's arrival: the rate over ~20 s (goal: within 5 % of
30/s) and the most in any one-second window (goal: never over 30). The server's peak
memory (VmHWM from /proc, goal < 250 MB) covers all of this.

Then the same again on PostgreSQL (a server of Debian's package started here, as in
benchmarks/bench_postgres.py: fsync on, synchronous_commit off), with the same checks:
the notice queued for every resident, the empty sweep doing nothing, each due case warned
once (and a second sweep at once warning none again), the drain's busiest second, no spec
violation. The data is filled into a SQLite file as above and moved with `gridbot
copy-database FROM TO`, the way a deployment moves, then vacuumed and analyzed; the copy
moves ~16,000 rows a second here (a million cases: over a minute, after 3.5 minutes of
filling), so PostgreSQL gets BENCH_PG_CASES cases (default 200,000; 0 skips PostgreSQL) beside the
same residents and the same 10,000 due.

Run: python -m benchmarks.bench_outbox  (BENCH_RESIDENTS, BENCH_CASES, BENCH_PG_CASES,
BENCH_DRAIN_SECONDS)
"""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.benchkit import StealMeter, copy_to_postgres, load_average, machine_line
from bot.bootstrap import Gridbot, build
from bot.domain.clock import FakeClock, iso
from bot.domain.workflow import Level, State, new_case
from bot.runtime import loop
from bot.services.notices import Outreach, send
from bot.settings import Settings
from store import notices as notice_store
from store.cases import case_to_json
from tests.fake_telegram import Call, FakeTelegram, listening_socket
from tests.pg_harness import PgServer, running_server
from tests.serve_harness import count, execute, insert_many, rows

RESIDENTS = int(os.environ.get("BENCH_RESIDENTS", "100000"))
CASES = int(os.environ.get("BENCH_CASES", "1000000"))
PG_CASES = int(os.environ.get("BENCH_PG_CASES", "200000"))
DUE = 10_000
DRAIN_SECONDS = float(os.environ.get("BENCH_DRAIN_SECONDS", "20"))
FIRST_CHAT = 10_000_000
STREET = "33010600100000"
GRIDS = [f"33010600100{c}0{g}" for c in (1, 2) for g in (1, 2, 3, 4)]
MONDAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
ROOT = Path(__file__).resolve().parent.parent


def settings_for(folder: Path, database: str, **extra: str) -> dict[str, str]:
    return {"GRIDBOT_DATABASE": database,
            "GRIDBOT_MEDIA_DIR": str(folder / "media"), "GRIDBOT_QUIET_HOURS": "off",
            "GRIDBOT_DIGEST_MORNING": "off", "GRIDBOT_DIGEST_EVENING": "off",
            "GRIDBOT_MEETING_CRON": "off", **extra}


# --- the data ------------------------------------------------------------------------------

def fill(database: Path, now: datetime, cases: int) -> None:
    """Residents, and a million cases of which none is due (straight into SQLite)."""
    stamp = iso(now)
    with sqlite3.connect(database) as conn:
        chief = conn.execute("SELECT person_id FROM roles WHERE role = 'grid_chief'"
                             " ORDER BY id LIMIT 1").fetchone()[0]
        conn.executemany("INSERT INTO people (id, name, grid_code, created_at)"
                         " VALUES (?, ?, ?, ?)",
                         ((1_000_000 + i, f"居民{i}", GRIDS[i % 8], stamp)
                          for i in range(RESIDENTS)))
        conn.executemany("INSERT INTO contacts (person_id, channel, address, created_at)"
                         " VALUES (?, 'telegram', ?, ?)",
                         ((1_000_000 + i, str(FIRST_CHAT + i), stamp)
                          for i in range(RESIDENTS)))
        # Far ahead, so they stay not due for the serving part too, which runs on real time.
        later = iso(now + timedelta(days=3650))
        deadline = iso(now + timedelta(days=3651))

        def rows() -> Any:
            for i in range(cases):
                open_case = i % 33 == 0
                yield (f"C{i:07d}", "registered" if open_case else "closed", "roads", "U3",
                       "general", "grid", GRIDS[i % 8], "x", stamp,
                       deadline if open_case else None,
                       None if open_case else stamp, "{}", 1,
                       later if open_case else None, deadline if open_case else None, chief)
        conn.executemany(
            "INSERT INTO cases (number, state, category, urgency, procedure, level, grid_code,"
            " description, created_at, deadline, closed_at, workflow, version, warn_at,"
            " breach_at, assignee_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows())


def make_due(database: str, now: datetime, tag: str) -> None:
    """10,000 open urgent cases past 80 % of their 2 hours (their deadline still ahead),
    numbered D{tag}00000…; an earlier round's due cases closed first, their timers off
    (closed, not deleted: their events refer to them, which PostgreSQL enforces)."""
    chief = rows(database, "SELECT person_id FROM roles WHERE role = 'grid_chief'"
                           " AND scope = ?", (GRIDS[0],))[0][0]
    execute(database, "UPDATE cases SET state = 'closed', closed_at = ?, warn_at = NULL,"
                      " breach_at = NULL WHERE number LIKE 'D%' AND state <> 'closed'",
            (iso(now),))
    start, deadline = now - timedelta(minutes=105), now + timedelta(minutes=15)
    due = []
    for i in range(DUE):
        case = new_case(f"D{tag}{i:05d}", "emergency", "U1", None, GRIDS[0],
                        "33010600100100", STREET, None, start)
        case = replace(case, state=State.REGISTERED, level=Level.GRID, registered_at=start,
                       deadline=deadline, assignee_id=chief, version=1)
        due.append((case.number, GRIDS[0], iso(start), iso(deadline), case_to_json(case),
                    chief, iso(start), iso(deadline)))
    insert_many(database,
                "INSERT INTO cases (number, state, category, urgency, procedure, level,"
                " grid_code, description, created_at, deadline, workflow, version,"
                " assignee_id, warn_at, breach_at) VALUES (?, 'registered', 'emergency',"
                " 'U1', 'urgent', 'grid', ?, '路面塌陷', ?, ?, ?, 1, ?, ?, ?)", due)


def warned_cases(database: str, tag: str) -> tuple[int, int]:
    """(warnings, cases warned) among the due cases numbered D{tag}…"""
    found = rows(database, "SELECT count(*), count(DISTINCT e.case_id) FROM case_events e"
                           " JOIN cases c ON c.id = e.case_id WHERE e.event = 'warn'"
                           " AND c.number LIKE ?", (f"D{tag}%",))
    return int(found[0][0]), int(found[0][1])


def filled_sqlite(folder: Path, name: str, cases: int) -> Path:
    """A SQLite file migrated (with the demo district) and filled with `cases` cases."""
    database = folder / name
    settings = Settings.from_mapping(settings_for(folder, str(database)))

    async def migrate() -> None:
        bot = await build(settings, FakeClock(MONDAY))
        await bot.close()

    loop.run(migrate())
    print(f"  filling {RESIDENTS:,} residents and {cases:,} cases...", flush=True)
    started = time.perf_counter()
    fill(database, MONDAY, cases)
    print(f"  (filled in {time.perf_counter() - started:.0f} s)", flush=True)
    return database


def filled_postgres(server: PgServer, folder: Path, cases: int) -> str:
    """A PostgreSQL database holding what `filled_sqlite` holds, moved there by
    `gridbot copy-database FROM TO` (which checks every table's count)."""
    source = filled_sqlite(folder, "pg-source.db", cases)
    url = server.create_database("outbox")
    started = time.perf_counter()
    last = copy_to_postgres(source, url, settings_for(folder, url))
    print(f"  (gridbot copy-database to PostgreSQL in {time.perf_counter() - started:.0f} s:"
          f" {last})", flush=True)
    for leftover in folder.glob("pg-source.db*"):
        leftover.unlink()
    return url


# --- in this process -----------------------------------------------------------------------

async def queue_notice(bot: Gridbot, now: datetime) -> tuple[float, int]:
    """Seconds to queue a notice to the whole street; how many recipients."""
    outreach = Outreach(bot.renderer, bot.reference, None)
    started = time.perf_counter()
    async with bot.db.transaction() as conn:
        notice_id = await notice_store.create(
            conn, sender_id=None, issuer=STREET, scope=STREET, audience="residents",
            body="本周六上午9点至12点全街道停水检修，请提前储水。", photo_id=None, send_at=now,
            now=now)
        notice = await notice_store.get(conn, notice_id)
        assert notice is not None
        count = await send(conn, outreach, notice, now)
    return time.perf_counter() - started, count


async def timed_tick(bot: Gridbot) -> tuple[float, dict[str, int]]:
    assert bot.scheduler is not None
    started = time.perf_counter()
    done = await bot.scheduler.tick()
    return time.perf_counter() - started, done


async def in_process(folder: Path, database: str) -> dict[str, Any]:
    """The queue, the empty sweep and the due sweep on a filled database, checked."""
    settings = Settings.from_mapping(settings_for(folder, database))
    clock = FakeClock(MONDAY)
    bot = await build(settings, clock)
    figures: dict[str, Any] = {}
    try:
        assert bot.scheduler is not None
        await bot.scheduler.tick()  # the first tick arms nothing here, but warms caches

        queued = []
        for _ in range(3):
            seconds, count = await queue_notice(bot, clock.now())
            assert count == RESIDENTS, count
            queued.append(seconds)
            async with bot.db.transaction() as conn:  # keep the outbox one notice long
                await conn.execute("DELETE FROM outbox WHERE channel = 'telegram'")
        figures["queue"] = queued

        idle = []
        for _ in range(20):
            clock.advance(timedelta(seconds=1))
            seconds, done = await timed_tick(bot)
            assert not any(done.values()), done
            idle.append(seconds)
        figures["idle"] = idle

        due = []
        for n in range(3):
            await bot.close()
            make_due(database, clock.now(), str(n))
            bot = await build(settings, clock)
            seconds, done = await timed_tick(bot)
            assert done["warnings"] == DUE, done
            assert warned_cases(database, str(n)) == (DUE, DUE), warned_cases(database, str(n))
            again = await bot.scheduler.tick()  # type: ignore[union-attr]
            assert not any(again.values()), f"a second sweep at once did {again}"
            due.append(seconds)
        figures["due"] = due
    finally:
        await bot.close()
    return figures


# --- the serving process -------------------------------------------------------------------

class StampingTelegram(FakeTelegram):
    """The fake Bot API, noting when each message arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []

    def _record(self, call: Call, problems: list[str]) -> None:
        if call.method == "sendMessage" and call.status == 200:
            self.arrivals.append(time.monotonic())
        super()._record(call, problems)


def busiest_second(arrivals: list[float]) -> int:
    """The most arrivals in any one-second window."""
    most, first = 0, 0
    for last, moment in enumerate(arrivals):
        while moment - arrivals[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def peak_memory_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serving(folder: Path, database: str) -> dict[str, Any]:
    """`gridbot serve` on the database: its first tick, then the drain at 30/s."""
    fake = StampingTelegram()
    fake.start()
    sock = listening_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, **settings_for(folder, database, GRIDBOT_PORT=str(port),
                                        TELEGRAM_BOT_TOKEN=fake.token,
                                        TELEGRAM_API_BASE_URL=fake.base_url,
                                        GRIDBOT_TICK_SECONDS="5")}
    now = datetime.now(UTC)
    make_due(database, now, "S")
    events_before = count(database, "SELECT max(id) FROM case_events")
    execute(database, "DELETE FROM outbox")
    execute(database, "INSERT INTO notices (scope, issuer, audience, body, send_at,"
                      " created_at) VALUES (?, ?, 'residents', ?, ?, ?)",
            (STREET, STREET, "本周六上午9点至12点全街道停水检修，请提前储水。", iso(now),
             iso(now)))
    server = subprocess.Popen([sys.executable, "-m", "bot", "serve"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(fake.arrivals) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        first = time.monotonic()
        while warnings_since(database, events_before) < DUE and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()  # the first tick is done: the steady drain
        time.sleep(DRAIN_SECONDS)
        memory = peak_memory_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        fake.stop()
    window = [t for t in fake.arrivals if started <= t < started + DRAIN_SECONDS]
    during = [t for t in fake.arrivals if first <= t < started]
    return {"rate": len(window) / DRAIN_SECONDS, "busiest": busiest_second(fake.arrivals),
            "sent": len(fake.arrivals), "memory": memory,
            "warned": warnings_since(database, events_before), "tick": started - first,
            "warned_cases": warned_cases(database, "S"),
            "tick_rate": len(during) / (started - first) if started > first else 0.0,
            "violations": len(fake.violations)}


def warnings_since(database: str, events_before: int) -> int:
    """Warnings the server recorded (read beside it: WAL lets a reader in)."""
    return count(database, "SELECT count(*) FROM case_events WHERE event = 'warn'"
                           " AND id > ?", (events_before,))


def report(label: str, cases: int, figures: dict[str, Any], served: dict[str, Any]) -> None:
    """Print one database's figures against their goals, after checking the server's."""
    assert served["warned_cases"] == (DUE, DUE), (
        f"the server warned {served['warned_cases'][0]:,} times for"
        f" {served['warned_cases'][1]:,} of {DUE:,} due cases")
    assert served["violations"] == 0, f"{served['violations']} spec violations"
    print(f"[{label}] queue a notice to {RESIDENTS:,} recipients: median"
          f" {statistics.median(figures['queue']):.2f} s (rounds: "
          f"{', '.join(f'{s:.2f}' for s in figures['queue'])}; goal < 3 s)")
    print(f"[{label}] tick over {cases:,} cases, nothing due: median"
          f" {statistics.median(figures['idle']) * 1000:.1f} ms (max"
          f" {max(figures['idle']) * 1000:.1f} ms of 20; goal < 50 ms)")
    print(f"[{label}] tick with {DUE:,} cases due (80 % warnings, each case once): median"
          f" {statistics.median(figures['due']):.2f} s (rounds: "
          f"{', '.join(f'{s:.2f}' for s in figures['due'])}; goal < 2 s)")
    busiest = served["busiest"]
    print(f"[{label}] drain after the first tick: {served['rate']:.2f} messages/s"
          f" ({served['rate'] / 30:.1%} of 30/s; goal within 5 %),"
          f" busiest one-second window {busiest}"
          f" (goal <= 30: {'met' if busiest <= 30 else 'NOT met'}); {served['sent']:,}"
          f" delivered, {served['violations']} spec violations")
    print(f"[{label}] server's first tick (notice to {RESIDENTS:,} queued,"
          f" {served['warned']:,} warnings, each due case once): {served['tick']:.1f} s,"
          f" drain meanwhile {served['tick_rate']:.1f} messages/s")
    print(f"[{label}] serving process peak memory (VmHWM): {served['memory']:.0f} MB"
          " (goal < 250 MB)")


def main() -> None:
    """Run both parts on SQLite, then on PostgreSQL; print the figures against their goals."""
    steal = StealMeter()
    print(machine_line("gridbot outbox benchmark"))
    print(f"load average at the start: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        database = str(filled_sqlite(folder, "bench.db", CASES))
        figures = loop.run(in_process(folder, database))
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  (this benchmark process peaked at {own:.0f} MB)")
        print(f"serving process on SQLite: drain to the fake Bot API at Telegram's limit for"
              f" {DRAIN_SECONDS:.0f} s...", flush=True)
        served = serving(folder, database)
        report("SQLite", CASES, figures, served)
        for leftover in folder.glob("bench.db*"):
            leftover.unlink()
        if PG_CASES > 0:
            with running_server(durable=True) as server:
                with psycopg.connect(server.url(), autocommit=True) as conn:
                    conn.execute("ALTER SYSTEM SET synchronous_commit = off")
                    conn.execute("SELECT pg_reload_conf()")
                url = filled_postgres(server, folder, PG_CASES)
                pg_figures = loop.run(in_process(folder, url))
                print("serving process on PostgreSQL: the same drain...", flush=True)
                pg_served = serving(folder, url)
            report("PostgreSQL", PG_CASES, pg_figures, pg_served)
            ratios = {part: statistics.median(pg_figures[part]) / statistics.median(figures[part])
                      for part in ("queue", "idle", "due")}
            print(f"PostgreSQL / SQLite (medians): queue {ratios['queue']:.2f}, empty tick"
                  f" {ratios['idle']:.2f} ({PG_CASES:,} against {CASES:,} cases), due tick"
                  f" {ratios['due']:.2f}, the server's first tick"
                  f" {pg_served['tick'] / served['tick']:.2f}")
    print(f"load average at the end: {load_average()}")
    print(steal.line())


if __name__ == "__main__":
    main()

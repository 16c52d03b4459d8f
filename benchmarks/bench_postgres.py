"""PostgreSQL against SQLite, and one to three `gridbot serve` processes on one PostgreSQL.

1. Engine steps/s: the dialogue benchmark of benchmarks/bench.py (residents reporting at
   once through `Engine.handle`) on a SQLite file and on PostgreSQL, rounds alternating
   in the same run.
2. A notice to 100,000 residents queued on PostgreSQL (goal < 3 s, as on SQLite).
3. The webhook path with 1, 2 and 3 processes on one PostgreSQL: Telegram updates posted
   to the processes in turn (posters in processes of their own), until every update is
   processed and its reply handed to the fake Bot API (its rate limit raised).
4. Telegram's real limit with three processes: a notice drained to the fake Bot API at
   30/s, the process sending it killed with SIGKILL halfway (another one takes over).

The benchmarks' correctness checks run here on PostgreSQL too: every dialogue processed
and enough of them ending in a case (bench.py's `engine_run`), the notice queued for
every resident (bench_outbox.py), every update answered 200, processed once and answered
once with no call breaking the Bot API's spec (bench_telegram.py), and the drain: never
more than 30 messages in any one second at the fake Bot API, across the takeover too,
everyone reached, nothing twice beyond the crash bound (bench_outbox.py, the README).
bench_outbox.py runs its own checks (the sweeps over its cases, the drain of one serving
process) on PostgreSQL itself, after SQLite. Not run on PostgreSQL: bench_replies.py's
reply times (the per-chat limits are tested on both databases in tests/), and the Open311
benchmark, whose checks are only that each page answers 200; the console's three run on
PostgreSQL with BENCH_PG=1 (benchmarks/console_db.py).

The PostgreSQL server is a fresh one of Debian's package in a temp folder, with fsync on
and `synchronous_commit = off`: what SQLite's WAL with `synchronous=NORMAL` promises
(a process crash loses nothing; a power cut may lose the last transactions). On this
2-core machine the figures say more about overhead than about scale.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from multiprocessing.synchronize import Barrier
from pathlib import Path

import httpx
import psycopg

from benchmarks import bench as engine_bench
from benchmarks.bench import engine_run
from benchmarks.bench_outbox import GRIDS, StampingTelegram, busiest_second, queue_notice
from benchmarks.benchkit import StealMeter, machine_line
from bot.bootstrap import build
from bot.domain.clock import iso
from bot.runtime.outbox import Limits
from bot.settings import Settings
from tests.fake_telegram import FakeTelegram, Updates
from tests.pg_harness import PgServer, running_server
from tests.serve_harness import (
    count,
    environment,
    free_port,
    gridbot,
    healthy,
    insert_many,
    sender_role_of,
    serve,
    wait_until,
)
from tests.telegram_harness import SECRET

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONVERSATIONS = int(os.environ.get("BENCH_CONVERSATIONS", "200"))
RESIDENTS = int(os.environ.get("BENCH_RESIDENTS", "100000"))
UPDATES = int(os.environ.get("BENCH_UPDATES", "400"))
POSTERS = 4
FIRST_CHAT = 9_000_000
DRAIN_RESIDENTS = int(os.environ.get("BENCH_DRAIN_RESIDENTS", "900"))  # 30 s at 30/s
DRAIN_LEASE_SECONDS = 3.0
STREET = "33010600100000"


def engine_rates(server: PgServer, folder: Path) -> tuple[list[float], list[float]]:
    """Steps/s on SQLite and on PostgreSQL, rounds alternating."""
    sqlite_rates, pg_rates = [], []
    engine_bench.CONVERSATIONS = CONVERSATIONS  # fewer than bench.py's own default
    for n in range(ROUNDS):
        steps, seconds, _ = asyncio.run(engine_run(folder / f"s{n}"))
        sqlite_rates.append(steps / seconds)
        url = server.create_database(f"engine{n}")
        steps, seconds, _ = asyncio.run(engine_run(folder / f"p{n}", url))
        pg_rates.append(steps / seconds)
    return sqlite_rates, pg_rates


def notice_seconds(server: PgServer, folder: Path) -> tuple[list[float], int]:
    """Seconds to queue a notice to every resident of the street, per round."""
    url = server.create_database("notice")
    settings = Settings.from_mapping({"GRIDBOT_DATABASE": url,
                                      "GRIDBOT_MEDIA_DIR": str(folder / "media")})

    async def prepare() -> None:
        bot = await build(settings)  # migrates and loads the demo district
        await bot.close()

    asyncio.run(prepare())
    stamp = iso(datetime.now(UTC))
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        with cursor.copy("COPY people (id, name, grid_code, created_at) FROM STDIN") as copy:
            for i in range(RESIDENTS):
                copy.write_row((1_000_000 + i, f"居民{i}", GRIDS[i % 8], stamp))
        with cursor.copy("COPY contacts (person_id, channel, address, created_at)"
                         " FROM STDIN") as copy:
            for i in range(RESIDENTS):
                copy.write_row((1_000_000 + i, "telegram", str(FIRST_CHAT + i), stamp))
        cursor.execute("ANALYZE")

    async def rounds() -> tuple[list[float], int]:
        bot = await build(settings)
        times, recipients = [], 0
        try:
            for _ in range(ROUNDS):
                seconds, recipients = await queue_notice(bot, datetime.now(UTC))
                assert recipients == RESIDENTS, f"queued for {recipients} of {RESIDENTS}"
                times.append(seconds)
                async with bot.db.transaction() as conn:
                    await conn.execute("DELETE FROM outbox")
        finally:
            await bot.close()
        return times, recipients

    return asyncio.run(rounds())


# --- the webhook path with several processes ---------------------------------------------

def poster_ready(ready: Barrier) -> None:
    """(In a poster process, once started.) Say so, and wait until all are."""
    ready.wait()


def post_updates(work: tuple[list[dict[str, object]], list[int]]) -> int:
    """(In a poster process.) POST each update to the processes in turn; count 200s."""
    updates, ports = work
    answered = 0
    with httpx.Client(timeout=30) as client:
        for i, update in enumerate(updates):
            response = client.post(f"http://127.0.0.1:{ports[i % len(ports)]}/telegram/webhook",
                                   json=update,
                                   headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
            answered += response.status_code == 200
    return answered


def webhook_rate(server: PgServer, folder: Path, fake: FakeTelegram, processes: int) -> float:
    """Updates/s from the first POST until every update's reply reached the fake."""
    url = server.create_database(f"webhook{processes}")
    env = environment(folder, url, fake, TELEGRAM_MODE="webhook",
                      TELEGRAM_WEBHOOK_SECRET=SECRET, GRIDBOT_PUBLIC_URL="https://bot.example.org",
                      GRIDBOT_TELEGRAM_RATE="5000", GRIDBOT_TICK_SECONDS="30")
    gridbot(env, "migrate")
    servers: list[subprocess.Popen[bytes]] = []
    ports = []
    try:
        for n in range(processes):
            port = free_port()
            servers.append(serve({**env, "GRIDBOT_PORT": str(port),
                                  "GRIDBOT_PROCESS_NAME": f"p{n}"},
                                 folder / f"webhook{processes}-{n}.log"))
            ports.append(port)
            wait_until(lambda port=port: healthy(port), f"server {n} to start")
        fake.reset()
        maker = Updates()
        updates = [maker.text(FIRST_CHAT + i % 200, f"/case 261123-{i % 900 + 1:03d}")
                   for i in range(UPDATES)]
        parts = [(updates[i::POSTERS], ports) for i in range(POSTERS)]
        context = multiprocessing.get_context("spawn")
        # The posters start (a Python each, importing this module) before the clock does:
        # under load that takes seconds, which the first runs counted as the webhook's.
        ready = context.Barrier(POSTERS + 1)
        with context.Pool(POSTERS, initializer=poster_ready, initargs=(ready,)) as pool:
            ready.wait()
            started = time.perf_counter()
            answered = sum(pool.map(post_updates, parts, chunksize=1))
        assert answered == UPDATES, f"{answered} of {UPDATES} answered 200"
        while len([c for c in fake.calls_to("sendMessage") if c.status == 200]) < UPDATES:
            if time.perf_counter() - started > 300:
                raise RuntimeError("replies did not all arrive")
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        processed = count(url, "SELECT count(*) FROM inbox WHERE status = 'processed'")
        assert processed == UPDATES, f"{processed} of {UPDATES} updates processed"
        sent = count(url, "SELECT count(*) FROM outbox WHERE status = 'sent'")
        replies = len([c for c in fake.calls_to("sendMessage") if c.status == 200])
        assert sent == replies == UPDATES, f"{replies} replies ({sent} sent) to {UPDATES}"
        assert not fake.violations, fake.violations[:5]
        return UPDATES / elapsed
    finally:
        for process in servers:
            process.send_signal(signal.SIGTERM)
        for process in servers:
            process.wait(timeout=60)


# --- Telegram's real limit, three processes, the sender killed halfway ----------------------

def drain_at_limit(server: PgServer, folder: Path) -> dict[str, float]:
    """A notice to DRAIN_RESIDENTS drained at 30/s by three processes, the one sending
    killed with SIGKILL halfway; what the fake Bot API saw."""
    url = server.create_database("drain")
    fake = StampingTelegram()
    fake.start()
    env = environment(folder, url, fake, GRIDBOT_LEASE_SECONDS=str(DRAIN_LEASE_SECONDS))
    servers: list[tuple[int, subprocess.Popen[bytes]]] = []
    try:
        gridbot(env, "migrate")
        stamp = iso(datetime.now(UTC))
        insert_many(url, "INSERT INTO people (id, name, grid_code, created_at)"
                         " VALUES (?, ?, ?, ?)",
                    [(2_000_000 + i, f"居民{i}", GRIDS[i % 8], stamp)
                     for i in range(DRAIN_RESIDENTS)])
        insert_many(url, "INSERT INTO contacts (person_id, channel, address, created_at)"
                         " VALUES (?, 'telegram', ?, ?)",
                    [(2_000_000 + i, str(FIRST_CHAT + i), stamp)
                     for i in range(DRAIN_RESIDENTS)])
        queued = gridbot(env, "notice", "--scope", STREET, "--to", "residents", "--yes",
                         "--text", "周六上午9点至12点停水检修，请提前储水。")
        assert f"queued for {DRAIN_RESIDENTS} recipients" in queued.stdout, queued.stdout
        for n in range(3):
            port = free_port()
            servers.append((port, serve({**env, "GRIDBOT_PORT": str(port),
                                         "GRIDBOT_PROCESS_NAME": f"p{n}"},
                                        folder / f"drain-{n}.log")))
            wait_until(lambda port=port: healthy(port), f"server {n} to start")
        wait_until(lambda: len(fake.arrivals) >= DRAIN_RESIDENTS // 2, "half the notice",
                   timeout=300)
        sender = next(process for port, process in servers if sender_role_of(port))
        sender.send_signal(signal.SIGKILL)
        sender.wait(timeout=30)
        killed = time.monotonic()
        wait_until(lambda: count(url, "SELECT count(*) FROM outbox WHERE status = 'sent'")
                   >= DRAIN_RESIDENTS, "the whole notice", timeout=300)
    finally:
        for _, process in servers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in servers:
            process.wait(timeout=60)
        fake.stop()
    arrivals = sorted(fake.arrivals)
    chats = Counter(int(c.params["chat_id"]) for c in fake.calls_to("sendMessage")
                    if c.status == 200)
    assert set(chats) == {FIRST_CHAT + i for i in range(DRAIN_RESIDENTS)}, "everyone reached"
    twice = sum(1 for n in chats.values() if n > 1)
    assert twice <= Limits(per_second=1).concurrency, f"{twice} sent twice (bound 8)"
    assert not fake.violations, fake.violations[:5]
    before = [t for t in arrivals if t < killed]
    steady = [t for t in before if t >= before[0] + 2.0]  # the first second or two aside
    after = [t for t in arrivals if t >= killed]
    return {"busiest": busiest_second(arrivals),
            "rate": (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0,
            "resumed": after[0] - killed if after else float("nan"), "twice": twice}


def main() -> None:
    """All three parts on one server; medians and ratios."""
    steal = StealMeter()
    print(machine_line("gridbot PostgreSQL benchmark"))
    with tempfile.TemporaryDirectory() as tmp, running_server(durable=True) as server:
        folder = Path(tmp)
        with psycopg.connect(server.url(), autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            conn.execute("ALTER SYSTEM SET synchronous_commit = off")
            conn.execute("SELECT pg_reload_conf()")
        print(f"PostgreSQL {version[0] if version else '?'} (fsync on, synchronous_commit off)")
        sqlite_rates, pg_rates = engine_rates(server, folder)
        s, p = statistics.median(sqlite_rates), statistics.median(pg_rates)
        print(f"engine, {CONVERSATIONS} conversations x 6 steps, {ROUNDS} rounds alternating:"
              f" SQLite {s:,.0f} steps/s, PostgreSQL {p:,.0f} steps/s (medians);"
              f" ratio PostgreSQL / SQLite {p / s:.2f}")
        times, count = notice_seconds(server, folder)
        print(f"queue a notice to {count:,} recipients on PostgreSQL: median"
              f" {statistics.median(times):.2f} s (rounds: "
              f"{', '.join(f'{t:.2f}' for t in times)}; goal < 3 s)")
        fake = FakeTelegram()
        fake.start()
        try:
            rates = {n: webhook_rate(server, folder, fake, n) for n in (1, 2, 3)}
        finally:
            fake.stop()
        print(f"webhook path, {UPDATES} Telegram updates to replies at the fake Bot API: "
              + ", ".join(f"{n} process{'es' if n > 1 else ''} {r:,.0f}/s"
                          for n, r in rates.items())
              + f"; ratios to one process: 2 {rates[2] / rates[1]:.2f}, 3"
              f" {rates[3] / rates[1]:.2f}")
        drained = drain_at_limit(server, folder)
        print(f"drain of a notice to {DRAIN_RESIDENTS:,} at Telegram's 30/s, 3 processes, the"
              f" sender killed halfway: busiest one-second window {drained['busiest']:.0f}"
              f" (goal <= 30: {'met' if drained['busiest'] <= 30 else 'NOT met'}); rate"
              f" before the kill {drained['rate']:.2f}/s ({drained['rate'] / 30:.1%} of 30);"
              f" sending resumed {drained['resumed']:.1f} s after the kill (lease"
              f" {DRAIN_LEASE_SECONDS:g} s); {drained['twice']:.0f} sent twice (bound 8);"
              " everyone reached, no spec violations")
    print(steal.line())


if __name__ == "__main__":
    main()

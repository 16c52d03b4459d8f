"""`make bench`: how fast the dialogue engine runs, against the floor of SQLite itself.

Engine: 1,000 simulated residents report at once (each a full dialogue: /report, category,
description, location, no photos, submit), on an on-disk database, all through
`Engine.handle` (inbox row, flow, state, replies, commit). Latency is per step, from the
call to the committed reply, so it includes the wait behind the other 999 people.
Floor: the same number of bare aiosqlite INSERT + COMMIT on an on-disk database with the
same pragmas, one after the other. The ratio says how close the engine is to that floor.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import aiosqlite

from benchmarks.benchkit import StealMeter, machine_line
from bot.bootstrap import build
from bot.domain.messages import Inbound, Kind, parse_text
from bot.runtime import loop
from bot.settings import Settings

CONVERSATIONS = int(os.environ.get("BENCH_CONVERSATIONS", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
# The demo district spans about lat 30.2760–30.2815, lon 120.1150–120.1274.
LAT = (30.2762, 30.2813)
LON = (120.1152, 120.1272)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def engine_run(folder: Path, database: str | None = None
                     ) -> tuple[int, float, list[float]]:
    """Run the dialogues (on `database`, a postgresql:// URL, if given, else a SQLite file
    in `folder`); return (steps, seconds, per-step latencies in seconds)."""
    settings = Settings.from_mapping({"GRIDBOT_DATABASE": database or str(folder / "engine.db"),
                                      "GRIDBOT_MEDIA_DIR": str(folder / "media")})
    bot = await build(settings)
    rng = random.Random(7)
    latencies: list[float] = []

    async def resident(index: int) -> None:
        address = f"bench:{index}"
        steps = [
            parse_text("sim-sms", address, "/report"),
            parse_text("sim-sms", address, str(rng.randint(1, 12))),
            parse_text("sim-sms", address, f"第{index}号问题：门口垃圾堆了三天没人清理"),
            Inbound("sim-sms", address, Kind.LOCATION, lat=rng.uniform(*LAT),
                    lon=rng.uniform(*LON)),
            parse_text("sim-sms", address, "1"),
            parse_text("sim-sms", address, "1"),
        ]
        for inbound in steps:
            started = time.perf_counter()
            await bot.engine.handle(inbound)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(resident(i) for i in range(CONVERSATIONS)))
    elapsed = time.perf_counter() - started
    rows = await bot.db.fetchall("SELECT count(*) FROM cases")
    failed = await bot.db.fetchall("SELECT count(*) FROM inbox WHERE status != 'processed'")
    await bot.close()
    assert failed[0][0] == 0, f"{failed[0][0]} inbound messages were not processed"
    assert rows[0][0] > CONVERSATIONS // 4, "too few dialogues ended in a case"
    return len(latencies), elapsed, latencies


async def floor_run(folder: Path, steps: int) -> float:
    """One INSERT + COMMIT per step on a bare aiosqlite connection; return seconds."""
    conn = await aiosqlite.connect(folder / "floor.db")  # implicit BEGIN before the INSERT
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "busy_timeout = 5000"):
        await conn.execute(f"PRAGMA {pragma}")
    await conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    await conn.commit()
    started = time.perf_counter()
    for i in range(steps):
        await conn.execute("INSERT INTO t (body) VALUES (?)", (f"step {i}",))
        await conn.commit()
    elapsed = time.perf_counter() - started
    await conn.close()
    return elapsed


async def main() -> None:
    """Alternate engine and floor runs in one process; print medians and their ratio."""
    steal = StealMeter()
    print(machine_line("gridbot benchmark"))
    print(f"engine: {CONVERSATIONS} conversations in parallel, 6 steps each;"
          f" {ROUNDS} rounds alternating with the floor")
    rates, floor_rates, p50s, p99s = [], [], [], []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            steps, seconds, latencies = await engine_run(folder)
            floor_seconds = await floor_run(folder, steps)
        rates.append(steps / seconds)
        floor_rates.append(steps / floor_seconds)
        p50s.append(statistics.median(latencies))
        p99s.append(_percentile(latencies, 0.99))
    rate, floor_rate = statistics.median(rates), statistics.median(floor_rates)
    print(f"  engine: {rate:,.0f} steps/s (median; rounds: "
          f"{', '.join(f'{r:,.0f}' for r in rates)})")
    print(f"  latency per step: p50 {statistics.median(p50s) * 1000:.0f} ms,"
          f" p99 {statistics.median(p99s) * 1000:.0f} ms"
          " (includes waiting behind the other conversations)")
    print(f"floor: bare aiosqlite INSERT + COMMIT: {floor_rate:,.0f} per s (median; rounds: "
          f"{', '.join(f'{r:,.0f}' for r in floor_rates)})")
    print(f"ratio engine / floor: {rate / floor_rate:.2f} (goal >= 0.20);"
          f" goal >= 1,000 steps/s: {'met' if rate >= 1000 else 'NOT met'}")
    print(steal.line())


if __name__ == "__main__":
    loop.run(main())

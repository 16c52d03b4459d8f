"""Reply-time benchmark: how long a resident waits for the bot's whole answer on Telegram.

gridbot runs as its own process (`gridbot serve`'s app on uvicorn, Telegram in webhook
mode, an on-disk database) with the fake Bot API (tests.fake_telegram, in a thread here,
checking every call against the spec and stamping each message's arrival). Telegram's
real limits hold: 30 messages a second overall, a private chat 3 at once then 1 a second.
Each reply time runs from the webhook post to the arrival of the reply's last message at
the fake Bot API (which messages answer which update: the outbox rows' `inbox_id`).

1. Burst: one chat posts 50 updates in a row (/help, on one connection, as Telegram
   delivers a chat's updates), and 1 s later 20 other chats post one each. Goal: the
   others' p99 under 1 s, although the first chat's 50 answers take ~50 s at 1 a second.
2. Steady: residents go through whole reports (/report, category, description,
   location, no photos, submit), each step 3 s after their previous one, so that the
   webhook gets 10, then 100 updates a second (18 s each). Goal: p99 under 300 ms.
   Every update is answered, so 100 a second need 100+ messages a second: more than
   Telegram's 30 overall. That round raises GRIDBOT_TELEGRAM_RATE to 1,000 (the per-chat
   limits stay), to measure gridbot's own part; at 30/s its answers would only queue.

The checks, on each round: every webhook post answered 200, every update processed and
each of its replies at the fake within 120 s, every chat's messages arriving in the order
gridbot queued them (the outbox's order: by update, then by row), no call breaking the
Bot API's spec. Then the same parts run on PostgreSQL (a server of tests/pg_harness,
fsync on, synchronous_commit off; a fresh database a round), BENCH_PG_ROUNDS rounds of
each (default 1; 0 skips PostgreSQL), their figures printed beside SQLite's.

Run: python -m benchmarks.bench_replies  (BENCH_ROUNDS, BENCH_PG_ROUNDS,
BENCH_STEADY_SECONDS; BENCH_PARTS, e.g. "100" or "burst,10", runs only those parts: the
burst, and the steady rates)
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.bench import LAT, LON
from benchmarks.bench_outbox import busiest_second
from benchmarks.bench_telegram import (
    CATEGORIES,
    SECRET,
    Connection,
    _cpu_seconds,
    _free_port,
    _percentile,
    _serve,
    _wait_healthy,
)
from benchmarks.benchkit import StealMeter, load_average, machine_line
from bot.runtime import loop
from tests.fake_telegram import Call, FakeTelegram, Updates
from tests.pg_harness import running_server
from tests.serve_harness import rows

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PG_ROUNDS = int(os.environ.get("BENCH_PG_ROUNDS", "1"))
STEADY_SECONDS = float(os.environ.get("BENCH_STEADY_SECONDS", "18"))
PARTS = os.environ.get("BENCH_PARTS", "burst,10,100").split(",")
BURST = 50
OTHERS = 20
STEP_GAP = 3.0  # seconds between one resident's steps
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
WAIT = 120.0  # seconds, at most, for the answers to arrive
TELEGRAM_RATE = 30.0
WARM_UP_CHAT = 400_000  # answered before each round's clock starts
RAISED_RATE = 1000.0  # messages a second overall, for the round Telegram's 30 cannot carry


class ArrivalTelegram(FakeTelegram):
    """The fake Bot API, noting when each message to each chat arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: dict[int, list[float]] = defaultdict(list)
        self.all_arrivals: list[float] = []

    def _record(self, call: Call, problems: list[str]) -> None:
        if call.method in ("sendMessage", "sendPhoto") and call.status == 200:
            now = time.monotonic()
            self.arrivals[int(call.params["chat_id"])].append(now)
            self.all_arrivals.append(now)
        super()._record(call, problems)

    def count(self, chats: set[int]) -> int:
        """How many messages reached those chats so far."""
        with self._changed:
            return sum(len(self.arrivals.get(chat, [])) for chat in chats)


def reply_sizes(database: str) -> dict[str, int]:
    """Messages that answer each processed update (by update_id), to its own chat."""
    found = rows(database, "SELECT i.provider_id, count(o.id) FROM inbox i LEFT JOIN outbox o"
                           " ON o.inbox_id = i.id AND o.address = i.address"
                           " WHERE i.channel = 'telegram' AND i.status != 'received'"
                           " GROUP BY i.id")
    return {str(r[0]): int(r[1]) for r in found}


def out_of_order(database: str, fake: ArrivalTelegram) -> list[int]:
    """Chats whose messages reached the fake in another order than gridbot queued them
    (by update, then by row)."""
    queued: dict[int, list[str]] = defaultdict(list)
    for address, body in rows(database, "SELECT address, body FROM outbox"
                                        " WHERE channel = 'telegram'"
                                        " AND status IN ('sent', 'delivered')"
                                        " ORDER BY address, inbox_id, id"):
        queued[int(address)].append(str(body))
    arrived: dict[int, list[str]] = defaultdict(list)
    for call in fake.calls_to("sendMessage"):
        if call.status == 200:
            arrived[int(call.params["chat_id"])].append(str(call.params["text"]))
    wrong = [chat for chat in arrived if arrived[chat] != queued.get(chat)]
    for chat in wrong[:2]:
        print(f"    chat {chat}: arrived {[t[:24] for t in arrived[chat]]}, queued"
              f" {[t[:24] for t in queued.get(chat, [])]}", flush=True)
    return wrong


def reply_times(posts: list[tuple[int, str, float]], sizes: dict[str, int],
                fake: ArrivalTelegram) -> dict[str, float]:
    """Post → arrival of the reply's last message, per update (a chat's messages arrive
    in the order they were queued, so its arrivals split by the replies' sizes)."""
    by_chat: dict[int, list[tuple[str, float]]] = defaultdict(list)
    for chat, update_id, posted in posts:
        by_chat[chat].append((update_id, posted))
    times: dict[str, float] = {}
    with fake._changed:
        for chat, updates in by_chat.items():
            arrivals = sorted(fake.arrivals.get(chat, []))
            seen = 0
            for update_id, posted in updates:
                size = sizes.get(update_id, 0)
                if size and seen + size <= len(arrivals):
                    times[update_id] = arrivals[seen + size - 1] - posted
                seen += size
    return times


async def wait_for_replies(fake: ArrivalTelegram, database: str, chats: set[int],
                           posts: list[tuple[int, str, float]]) -> dict[str, int]:
    """Wait until every reply to these posts has reached the fake; the replies' sizes."""
    deadline = time.monotonic() + WAIT
    while True:
        sizes = reply_sizes(database)
        wanted = sum(sizes.get(update_id, 0) for _, update_id, _ in posts)
        processed = all(update_id in sizes for _, update_id, _ in posts)
        if processed and fake.count(chats) >= wanted:
            return sizes
        if time.monotonic() > deadline:
            raise RuntimeError(f"replies missing: {fake.count(chats)} of {wanted} arrived")
        await asyncio.sleep(0.05)


async def post(connection: Connection, update: dict[str, Any],
               posts: list[tuple[int, str, float]], chat: int) -> None:
    body = json.dumps(update, ensure_ascii=False).encode()
    posted = time.monotonic()
    status = await connection.post("/telegram/webhook", body, HEADERS)
    assert status == 200, status
    posts.append((chat, str(update["update_id"]), posted))


class Server:
    """A gridbot process on a fresh database, with the fake Bot API."""

    def __init__(self, folder: Path, rate: float | None = None,
                 database: str | None = None) -> None:
        self.rate = rate  # GRIDBOT_TELEGRAM_RATE, if not Telegram's 30
        self.folder = folder
        self.database = database or str(folder / "webhook.db")  # a file, or a PostgreSQL URL
        self.fake = ArrivalTelegram()
        self.port = _free_port()
        self.out_of_order = 0  # chats whose messages arrived out of the queued order

    async def __aenter__(self) -> Server:
        self.fake.start()
        extra = {"GRIDBOT_TELEGRAM_RATE": f"{self.rate:g}"} if self.rate else {}
        extra["GRIDBOT_DATABASE"] = self.database
        self.process = _serve(self.folder, self.fake, self.port, **extra)
        await asyncio.to_thread(self.fake.wait_for, lambda c: c.method == "setWebhook", 60.0)
        await _wait_healthy(self.port, self.process)
        await self._warm_up()
        return self

    async def _warm_up(self) -> None:
        """One update answered before the round: on PostgreSQL a sender that has just
        taken its role waits a second (the outbox's TAKEOVER_PAUSE) before its first
        send, which the first round counted in its replies' times."""
        connection = await Connection.open(self.port)
        update = Updates(next_id=400_000).text(WARM_UP_CHAT, "/help")  # ids apart from the round's
        body = json.dumps(update, ensure_ascii=False).encode()
        status = await connection.post("/telegram/webhook", body, HEADERS)
        await connection.close()
        assert status == 200, status
        deadline = time.monotonic() + WAIT
        while not self.fake.count({WARM_UP_CHAT}):
            if time.monotonic() > deadline:
                raise RuntimeError("the warm-up update was not answered")
            await asyncio.sleep(0.05)

    async def __aexit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)
        self.fake.stop()
        assert not self.fake.violations, self.fake.violations[:5]
        # Counted and printed, not asserted: one 100/s round on SQLite of several showed
        # one chat out of order, not reproduced since (README); the rounds say how often.
        self.out_of_order = len(out_of_order(self.database, self.fake))


# --- 1. one chat's burst ---------------------------------------------------------------------

async def burst_round(folder: Path, database: str | None = None) -> dict[str, Any]:
    """One chat's 50 updates, then 20 other chats' one each a second later."""
    make = Updates()
    busy, others = 500_000, [500_100 + i for i in range(OTHERS)]
    async with Server(folder, database=database) as server:
        posts: list[tuple[int, str, float]] = []
        burst_posts: list[tuple[int, str, float]] = []

        async def burster() -> None:
            connection = await Connection.open(server.port)
            for _ in range(BURST):
                await post(connection, make.text(busy, "/help"), burst_posts, busy)
            await connection.close()

        async def other(chat: int) -> None:
            connection = await Connection.open(server.port)
            await post(connection, make.text(chat, "/help"), posts, chat)
            await connection.close()

        bursting = asyncio.create_task(burster())
        await asyncio.sleep(1.0)  # the others write a second after the burst began
        await asyncio.gather(*(other(chat) for chat in others))
        await bursting
        sizes = await wait_for_replies(server.fake, server.database, set(others), posts)
        times = list(reply_times(posts, sizes, server.fake).values())
        burst_done = server.fake.count({busy})
        busiest = busiest_second(sorted(server.fake.all_arrivals))
    assert len(times) == OTHERS, f"{len(times)} of {OTHERS} replies matched"
    return {"p50": statistics.median(times), "p99": _percentile(times, 0.99),
            "max": max(times), "burst_delivered": burst_done, "busiest": busiest,
            "server": server}


# --- 2. steady load ----------------------------------------------------------------------------

Planned = list[tuple[float, int, dict[str, Any]]]


def schedule(rate: float, seconds: float, seed: int = 11) -> Planned:
    """(when, chat, update): residents' report steps, `rate` a second in all, each
    resident's steps STEP_GAP apart."""
    rng = random.Random(seed)
    make = Updates()
    width = max(1, round(rate * STEP_GAP))  # residents in one wave
    total = int(rate * seconds)
    planned: Planned = []
    for slot in range(total):
        wave, within = divmod(slot, width * 6)
        step, offset = divmod(within, width)
        chat = 600_000 + wave * width + offset
        when = slot / rate
        if step == 0:
            update = make.text(chat, "/report")
        elif step == 1:
            update = make.callback(chat, f"1:{rng.randrange(CATEGORIES)}")
        elif step == 2:
            update = make.text(chat, f"第{chat}号问题：楼道里堆满了杂物，影响通行")
        elif step == 3:
            update = make.location(chat, rng.uniform(*LAT), rng.uniform(*LON))
        elif step == 4:
            update = make.callback(chat, "2:0")  # no photos
        else:
            update = make.callback(chat, "3:0")  # submit
        planned.append((when, chat, update))
    return planned


async def steady_round(folder: Path, rate: float,
                       database: str | None = None) -> dict[str, Any]:
    """Post report steps at `rate` a second; the time until each reply's last message."""
    planned = schedule(rate, STEADY_SECONDS)
    async with Server(folder, rate=RAISED_RATE if rate > TELEGRAM_RATE else None,
                      database=database) as server:
        pool: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(40):  # Telegram's default max_connections
            pool.put_nowait(await Connection.open(server.port))
        posts: list[tuple[int, str, float]] = []
        late: list[float] = []

        async def at(moment: float, chat: int, update: dict[str, Any]) -> None:
            await asyncio.sleep(max(0.0, moment - (time.monotonic() - start)))
            late.append(time.monotonic() - start - moment)
            connection = await pool.get()
            try:
                await post(connection, update, posts, chat)
            finally:
                pool.put_nowait(connection)

        cpu_before = _cpu_seconds(server.process.pid) or 0.0
        start = time.monotonic()
        await asyncio.gather(*(at(moment, chat, update) for moment, chat, update in planned))
        chats = {chat for _, chat, _ in planned}
        sizes = await wait_for_replies(server.fake, server.database, chats, posts)
        cpu = (_cpu_seconds(server.process.pid) or 0.0) - cpu_before
        times = list(reply_times(posts, sizes, server.fake).values())
        multi = [t for update_id, t in reply_times(posts, sizes, server.fake).items()
                 if sizes.get(update_id, 0) > 1]
        while not pool.empty():
            await pool.get_nowait().close()
        busiest = busiest_second(sorted(server.fake.all_arrivals))
    return {"p50": statistics.median(times), "p99": _percentile(times, 0.99),
            "max": max(times), "replies": len(times), "multi": len(multi),
            "multi_p99": _percentile(multi, 0.99) if multi else float("nan"),
            "posted_late_p99": _percentile(late, 0.99), "busiest": busiest,
            "cpu_per_update": cpu / len(planned), "server": server}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def in_order(results: list[dict[str, Any]]) -> str:
    """Whether each chat's messages arrived in the queued order, over the rounds."""
    wrong = sum(r["server"].out_of_order for r in results)
    return "each chat's messages in order" if not wrong else (
        f"{wrong} chats' messages OUT OF ORDER (goal: none)")


async def run_parts(label: str, rounds: int,
                    database_for: Callable[[], str | None]) -> None:
    """Each part `rounds` times on one kind of database (a fresh one a round)."""
    bursts = []
    for _ in range(rounds if "burst" in PARTS else 0):
        with tempfile.TemporaryDirectory() as tmp:
            result = await burst_round(Path(tmp), database_for())
        bursts.append(result)
        print(f"  [{label}] burst round: others' reply p50 {ms(result['p50'])},"
              f" p99 {ms(result['p99'])}, max {ms(result['max'])}; the burst chat had"
              f" {result['burst_delivered']} of its {BURST} answers by then; busiest second"
              f" {result['busiest']}; chats out of order {result['server'].out_of_order}",
              flush=True)
    if bursts:
        p99 = statistics.median(r["p99"] for r in bursts)
        print(f"[{label}] 1. one chat's {BURST}-update burst, {OTHERS} others 1 s later: the"
              f" others' reply p50 {ms(statistics.median(r['p50'] for r in bursts))}, p99"
              f" {ms(p99)} (median of {len(bursts)} rounds; goal p99 < 1 s:"
              f" {'met' if p99 < 1.0 else 'NOT met'}); every update answered; {in_order(bursts)}")
    for rate in (float(part) for part in PARTS if part != "burst"):
        results = []
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as tmp:
                result = await steady_round(Path(tmp), rate, database_for())
            results.append(result)
            print(f"  [{label}] {rate:.0f}/s round: {result['replies']} replies, p50"
                  f" {ms(result['p50'])}, p99 {ms(result['p99'])}, max {ms(result['max'])};"
                  f" of these {result['multi']} of several messages, p99"
                  f" {ms(result['multi_p99'])}; posts late p99 {ms(result['posted_late_p99'])};"
                  f" busiest second {result['busiest']}; the server's CPU"
                  f" {result['cpu_per_update'] * 1000:.2f} ms an update; chats out of order"
                  f" {result['server'].out_of_order}", flush=True)
        if not results:
            continue
        p99 = statistics.median(r["p99"] for r in results)
        limit = (f"overall rate raised to {RAISED_RATE:,.0f}/s" if rate > TELEGRAM_RATE
                 else "Telegram's 30/s")
        print(f"[{label}] 2. {rate:.0f} updates/s for {STEADY_SECONDS:.0f} s ({limit}): webhook"
              f" post to the reply's last message p50"
              f" {ms(statistics.median(r['p50'] for r in results))}, p99 {ms(p99)} (median of"
              f" {len(results)} rounds; goal p99 < 300 ms: {'met' if p99 < 0.3 else 'NOT met'});"
              f" every update answered; {in_order(results)}")


async def main() -> None:
    """Run each part ROUNDS times on SQLite, then PG_ROUNDS times on PostgreSQL."""
    steal = StealMeter()
    print(machine_line("gridbot reply-time benchmark"))
    print(f"load average at the start: {load_average()}")
    print(f"Telegram limits as in production (30/s, a private chat 3 at once then 1/s);"
          f" {ROUNDS} rounds of each part on SQLite, {PG_ROUNDS} on PostgreSQL")
    await run_parts("SQLite", ROUNDS, lambda: None)
    if PG_ROUNDS > 0:
        with running_server(durable=True) as server:
            with psycopg.connect(server.url(), autocommit=True) as conn:
                conn.execute("ALTER SYSTEM SET synchronous_commit = off")
                conn.execute("SELECT pg_reload_conf()")
            await run_parts("PostgreSQL", PG_ROUNDS, lambda: server.create_database())
    print(f"load average at the end: {load_average()}")
    print(steal.line())


if __name__ == "__main__":
    loop.run(main())

"""Real `gridbot serve` processes for the tests that kill them (tests/test_crash.py,
tests/test_multiprocess.py): their settings, their start and readiness, and their
database read from beside them — a SQLite file or a PostgreSQL URL alike."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg

from store.dialect import to_postgres
from store.pg import is_postgres_url
from tests.fake_telegram import FakeTelegram, listening_socket

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nothing listens on now."""
    sock = listening_socket()
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Poll real processes' progress (not a clock): fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def healthy(port: int) -> bool:
    """Whether the server on that port is ready (its database answers)."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def sender_role_of(port: int, channel: str = "telegram") -> bool:
    """Whether the process on that port sends for the channel now (its /metrics says)."""
    page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return any(line.startswith("gridbot_leader{") and f'role="outbox-{channel}"' in line
               and line.endswith(" 1.0") for line in page.splitlines())


def environment(folder: Path, database: str, fake: FakeTelegram,
                **extra: str) -> dict[str, str]:
    """`gridbot`'s settings: the database, Telegram on the fake, no timed jobs, a 1 s tick."""
    return {**os.environ, "GRIDBOT_DATABASE": database,
            "GRIDBOT_MEDIA_DIR": str(folder / "media"), "TELEGRAM_BOT_TOKEN": fake.token,
            "TELEGRAM_API_BASE_URL": fake.base_url, "GRIDBOT_QUIET_HOURS": "off",
            "GRIDBOT_DIGEST_MORNING": "off", "GRIDBOT_DIGEST_EVENING": "off",
            "GRIDBOT_MEETING_CRON": "off", "GRIDBOT_TICK_SECONDS": "1", **extra}


def gridbot(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run a `gridbot` command to its end; fail with its output if it fails."""
    done = subprocess.run([sys.executable, "-m", "bot", *args], env=env, cwd=ROOT, text=True,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, f"gridbot {' '.join(args)}: {done.stdout}{done.stderr}"
    return done


def serve(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `gridbot serve`, its output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bot", "serve"], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)


def rows(database: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """A query's rows, read beside the servers (`?` placeholders on both databases)."""
    if is_postgres_url(database):
        with psycopg.connect(database) as conn:
            return [tuple(r) for r in conn.execute(to_postgres(sql).encode(),
                                                   tuple(params)).fetchall()]
    with sqlite3.connect(database) as conn:
        return [tuple(r) for r in conn.execute(sql, tuple(params)).fetchall()]


def count(database: str, sql: str, params: Sequence[Any] = ()) -> int:
    """The first column of a query's first row, as a number (0 without rows)."""
    found = rows(database, sql, params)
    return int(found[0][0]) if found and found[0][0] is not None else 0


def execute(database: str, sql: str, params: Sequence[Any] = ()) -> None:
    """Run one statement straight on the database, committed (`?` placeholders on both)."""
    if is_postgres_url(database):
        with psycopg.connect(database) as conn:
            conn.execute(to_postgres(sql).encode(), tuple(params))
        return
    with sqlite3.connect(database) as conn:
        conn.execute(sql, tuple(params))


def insert_many(database: str, sql: str, values: Iterable[Sequence[Any]]) -> None:
    """Insert rows straight into the database (a test's bulk data)."""
    if is_postgres_url(database):
        with psycopg.connect(database) as conn, conn.cursor() as cursor:
            cursor.executemany(to_postgres(sql).encode(), list(values))
        return
    with sqlite3.connect(database) as conn:
        conn.executemany(sql, values)

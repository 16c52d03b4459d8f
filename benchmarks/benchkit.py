"""What every benchmark prints about the machine it ran on, including how busy the host was.

This machine is a virtual one on a shared host: the hypervisor can take CPU time from it
("steal" in /proc/stat), and its other guests share the caches and memory bandwidth,
which shows in no counter here. Figures vary by a third between runs. Each benchmark
prints the share stolen while it ran, the one part of that noise this machine can see.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import psycopg

from bot.runtime import loop

ROOT = Path(__file__).resolve().parent.parent


def machine_line(title: str) -> str:
    """The benchmark's first line: what it measures and on what."""
    return (f"{title} on {platform.machine()}, {os.cpu_count()} cores,"
            f" Python {platform.python_version()}, SQLite {sqlite3.sqlite_version},"
            f" event loop {loop.loop_name()}")


def cpu_ticks() -> tuple[int, int] | None:
    """(stolen, all) CPU ticks since boot from /proc/stat; None where there is none."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(f) for f in fields]
    # user nice system idle iowait irq softirq steal [guest guest_nice, already in user]
    return (ticks[7] if len(ticks) > 7 else 0), sum(ticks[:8])


class StealMeter:
    """The share of CPU time the host took from this machine between start and now."""

    def __init__(self) -> None:
        self.start = cpu_ticks()

    def share(self) -> float | None:
        """Stolen ticks over all ticks since the meter started (None if unknown)."""
        end = cpu_ticks()
        if self.start is None or end is None or end[1] == self.start[1]:
            return None
        return (end[0] - self.start[0]) / (end[1] - self.start[1])

    def line(self) -> str:
        """A closing line saying how much the host took during the run."""
        share = self.share()
        if share is None:
            return "CPU time taken by the host (steal): unknown on this system"
        return f"CPU time taken by the host (steal) during this run: {share:.1%}"


def load_average() -> str:
    """The host's load averages (1, 5 and 15 minutes) as /proc/loadavg gives them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def copy_to_postgres(source: Path, url: str, env: Mapping[str, str]) -> str:
    """Move a filled SQLite file into an empty PostgreSQL database with `gridbot
    copy-database FROM TO` (which checks every table's count), then VACUUM ANALYZE it
    (or autovacuum would, during the measurements); return the command's last line
    (rows and tables copied)."""
    copied = subprocess.run([sys.executable, "-m", "bot", "copy-database", str(source), url],
                            env={**os.environ, **env}, cwd=ROOT, text=True,
                            capture_output=True)
    assert copied.returncode == 0 and "every count checked" in copied.stdout, (
        copied.stdout[-2000:] + copied.stderr[-2000:])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return copied.stdout.strip().splitlines()[-1]

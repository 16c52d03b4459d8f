"""The monthly indicators for a hand-made month, against figures worked out by hand."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.domain.stats import CaseFacts, EventFacts, compute, table

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 1, tzinfo=TZ)
END = datetime(2026, 12, 1, tzinfo=TZ)


def at(day: int, hour: int = 9, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


CASES = [
    # A: due, closed on time inside the grid, 3 hours
    CaseFacts(1, "G1", 1, "U2", at(2), at(2, 13), at(2, 12), "grid"),
    # B: due, closed late by the community, 72 hours
    CaseFacts(2, "G1", 1, "U3", at(3), at(5), at(6), "community"),
    # C: due, still open
    CaseFacts(3, "G2", 2, "U3", at(20), at(25), None, None),
    # D: registered last month, due next month: in no rate's denominator
    CaseFacts(4, "G2", 2, "U3", at(28, month=10), at(3, month=12), None, None),
]
EVENTS = [
    EventFacts(1, "register", None, at(2)), EventFacts(1, "sign", 1, at(2, 9, 30)),
    EventFacts(1, "report_done", 1, at(2, 11)), EventFacts(1, "check_pass", 1, at(2, 12)),
    EventFacts(1, "rate", 10, at(3), rating=5),
    EventFacts(2, "register", None, at(3)), EventFacts(2, "sign", 1, at(3, 11)),
    EventFacts(2, "report_done", 1, at(4)), EventFacts(2, "check_fail", 3, at(4, 15)),
    EventFacts(2, "report_done", 1, at(5)), EventFacts(2, "check_pass", 3, at(6)),
    EventFacts(2, "rate", 11, at(7), rating=2),
    EventFacts(3, "register", None, at(20)), EventFacts(3, "sign", 2, at(20, 9, 10)),
    EventFacts(4, "register", None, at(28, month=10)),
]


def test_indicators_of_a_hand_made_month() -> None:
    report = compute(CASES, EVENTS, START, END, chiefs=[1, 2])
    assert report.total.rates() == {
        "closing_rate": round(2 / 3, 4),            # A, B closed of A, B, C due
        "on_time_closing_rate": round(1 / 3, 4),    # only A by its deadline
        "on_time_signing_rate": round(2 / 3, 4),    # A in 30 min, C in 10; B took 2 h
        "rework_rate": round(1 / 3, 4),             # 1 failed check, 3 reports of done
        "self_handling_rate": round(1 / 3, 4),      # A closed in the grid, of 3 registered
        "satisfaction": 0.5,                        # ratings 5 and 2
        "average_handling_hours": 37.5,             # (3 + 72) / 2
    }
    assert (report.total.due, report.total.closed) == (3, 2)
    assert report.by_grid["G1"].due == 2 and report.by_grid["G2"].due == 1
    assert report.by_person[1].closed_on_time == 1
    assert report.handled_by_chief == {1: 2, 2: 0}


def test_a_month_with_nothing_due_has_no_rates_rather_than_zeros() -> None:
    report = compute([], [], START, END)
    assert set(report.total.rates().values()) == {None}


def test_the_table_has_a_row_per_grid_person_and_chief() -> None:
    report = compute(CASES, EVENTS, START, END, chiefs=[1, 2])
    rows = table(report, {1: ("王丽华", "G1"), 2: ("陈建国", "G2")})
    labels = [row[0] for row in rows]
    assert labels[:4] == ["group", "total", "grid G1", "grid G2"]
    assert ["王丽华", "G1", "2", "10", "no"] in rows


def test_gridbot_stats_prints_the_month_and_writes_csv(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "GRIDBOT_DATABASE": str(tmp_path / "g.db")}
    script = "/report\n1\n垃圾桶满了\n/loc 30.2801 120.11661\n1\n1\n"
    subprocess.run([sys.executable, "-m", "bot", "chat", "--channel", "sms"], input=script,
                   text=True, capture_output=True, cwd=tmp_path, env=env, check=True)
    month = (datetime.now(TZ) + timedelta(days=0)).strftime("%Y-%m")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "stats", "--month", month, "--csv",
         str(tmp_path / "s.csv")], text=True, capture_output=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "closing_rate" in result.stdout and "王丽华" in result.stdout
    assert (tmp_path / "s.csv").read_text(encoding="utf-8").startswith("group,due,closed")
    bad = subprocess.run([sys.executable, "-m", "bot", "stats", "--month", "2026-13"],
                         text=True, capture_output=True, cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "--month" in bad.stderr


def test_gridbot_invite_prints_a_code_that_joins_once(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "GRIDBOT_DATABASE": str(tmp_path / "g.db")}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "invite", "--role", "grid_chief", "--scope",
         "33010600100102", "--expires", "2d"], text=True, capture_output=True, cwd=tmp_path,
        env=env)
    assert result.returncode == 0, result.stderr
    code = re.search(r"invitation code: (\w+)", result.stdout)
    assert code and f"start={code.group(1)}" in result.stdout
    joined = subprocess.run([sys.executable, "-m", "bot", "chat", "--as", "新网格员"],
                            input=f"/join {code.group(1)}\n", text=True, capture_output=True,
                            cwd=tmp_path, env=env)
    assert "欢迎加入" in joined.stdout
    listed = subprocess.run([sys.executable, "-m", "bot", "staff", "list"], text=True,
                            capture_output=True, cwd=tmp_path, env=env)
    role_id = next(line.split()[0] for line in listed.stdout.splitlines()
                   if "33010600100102" in line and "grid_chief" in line
                   and line.split()[-1] != "陈建国")
    revoked = subprocess.run([sys.executable, "-m", "bot", "staff", "revoke", role_id],
                             text=True, capture_output=True, cwd=tmp_path, env=env)
    assert revoked.returncode == 0
    unknown_scope = subprocess.run(
        [sys.executable, "-m", "bot", "invite", "--role", "grid_chief", "--scope", "nowhere"],
        text=True, capture_output=True, cwd=tmp_path, env=env)
    assert unknown_scope.returncode == 2 and "unknown scope" in unknown_scope.stderr

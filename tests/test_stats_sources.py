"""Cases by source and household visits in the monthly statistics: a hand-made month
worked out by hand, then `gridbot stats` on real cases (text, JSON, CSV)."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.domain.stats import (
    CaseFacts,
    VisitFacts,
    compute,
    source_of,
    source_table,
    visit_table,
)
from tests.helpers import gridbot

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 1, tzinfo=TZ)
END = datetime(2026, 12, 1, tzinfo=TZ)


def at(day: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, 9, tzinfo=TZ)


def case(case_id: int, source: str, registered: datetime) -> CaseFacts:
    return CaseFacts(case_id, "G1", None, "U3", registered, None, None, None, source)


def test_where_a_case_came_from() -> None:
    assert source_of("telegram", False) == "chat"
    assert source_of("sim-telegram", False) == "chat"
    assert source_of("sms", False) == "sms" and source_of("sim-sms", False) == "sms"
    assert source_of("phone", False) == "phone"
    assert source_of("open311", False) == "open311"
    assert source_of("telegram", True) == "patrol"  # staff found it, on whatever channel
    assert source_of(None, False) == "chat"


def test_a_hand_made_month_counts_cases_by_source_and_visits() -> None:
    cases = [case(1, "chat", at(2)), case(2, "chat", at(3)), case(3, "sms", at(4)),
             case(4, "phone", at(5)), case(5, "phone", at(6)), case(6, "phone", at(7)),
             case(7, "patrol", at(8)), case(8, "open311", at(9)),
             case(9, "phone", at(28, month=10))]  # last month: not counted
    visits = [VisitFacts("G1", 1, 10, False), VisitFacts("G1", 1, 10, True),
              VisitFacts("G1", 1, None, False), VisitFacts("G2", 2, 20, True)]
    report = compute(cases, [], START, END, visits=visits)
    assert report.by_source == {"chat": 2, "sms": 1, "phone": 3, "patrol": 1, "open311": 1}
    assert sum(report.by_source.values()) == report.total.registered == 8
    assert source_table(report) == [
        ["source", "registered", "share"], ["chat", "2", "25.0%"], ["sms", "1", "12.5%"],
        ["phone", "3", "37.5%"], ["patrol", "1", "12.5%"], ["open311", "1", "12.5%"],
        ["total", "8", "100.0%"]]
    assert visit_table(report) == [
        ["group", "visits", "households_visited", "unregistered", "follow_ups"],
        ["total", "4", "2", "1", "2"], ["grid G1", "3", "1", "1", "1"],
        ["grid G2", "1", "1", "0", "1"]]


def test_an_empty_month_has_no_shares() -> None:
    report = compute([], [], START, END)
    assert source_table(report)[-1] == ["total", "0", "-"]
    assert visit_table(report) == [
        ["group", "visits", "households_visited", "unregistered", "follow_ups"],
        ["total", "0", "0", "0", "0"]]


def test_gridbot_stats_shows_cases_by_source_in_text_json_and_csv(tmp_path: Path) -> None:
    chat = "/report\n1\n垃圾桶满了\n/loc 30.2801 120.11661\n1\n1\n"
    assert gridbot(tmp_path, "chat", "--channel", "sms", stdin=chat).returncode == 0
    neighbour = chat + "2\n"  # the same spot: asked to follow (1) or file a new one (2)
    assert gridbot(tmp_path, "chat", "--as", "邻居", stdin=neighbour).returncode == 0
    month = datetime.now(TZ).strftime("%Y-%m")
    text = gridbot(tmp_path, "stats", "--month", month, "--csv-dir", str(tmp_path / "out"))
    assert text.returncode == 0, text.stderr
    assert "cases registered by source" in text.stdout and "household visits" in text.stdout
    found = json.loads(gridbot(tmp_path, "stats", "--month", month, "--json").stdout)
    assert found["by_source"]["sms"] == 1 and found["by_source"]["chat"] == 1
    assert set(found["by_source"]) == {"chat", "sms", "phone", "patrol", "open311"}
    assert found["visits"]["visits"] == 0
    with (tmp_path / "out" / f"sources-{month}.csv").open(encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["source", "registered", "share"] and rows[-1][0] == "total"
    assert (tmp_path / "out" / f"visits-{month}.csv").exists()

"""`gridbot notice` and `gridbot meeting` as the street office runs them: real subprocesses."""

from __future__ import annotations

import argparse
import io
import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.bootstrap import build
from bot.domain.clock import FakeClock
from bot.entrypoints import cli_notices
from bot.settings import Settings
from tests.helpers import PNG, gridbot, undocumented

COMMUNITY_1 = "33010600100100"


def test_notice_previews_and_sends_nothing_without_a_yes(tmp_path: Path) -> None:
    result = gridbot(tmp_path, "notice", "--scope", COMMUNITY_1, "--to", "chiefs",
                     "--text", "周五下午2点开网格长会", stdin="n\n")
    assert result.returncode == 1
    assert "chiefs: 4 recipients (sim-telegram 4)" in result.stdout
    assert "by SMS: zh_CN 1 segment, en 1 segment" in result.stdout  # as the console counts
    assert "nothing sent" in result.stdout
    with sqlite3.connect(tmp_path / "g.db") as conn:
        assert conn.execute("SELECT count(*) FROM notices").fetchone()[0] == 0


def test_the_preview_says_who_gets_the_text_without_the_photo(tmp_path: Path) -> None:
    gridbot(tmp_path, "migrate")
    with sqlite3.connect(tmp_path / "g.db") as conn:  # one chief now uses SMS
        conn.execute("UPDATE contacts SET channel = 'sim-sms' WHERE address = 'web:chief-0101'")
    picture = tmp_path / "map.png"
    picture.write_bytes(PNG)
    result = gridbot(tmp_path, "notice", "--scope", COMMUNITY_1, "--to", "chiefs",
                     "--text", "停水范围见图", "--photo", str(picture), stdin="n\n")
    assert "(sim-sms 1, sim-telegram 3)" in result.stdout, result.stdout
    assert "1 of them on SMS gets the text only, without the photo" in result.stdout
    plain = gridbot(tmp_path, "notice", "--scope", COMMUNITY_1, "--to", "chiefs",
                    "--text", "停水", stdin="n\n")
    assert "text only" not in plain.stdout


def test_notice_with_yes_is_queued_and_shows_its_acknowledgements(tmp_path: Path) -> None:
    result = gridbot(tmp_path, "notice", "--scope", COMMUNITY_1, "--to", "chiefs",
                     "--text", "周五下午2点开网格长会", "--yes")
    assert result.returncode == 0, result.stderr
    assert "notice 1 queued for 4 recipients" in result.stdout
    with sqlite3.connect(tmp_path / "g.db") as conn:
        rows = conn.execute("SELECT address, body, payload, priority FROM outbox"
                            " ORDER BY address").fetchall()
        conn.execute("UPDATE notice_recipients SET acked_at = '2026-11-23T02:00:00+00:00'"
                     " WHERE grid_code = '33010600100101'")
    assert [r[0] for r in rows] == [f"web:chief-010{g}" for g in (1, 2, 3, 4)]
    assert all("周五下午2点开网格长会" in r[1] and '"ack:1"' in r[2] and r[3] == 10
               for r in rows)
    shown = gridbot(tmp_path, "notice", "--show", "1", "--remind")
    assert "1 of 4 acknowledged" in shown.stdout
    assert "翠苑一区第1网格 (33010600100101): 1 / 1" in shown.stdout
    assert "reminder queued for 3 recipients" in shown.stdout


def test_notice_refuses_unknown_areas_and_past_times(tmp_path: Path) -> None:
    unknown = gridbot(tmp_path, "notice", "--scope", "nowhere", "--to", "residents",
                      "--text", "x", "--yes")
    assert unknown.returncode == 2 and "unknown area or building" in unknown.stderr
    past = gridbot(tmp_path, "notice", "--scope", COMMUNITY_1, "--to", "residents",
                   "--text", "x", "--at", "2001-01-01 09:00", "--yes")
    assert past.returncode == 2 and "--at must be a future local time" in past.stderr


def test_meeting_invites_a_building_and_lists_the_answers(tmp_path: Path) -> None:
    result = gridbot(tmp_path, "meeting", "--scope", "翠苑一区3幢", "--to", "chiefs",
                     "--title", "楼道堆物整治协调会", "--place", "3幢一楼大厅",
                     "--at", "2031-01-06 19:00", "--yes")
    assert result.returncode == 0, result.stderr
    assert "invitations queued for 1 person" in result.stdout
    shown = gridbot(tmp_path, "meeting", "--show", "1")
    assert "1 invited" in shown.stdout and "unanswered: 1" in shown.stdout
    as_json = json.loads(gridbot(tmp_path, "meeting", "--show", "1", "--json").stdout)
    assert as_json["title"] == "楼道堆物整治协调会" and as_json["invited"] == 1
    assert as_json["scope_name"] == "翠苑一区3幢" and as_json["place"] == "3幢一楼大厅"
    assert as_json["starts_at"] == "2031-01-06T11:00:00+00:00"  # 19:00 in Shanghai, as UTC
    assert (as_json["yes"], as_json["no"], len(as_json["unanswered"])) == ([], [], 1)
    assert undocumented(as_json) == []


def test_meeting_of_two_grids_joined_by_a_comma_invites_their_two_chiefs(
        tmp_path: Path) -> None:
    result = gridbot(tmp_path, "meeting", "--scope", "33010600100101,33010600100102",
                     "--to", "chiefs", "--title", "两个网格联席会", "--place", "社区二楼会议室",
                     "--at", "2031-01-06 19:00", "--yes")
    assert result.returncode == 0, result.stderr
    assert "invitations queued for 2 people" in result.stdout  # not the other two grids'
    as_json = json.loads(gridbot(tmp_path, "meeting", "--show", "1", "--json").stdout)
    assert as_json["scope"] == "33010600100101,33010600100102"
    assert as_json["scope_name"] == "翠苑一区第1网格、翠苑一区第2网格"

def test_one_recipient_is_one_recipient_not_one_recipients(tmp_path: Path) -> None:
    result = gridbot(tmp_path, "notice", "--scope", "翠苑一区3幢", "--to", "chiefs",
                     "--text", "3幢楼道请清理", "--yes")
    assert result.returncode == 0, result.stderr
    assert "chiefs: 1 recipient (sim-telegram 1)" in result.stdout
    assert "notice 1 queued for 1 recipient\n" in result.stdout
    reminded = gridbot(tmp_path, "notice", "--show", "1", "--remind")
    assert "reminder queued for 1 recipient\n" in reminded.stdout
    assert "recipients" not in result.stdout + reminded.stdout


def test_notice_show_json_has_the_counts_per_grid(tmp_path: Path) -> None:
    gridbot(tmp_path, "notice", "--scope", COMMUNITY_1, "--to", "chiefs", "--text", "周五开会",
            "--yes")
    with sqlite3.connect(tmp_path / "g.db") as conn:
        conn.execute("UPDATE notice_recipients SET acked_at = '2026-11-23T02:00:00+00:00'"
                     " WHERE grid_code = '33010600100102'")
    result = gridbot(tmp_path, "notice", "--show", "1", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert {k: shown[k] for k in ("id", "status", "scope", "audience", "text", "recipients",
                                  "acknowledged")} == {
        "id": 1, "status": "sent", "scope": COMMUNITY_1, "audience": "chiefs",
        "text": "周五开会", "recipients": 4, "acknowledged": 1}
    assert shown["scope_name"] == "翠苑一区社区" and "reminded" not in shown
    assert shown["areas"][1] == {"code": "33010600100102", "name": "翠苑一区第2网格",
                                 "recipients": 1, "acknowledged": 1}
    reminded = json.loads(gridbot(tmp_path, "notice", "--show", "1", "--remind",
                                  "--json").stdout)
    assert reminded["reminded"] == 3
    assert undocumented([*reminded, *reminded["areas"][0]]) == []


def test_the_example_time_in_the_error_is_tomorrow_not_a_fixed_date(tmp_path: Path) -> None:
    result = gridbot(tmp_path, "meeting", "--scope", COMMUNITY_1, "--to", "chiefs",
                     "--title", "例会", "--place", "会议室", "--at", "2001-01-01 09:00", "--yes")
    assert result.returncode == 2
    example = re.search(r'like "(\d{4}-\d\d-\d\d \d\d:\d\d)"', result.stderr)
    assert example, result.stderr
    shanghai = ZoneInfo("Asia/Shanghai")
    when = datetime.strptime(example.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=shanghai)
    assert when > datetime.now(shanghai)  # an example that would work if copied


@pytest.mark.parametrize("command, at", [("meeting", "14:30"), ("notice", "09:00")])
async def test_the_example_time_follows_the_injected_clock(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, at: str) -> None:
    settings = Settings.from_mapping({"GRIDBOT_DATABASE": str(tmp_path / "g.db"),
                                      "GRIDBOT_MEDIA_DIR": str(tmp_path / "media")})
    clock = FakeClock(datetime(2031, 12, 31, 20, 0, tzinfo=UTC))  # 2032-01-01 04:00 local
    bot = await build(settings, clock)
    try:
        args = argparse.Namespace(
            show=None, scope=COMMUNITY_1, to="chiefs", title="例会", place="会议室",
            text="停水", photo=None, at="2031-12-31 09:00", yes=True, json=False)
        run = cli_notices._meeting if command == "meeting" else cli_notices._notice
        assert await run(bot, args, io.StringIO(), io.StringIO()) == 2
        assert f'like "2032-01-02 {at}"' in capsys.readouterr().err
        clock.advance(timedelta(days=400))
        assert cli_notices.example_time(bot, at) == f"2033-02-05 {at}"
    finally:
        await bot.close()

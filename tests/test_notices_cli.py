"""`gridbot notice` and `gridbot meeting` as the street office runs them: real subprocesses."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.helpers import PNG, gridbot

COMMUNITY_1 = "33010600100100"


def test_notice_previews_and_sends_nothing_without_a_yes(tmp_path: Path) -> None:
    result = gridbot(tmp_path, "notice", "--scope", COMMUNITY_1, "--to", "chiefs",
                     "--text", "周五下午2点开网格长会", stdin="n\n")
    assert result.returncode == 1
    assert "chiefs: 4 recipients (sim-telegram 4)" in result.stdout
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
    assert "1 of them on SMS get the text only, without the photo" in result.stdout
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
    assert "invitations queued for 1 people" in result.stdout
    shown = gridbot(tmp_path, "meeting", "--show", "1")
    assert "1 invited" in shown.stdout and "unanswered: 1" in shown.stdout

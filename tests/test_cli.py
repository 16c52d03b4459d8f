"""The `gridbot` command as a person runs it: a real subprocess on a real database file."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.bootstrap import Gridbot, build
from bot.domain.clock import SystemClock
from bot.entrypoints import cli
from bot.settings import Settings
from tests.chat import ChatDriver
from tests.helpers import gridbot, undocumented

DEMO = Path(__file__).resolve().parent.parent / "bot" / "data" / "demo"


def test_help_lists_every_command(tmp_path: Path) -> None:
    result = gridbot(tmp_path, "--help")
    assert result.returncode == 0
    for command in ("serve", "chat", "import-grids", "import-buildings", "migrate", "case",
                    "stats", "notice", "meeting"):
        assert command in result.stdout


def test_a_wrong_setting_stops_with_one_line_naming_it(tmp_path: Path) -> None:
    result = gridbot(tmp_path, "migrate", GRIDBOT_PORT="eighty")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "GRIDBOT_PORT" in result.stderr


def test_piping_a_report_into_chat_ends_with_a_stored_case(tmp_path: Path) -> None:
    script = "\n".join(["/report", "1", "垃圾桶满了，臭味很大", "/loc 30.2801 120.11661",
                        "1", "1"]) + "\n"
    result = gridbot(tmp_path, "chat", "--as", "老李", "--channel", "sms", stdin=script)
    assert result.returncode == 0, result.stderr
    match = re.search(r"事件编号：(\d{6}-\d{3})", result.stdout)
    assert match, result.stdout
    with sqlite3.connect(tmp_path / "g.db") as conn:
        case_id, state = conn.execute("SELECT id, state FROM cases WHERE number = ?",
                                      (match.group(1),)).fetchone()
        trail = conn.execute("SELECT event FROM case_events WHERE case_id = ? ORDER BY id",
                             (case_id,)).fetchall()
    assert state == "registered"
    assert [t[0] for t in trail] == ["submit", "register"]


def _readme_piped_example() -> tuple[str, list[str]]:
    """The README's piped chat example: what printf feeds, and gridbot's arguments."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^printf '([^']*)' \| \.venv/bin/gridbot (chat[^\n]*)$", readme,
                      re.MULTILINE)
    assert found, "README.md has no piped chat example"
    return found.group(1).replace("\\n", "\n"), found.group(2).split()


def test_the_readmes_piped_example_files_a_case_every_time_it_is_run(tmp_path: Path) -> None:
    script, args = _readme_piped_example()
    numbers = []
    for _ in range(3):
        result = gridbot(tmp_path, *args, stdin=script)
        assert result.returncode == 0, result.stderr
        match = re.search(r"事件编号：(\d{6}-\d{3})", result.stdout)
        assert match, result.stdout
        numbers.append(match.group(1))
    assert len(set(numbers)) == 3
    # Someone else at the same place is offered the open cases there to follow.
    neighbour = gridbot(tmp_path, *args, "--as", "邻居", stdin=script)
    assert f"关注 {numbers[-1]}" in neighbour.stdout and "事件编号" not in neighbour.stdout


def test_chat_shows_buttons_the_telegram_way(tmp_path: Path) -> None:
    result = gridbot(tmp_path, "chat", stdin="/report\n")
    assert "[1 市容环卫]" in result.stdout


@pytest.fixture
async def gridbot_app(tmp_path: Path) -> AsyncIterator[Gridbot]:
    """gridbot in this process on the database file the subprocesses use (g.db)."""
    settings = Settings.from_mapping({"GRIDBOT_DATABASE": str(tmp_path / "g.db"),
                                      "GRIDBOT_MEDIA_DIR": str(tmp_path / "media")})
    bot = await build(settings, SystemClock())
    try:
        yield bot
    finally:
        await bot.close()


def _collection(features: list[dict[str, object]]) -> str:
    return json.dumps({"type": "FeatureCollection", "features": features})


def test_import_grids_refuses_a_broken_file_whole(tmp_path: Path) -> None:
    data = json.loads((DEMO / "district.geojson").read_text(encoding="utf-8"))
    data["features"][-1]["geometry"] = {"type": "Point", "coordinates": [120.1, 30.2]}
    broken = tmp_path / "broken.geojson"
    broken.write_text(json.dumps(data), encoding="utf-8")
    result = gridbot(tmp_path, "import-grids", str(broken), GRIDBOT_DEMO="false")
    assert result.returncode == 1
    assert "nothing imported" in result.stderr
    # The demo file has 11 features; the last is "feature 11", as people count.
    assert len(data["features"]) == 11 and "feature 11 (code" in result.stderr
    with sqlite3.connect(tmp_path / "g.db") as conn:
        assert conn.execute("SELECT count(*) FROM areas").fetchone()[0] == 0


def test_import_grids_then_reimport_updates_in_place(tmp_path: Path) -> None:
    source = DEMO / "district.geojson"
    first = gridbot(tmp_path, "import-grids", str(source), GRIDBOT_DEMO="false")
    assert first.returncode == 0, first.stderr
    assert "imported 11 areas" in first.stdout
    data = json.loads(source.read_text(encoding="utf-8"))
    data["features"][0]["properties"]["name"] = "新名字街道"
    changed = tmp_path / "changed.geojson"
    changed.write_text(json.dumps(data), encoding="utf-8")
    assert gridbot(tmp_path, "import-grids", str(changed), GRIDBOT_DEMO="false").returncode == 0
    with sqlite3.connect(tmp_path / "g.db") as conn:
        assert conn.execute("SELECT count(*) FROM areas").fetchone()[0] == 11
        assert conn.execute("SELECT name FROM areas WHERE level = 'street'").fetchone()[0] \
            == "新名字街道"


def test_import_buildings_checks_grid_codes(tmp_path: Path) -> None:
    assert gridbot(tmp_path, "import-grids", str(DEMO / "district.geojson"),
                   GRIDBOT_DEMO="false").returncode == 0
    good = gridbot(tmp_path, "import-buildings", str(DEMO / "buildings.csv"),
                   GRIDBOT_DEMO="false")
    assert good.returncode == 0, good.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("name,address,grid_code,lat,lon\n8幢,某路1号,33010600100101,,\n\n"
                   "9幢,某路1号,99999999999999,,\n", encoding="utf-8")
    result = gridbot(tmp_path, "import-buildings", str(bad), GRIDBOT_DEMO="false")
    assert result.returncode == 1 and "99999999999999" in result.stderr
    assert "line 4:" in result.stderr  # header line 1, a blank line 3: as an editor shows
    one = tmp_path / "one.csv"
    one.write_text("name,address,grid_code\n8幢,某路1号,33010600100101\n", encoding="utf-8")
    imported = gridbot(tmp_path, "import-buildings", str(one), GRIDBOT_DEMO="false")
    assert f"imported 1 building from {one}" in imported.stdout, imported.stderr


@pytest.mark.parametrize("missing", ["import-grids", "import-buildings"])
def test_import_of_a_missing_file_says_so(tmp_path: Path, missing: str) -> None:
    result = gridbot(tmp_path, missing, str(tmp_path / "nope"))
    assert result.returncode == 1 and "cannot read" in result.stderr


def test_serve_port_and_host_flags_also_make_the_public_url(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("GRIDBOT_PUBLIC_URL", raising=False)
    parser = cli._parser()
    flagged = cli.settings_for(parser.parse_args(["serve", "--host", "0.0.0.0",
                                                  "--port", "9000"]))
    assert (flagged.host, flagged.port) == ("0.0.0.0", 9000)
    assert flagged.public_url == "http://0.0.0.0:9000"  # photo links point where it serves
    monkeypatch.setenv("GRIDBOT_PUBLIC_URL", "https://grid.example.cn")
    behind_proxy = cli.settings_for(parser.parse_args(["serve", "--port", "9000"]))
    assert behind_proxy.public_url == "https://grid.example.cn"


def test_empty_or_zero_serve_flags_leave_the_settings_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GRIDBOT_HOST", "10.0.0.5")
    monkeypatch.setenv("GRIDBOT_PORT", "8100")
    settings = cli.settings_for(cli._parser().parse_args(["serve", "--host", "", "--port", "0"]))
    assert (settings.host, settings.port) == ("10.0.0.5", 8100)


REPORT = "/report\n1\n垃圾桶满了，臭味很大\n/loc 30.2801 120.11661\n1\n1\n"


def _reported(tmp_path: Path) -> str:
    result = gridbot(tmp_path, "chat", "--as", "老李", "--channel", "sms", stdin=REPORT)
    match = re.search(r"事件编号：(\d{6}-\d{3})", result.stdout)
    assert match, result.stdout + result.stderr
    return match.group(1)


def test_gridbot_case_prints_the_card_and_the_timeline(tmp_path: Path) -> None:
    number = _reported(tmp_path)
    result = gridbot(tmp_path, "case", number.replace("-", ""))  # 261123001 is read too
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"case {number}: 市容环卫 (sanitation), U2")
    assert "state:       已立案 (registered), at 网格 (grid)" in result.stdout
    assert "area:        翠苑一区第1网格 (33010600100101)" in result.stdout
    assert "description: 垃圾桶满了，臭味很大" in result.stdout
    assert "in charge:   王丽华 (#" in result.stdout
    timeline = lines[lines.index("timeline:") + 1:]
    assert [line.split("  ")[2].split(" (")[0] for line in timeline] == ["提交", "立案"]
    assert timeline[1].endswith("→ 已立案  by system")


def test_gridbot_case_json_has_the_documented_fields(tmp_path: Path) -> None:
    number = _reported(tmp_path)
    result = gridbot(tmp_path, "case", number, "--json")
    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    assert {k: view[k] for k in ("number", "category", "state", "level", "grid_code",
                                 "assignee", "lat", "lon", "followers", "photo_ids")} == {
        "number": number, "category": "sanitation", "state": "registered", "level": "grid",
        "grid_code": "33010600100101", "assignee": "王丽华", "lat": 30.2801,
        "lon": 120.11661, "followers": 0, "photo_ids": []}
    assert [(e["event"], e["to_state"], e["actor_role"]) for e in view["timeline"]] == [
        ("submit", "submitted", "resident"), ("register", "registered", "system")]
    assert view["deadline"].endswith("+00:00") and view["overdue"] is False
    assert undocumented([*view, *view["timeline"][0]]) == []


async def test_gridbot_case_masks_the_reporters_phone_unless_asked(
        tmp_path: Path, gridbot_app: Gridbot) -> None:
    phone = ChatDriver(gridbot_app, "sms", "+8613912345678")
    for line in ("/report", "1", "垃圾桶满了", "古翠路88号", "1", "1"):
        await phone.text(line)
    match = re.search(r"\d{6}-\d{3}", phone.said)
    assert match, phone.said
    masked = gridbot(tmp_path, "case", match.group(0))
    assert "reporter:    139****5678 via sms" in masked.stdout, masked.stdout + masked.stderr
    assert "13912345678" not in masked.stdout
    full = gridbot(tmp_path, "case", match.group(0), "--full-phone", "--json")
    assert json.loads(full.stdout)["reporter"] == "+8613912345678"


def test_gridbot_case_says_what_is_wrong_with_the_number(tmp_path: Path) -> None:
    bad = gridbot(tmp_path, "case", "999")
    assert bad.returncode == 2 and "YYMMDD-NNN" in bad.stderr
    unknown = gridbot(tmp_path, "case", "261123-999")
    assert unknown.returncode == 1 and "no case 261123-999" in unknown.stderr

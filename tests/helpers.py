"""What several test modules share: places and numbers of the demo district, sample
data, and small drivers. Fixtures are in conftest.py; fakes and harnesses in their own
modules (fake_telegram, fake_twilio, telegram_harness, sms_harness, chat)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.bootstrap import Gridbot
from bot.runtime.scheduler import Scheduler
from bot.services.render import Renderer
from store import outbox as outbox_store
from store import people as people_store
from tests.chat import ChatDriver, Said
from tests.fake_telegram import SpecChecker
from tests.images import png

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
CHECKER = SpecChecker.load()  # the Bot API spec the fake checks every call against


GRID_1_POINT = (30.2801, 120.11661)  # inside 翠苑一区第1网格 (33010600100101)


CASE_NUMBER = re.compile(r"\d{6}-\d{3,4}")


async def report_by_menu(chat: ChatDriver, description: str = "路灯不亮了，晚上很黑",
                         point: tuple[float, float] = GRID_1_POINT) -> str:
    """Walk the whole dialogue with menu choices; return the case number."""
    await chat.text("/report")
    await chat.press("市政设施")
    await chat.text(description)
    await chat.location(*point)
    await chat.photo("aa" * 32)
    await chat.photo("bb" * 32)
    await chat.press("完成")
    assert "请确认" in chat.said
    await chat.press("确认提交")
    match = CASE_NUMBER.search(chat.said)
    assert match, chat.said
    return match.group(0)


SAMPLE = {
    "grid": "翠苑一区第1网格",
    "chief": {"name": "王丽华", "phone": "13800001001", "duties": "巡查"},
    "cases": [{"number": "261123-001", "category": "sanitation", "state": "已立案",
               "created": NOW, "description": "垃圾", "deadline": NOW, "overdue": True}],
    "number": "261123-001", "category": "市容环卫", "state": "已立案", "description": "垃圾",
    "deadline": NOW, "area": "翠苑一区第1网格", "followers": 2,
    "timeline": [{"at": NOW, "event": "立案", "note": ""}], "photos": 1, "command": "x",
    "limit": 5, "got": 5000, "place": "3号楼", "suggestion": "市容环卫", "count": 1,
    "street_level": False, "handler": "王丽华", "urgency": "U2", "why": "pixels",
    # the staff side
    "note": "现场已清理", "merged_into": "261123-002", "department": "sanitation",
    "requested": NOW, "rating": 4, "rework": 1, "level": "grid", "action": "签收",
    "reason": "不在本网格", "state_label": "处理中", "level_label": "网格",
    "reporter": "老李 138****1001", "overdue": True, "actions": True, "role": "网格长",
    "scope": "翠苑一区第1网格", "name": "王丽华", "phone": "13800001001", "duties": "巡查",
    "photo": True, "locale": "zh_CN", "visible": True, "month": "2026-11", "due": 12, "closed": 10,
    "rates": {"closing_rate": "83%", "on_time_closing_rate": "75%",
              "on_time_signing_rate": "90%", "rework_rate": "8%", "self_handling_rate": "60%",
              "satisfaction": "95%", "average_handling_hours": "5.2"},
    "chiefs": [{"name": "王丽华", "handled": 11, "target": 10}],
    # notices, meetings, digests
    "org": "翠苑街道", "text": "本周六上午9点小区停水检修，请提前储水。", "total": 120,
    "text_only": 20, "has_photo": True,
    "channels": [{"channel": "短信", "count": 20}, {"channel": "Telegram", "count": 100}],
    "send_at": NOW, "audience": "居民", "id": 7, "acked": 88, "more": 0,
    "grids": [{"area": "翠苑一区第1网格", "label": "翠苑一区第1网格 33010600100101",
               "total": 60, "acked": 50}], "status": "已发送",
    "title": "本周网格工作例会", "starts_at": NOW, "soon": True, "attend": True,
    "yes": ["王丽华"], "no": [], "unanswered": ["陈建国"], "invited": 2, "home": "翠苑一区3幢",
    "current": "翠苑一区3幢", "given": "999", "place_short": "3号楼",
    "commands": [{"name": "tasks", "label": "我的待办"}, {"name": "patrol", "label": "巡查"}],
    # the console's sign-in link (a real one's length)
    "url": "https://gridbot.example.org/console/login?t=" + "x" * 43, "minutes": 10,
    "per_hour": 5, "open": True,
    # phone-in and households (issue 17)
    "sms": True, "inner": "case_closed", "caller": "13900000101", "building": "翠苑一区3幢",
    "door": "2-301", "head": "王秀英", "next_due": NOW, "follow_up": True, "people": 2,
    "tags": ["独居老人"], "last_visit": NOW, "next_visit": NOW, "visit_count": 3,
    "case_numbers": ["261123-001"], "contact_channels": ["sms"], "reported": ["261123-001"],
    "followed": 1, "household": {"building": "翠苑一区3幢", "door": "2-301",
                                 "head_name": "王秀英", "people": 2, "tags": ["独居老人"],
                                 "visits": 3, "reads": 5},
    "households": [{"label": "翠苑一区3幢 1-101 周** 独居老人", "overdue_days": 2,
                    "due_at": NOW}],
}


renderer = Renderer(ZoneInfo("Asia/Shanghai"))


renderer.globals["category_name"] = lambda code, locale: f"<{code}>"


STREET = "33010600100000"


COMMUNITY_1 = "33010600100100"


GRID_1 = "33010600100101"


async def add_staff(bot: Gridbot, name: str, role: str, scope: str, address: str) -> int:
    """A staff member who writes from the Telegram simulator."""
    now = bot.clock.now()
    async with bot.db.transaction() as conn:
        person = await people_store.add_person(conn, name, now)
        await people_store.add_contact(conn, person, "sim-telegram", address, now)
        await people_store.grant_role(conn, person, role, scope, now)
    return person


def scheduler(bot: Gridbot) -> Scheduler:
    """The bot's scheduler (built by bootstrap, not started: tests tick it)."""
    assert bot.scheduler is not None
    return bot.scheduler


async def received(driver: ChatDriver) -> list[str]:
    """Everything queued for this person since the last look (and move past it)."""
    rows = await outbox_store.for_address(driver.bot.db.conn, driver.channel, driver.address,
                                          driver.after)
    if rows:
        driver.after = rows[-1].id
    driver.last = [Said(r.body, r.payload.get("buttons", []), r.payload) for r in rows]
    return [r.body for r in rows]


PNG = png("a 1 x 1 photo", (1, 1))  # real bytes: photos are read with Pillow on arrival


def gridbot(tmp_path: Path, *args: str, stdin: str = "",
            **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (`python -m bot ARGS`) in a subprocess on a database in tmp_path."""
    environ = {**os.environ, "GRIDBOT_DATABASE": str(tmp_path / "g.db"),
               "GRIDBOT_MEDIA_DIR": str(tmp_path / "media"), **env}
    return subprocess.run([sys.executable, "-m", "bot", *args], input=stdin, text=True,
                          capture_output=True, cwd=tmp_path, env=environ, timeout=60)


def undocumented(fields: Iterable[str]) -> list[str]:
    """The JSON fields that docs/cli.md does not list (as `field`)."""
    documented = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(
        encoding="utf-8")
    return [field for field in fields if f"`{field}`" not in documented]

"""Every template renders in both languages; user text stays data; SMS shows numbers."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.domain.channels import SIM_SMS, SIM_TELEGRAM, TELEGRAM
from bot.domain.messages import Choice, Reply
from bot.domain.workflow import Role
from bot.services.render import Renderer, mask_phone
from handlers.chief import staff_menu

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
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
    "grids": [{"area": "翠苑一区第1网格", "total": 60, "acked": 50}], "status": "已发送",
    "title": "本周网格工作例会", "starts_at": NOW, "soon": True, "attend": True,
    "yes": ["王丽华"], "no": [], "unanswered": ["陈建国"], "invited": 2, "home": "翠苑一区3幢",
    "current": "翠苑一区3幢",
}
renderer = Renderer(ZoneInfo("Asia/Shanghai"))
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
renderer.globals["category_name"] = lambda code, locale: f"<{code}>"


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_every_template_renders_with_realistic_values(locale: str) -> None:
    names = renderer.template_names(locale)
    assert len(names) > 30
    for name in names:
        for spec in (SIM_TELEGRAM, SIM_SMS):
            text = renderer.render_text(locale, name, SAMPLE, spec)
            assert text.strip(), name


def test_a_line_ending_in_a_block_tag_keeps_its_line_break() -> None:
    # trim_blocks drops the newline after every block tag: right for a line that is only
    # a tag, wrong after text ("📢 Notice{% endif %}" ran into the next line). Such a line
    # ends "+%}" (keep the newline), or is followed by an empty line that takes its place.
    tag = re.compile(r"\{%.*?%\}")
    joined = []
    for path in sorted(TEMPLATES.rglob("*.j2")):
        lines = path.read_text().splitlines()
        joined += [f"{path.relative_to(TEMPLATES)}:{i + 1}" for i, line in enumerate(lines[:-1])
                   if line.rstrip().endswith("%}") and not line.rstrip().endswith("+%}")
                   and tag.sub("", line).strip() and lines[i + 1].strip()]
    assert joined == []


def test_lists_in_notices_and_digests_are_one_item_a_line() -> None:
    context = {**SAMPLE, "cases": SAMPLE["cases"] * 2, "overdue": 2, "more": 3}
    for locale in ("zh_CN", "en"):
        digest = renderer.render_text(locale, "digest_morning", context, SIM_TELEGRAM)
        assert len([line for line in digest.splitlines() if "261123-001" in line]) == 2
        preview = renderer.render_text(locale, "notice_preview", context, SIM_TELEGRAM)
        assert [line.strip()[:4] for line in preview.splitlines() if "·" in line] == [
            "· 短信", "· Te"]


def test_a_notice_preview_sets_the_notice_text_apart_by_a_blank_line() -> None:
    for locale in ("zh_CN", "en"):
        for photo in (True, False):
            preview = renderer.render_text(
                locale, "notice_preview", {**SAMPLE, "text": "停水通知", "has_photo": photo},
                SIM_TELEGRAM)
            assert preview.endswith("\n\n停水通知"), preview
            told = "20 人用短信，只收到文字" in preview or "20 of them on SMS" in preview
            assert told == photo




def test_both_locales_have_the_same_templates_and_labels() -> None:
    assert renderer.template_names("zh_CN") == renderer.template_names("en")
    for key in ("btn.confirm", "state.closed", "event.check_pass", "reply_n"):
        assert renderer.label("en", key, n=1, label="x")
        assert renderer.label("zh_CN", key, n=1, label="x")


def test_every_command_in_a_staff_menu_is_described_in_both_languages() -> None:
    every = staff_menu([role.value for role in Role])
    assert {"tasks", "notice", "meeting", "patrol"} <= set(every)
    for locale in ("zh_CN", "en"):
        assert all(renderer.label(locale, f"command.{name}") for name in every)


def test_user_text_is_data_not_template_source() -> None:
    hostile = "{{ 7*7 }} {% raw %}<b>"
    text = renderer.render_text("zh_CN", "report_followed", {"number": hostile}, SIM_TELEGRAM)
    assert hostile in text and "49" not in text


def test_html_channels_escape_what_people_typed() -> None:
    text = renderer.render_text("zh_CN", "report_followed", {"number": "<script>"}, TELEGRAM)
    assert "&lt;script&gt;" in text and "<script>" not in text


def test_choices_are_buttons_on_telegram_and_numbered_lines_on_sms() -> None:
    reply = Reply("report_category", {}, (Choice("a", "甲"), Choice("b", "乙")))
    text, payload = renderer.render(reply, "zh_CN", SIM_TELEGRAM, 7)
    assert payload["buttons"] == [["甲", "7:0"], ["乙", "7:1"]]
    sms_text, sms_payload = renderer.render(reply, "zh_CN", SIM_SMS, 7)
    assert "回复 1：甲" in sms_text and "回复 2：乙" in sms_text
    assert "buttons" not in sms_payload


def test_times_are_shown_in_local_time() -> None:
    assert renderer.localtime(NOW) == "11-23 10:00"


def test_phone_numbers_are_masked() -> None:
    assert mask_phone("+8613800001001") == "138****1001"
    assert mask_phone("13800001001") == "138****1001"
    assert mask_phone("") == ""

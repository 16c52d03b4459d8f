"""Every template renders in both languages; user text stays data; SMS shows numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.domain.channels import SIM_SMS, SIM_TELEGRAM, TELEGRAM
from bot.domain.messages import Choice, Reply
from bot.domain.workflow import Role
from bot.services.render import mask_phone
from handlers.chief import staff_menu
from tests.helpers import NOW, SAMPLE, renderer

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


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

"""English counts agree with their number, in the CLI's wording and in the en templates."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from bot.domain.channels import SMS, TELEGRAM, ChannelSpec
from bot.domain.wording import counted, plural
from bot.services.render import TEMPLATES, Renderer


@pytest.mark.parametrize("count, noun, expected", [
    (0, "recipient", "0 recipients"), (1, "recipient", "1 recipient"),
    (2, "recipient", "2 recipients"), (1, "person", "1 person"), (5, "person", "5 people"),
    (1, "area", "1 area"), (11, "area", "11 areas"),
])
def test_counted_uses_the_singular_for_exactly_one(count: int, noun: str,
                                                   expected: str) -> None:
    assert counted(count, noun) == expected


def test_a_verb_agrees_too() -> None:
    assert (plural(1, "gets"), plural(3, "gets")) == ("gets", "get")


def test_no_english_template_hedges_with_an_s_in_brackets() -> None:
    hedged = [str(p.relative_to(TEMPLATES)) for p in (TEMPLATES / "en").rglob("*.j2")
              if "(s)" in p.read_text(encoding="utf-8")]
    assert hedged == []


@pytest.mark.parametrize("name, spec, one, two", [
    ("digest_morning", TELEGRAM, "1 open case for you", "2 open cases for you"),
    ("digest_morning", SMS, "1 open case:", "2 open cases:"),
    ("digest_evening", TELEGRAM, "1 case due today", "2 cases due today"),
], ids=["morning", "morning-sms", "evening"])
def test_digests_say_one_case_and_two_cases(name: str, spec: ChannelSpec, one: str,
                                            two: str) -> None:
    renderer = Renderer(ZoneInfo("Asia/Shanghai"))
    renderer.globals["category_name"] = lambda code, locale: code
    case = {"number": "261123-001", "category": "sanitation", "overdue": False,
            "deadline": None}

    def text(total: int) -> str:
        return renderer.render_text("en", name, {"total": total, "overdue": 0, "more": 0,
                                                 "cases": [case] * total, "locale": "en"},
                                    spec)

    assert one in text(1)
    assert two in text(2)

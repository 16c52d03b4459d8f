"""Every word a template tells people to send works: none of them starts a report.

The keywords are read from the templates themselves (a slash command, a quoted word after
回复/发送/发, an upper-case word after Text/Reply/Send, the "WORD：what it does" lines of the
SMS help), so a template that advertises a new word is checked without touching this file.
Each keyword is sent as the whole message by a new person, on the channel the template is
written for (SMS variants on the SMS simulator, the others on the Telegram one), through
the real engine: alone, and followed by a case number when a template shows it taking one.
"""

from __future__ import annotations

import re
from itertools import count
from pathlib import Path

import pytest

from bot.bootstrap import Gridbot
from store import conversations as conversation_store
from store import notices as notice_store
from tests.chat import ChatDriver

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SLASH = re.compile(r"(?<![\w/.:])/([a-z]+)\b")
QUOTED = re.compile(r"(?:回复|发送|发|输入|[Tt]ext|[Rr]eply|[Ss]end)\s*[“\"]"
                    r"([^”\"{}]+?)(?:\s*\{\{[^}]*\}\})?[”\"]")
CAPS = re.compile(r"(?:[Tt]ext|[Rr]eply|[Ss]end)\s+([A-Z]{2,})\b")
# "查询 编号：查进度", "STOP: no more texts"; not a heading listing commands ("工作人员：…").
HELP_LINE = re.compile(r"(?:^|[；;]\s*)([^\s：:；;/]{1,6}|[A-Z]{2,})(?: 编号| number)?[：:]"
                       r"(?!\s*\{%)", re.MULTILINE)
# Commands whose whole point is to start a report.
STARTS_A_REPORT = {"/report", "/patrol"}
# Answers to one question, which the template asking it means (tested in that dialogue).
IN_DIALOGUE = {"完成", "DONE"}
# What a template writes after a keyword that takes something: "查询 {{ number }}", "加入
# 7KQ2M9XA", "/case 编号", "STATUS number", "JOIN and the invitation code".
ARGUMENT = r"[”\"]?(?:和|\s)*(?:\{\{|[0-9A-Z]{6}|编号|邀请码|number|NUMBER|N\b|and the)"
_people = count(1)


def _texts() -> list[tuple[Path, str]]:
    return [(path, path.read_text(encoding="utf-8")) for path in TEMPLATES.glob("*/**/*.j2")]


def advertised() -> dict[str, set[str]]:
    """channel → the keywords the templates of that channel tell people to send."""
    found: dict[str, set[str]] = {"sim-sms": set(), "sim-telegram": set()}
    for path, text in _texts():
        words = {f"/{w}" for w in SLASH.findall(text)}
        words |= set(QUOTED.findall(text)) | set(CAPS.findall(text))
        sms = path.parent.name == "sms"
        if sms and path.stem.startswith("help"):
            words |= set(HELP_LINE.findall(text))
        found["sim-sms" if sms else "sim-telegram"] |= {w.strip() for w in words}
    return found


def takes_argument(word: str) -> bool:
    """Whether some template shows the keyword followed by what it takes."""
    pattern = re.compile(re.escape(word) + ARGUMENT)
    return any(pattern.search(text) for _, text in _texts())


KEYWORDS = advertised()


def test_the_templates_advertise_the_keywords_people_meet() -> None:
    # The reading above must see what the templates say, or the test below checks nothing.
    assert {"免打扰", "退订", "订阅", "查询", "帮助", "我的", "取消", "STOP", "START",
            "STATUS", "HELP"} <= KEYWORDS["sim-sms"]
    assert {"/help", "/mute", "/unmute", "/case", "/tasks", "/home"} <= KEYWORDS["sim-telegram"]


CASES = sorted((channel, word) for channel, words in KEYWORDS.items()
               for word in words - STARTS_A_REPORT - IN_DIALOGUE)


@pytest.mark.parametrize("channel,word", CASES)
async def test_every_advertised_keyword_works_without_starting_a_report(
        gridbot: Gridbot, channel: str, word: str) -> None:
    messages = [word, f"{word} 261123-001"] if takes_argument(word) else [word]
    for message in messages:
        chat = ChatDriver(gridbot, channel, f"web:keyword-{next(_people)}")
        await chat.text(message)
        known = await conversation_store.load_by_address(gridbot.db.conn, channel,
                                                         chat.address)
        flow = known[1].flow if known else None
        assert flow != "report", f"{message!r} on {channel} started a report: {chat.said!r}"
        assert "不认识" not in chat.said, f"{message!r} on {channel}: {chat.said!r}"


async def test_mute_by_its_chinese_keyword_and_back(gridbot: Gridbot,
                                                   sms_resident: ChatDriver) -> None:
    await sms_resident.text("/home 翠苑一区3幢")
    assert "免打扰" in sms_resident.said
    await sms_resident.text("免打扰")
    assert "不再发通知" in sms_resident.said
    person = await _person(gridbot, sms_resident)
    assert await _muted(gridbot, person)
    assert "恢复通知" in sms_resident.said  # the way back, which works too
    await sms_resident.text("恢复通知")
    assert "已恢复接收通知" in sms_resident.said
    assert not await _muted(gridbot, person)


async def test_done_words_answer_the_question_that_offers_them(
        gridbot: Gridbot, resident: ChatDriver) -> None:
    from tests.test_report_flow import report_by_menu

    chief = ChatDriver(gridbot, "sim-sms", "web:chief-sms")
    await chief.text("/help")
    async with gridbot.db.transaction() as conn:
        await conn.execute(
            "UPDATE contacts SET person_id = (SELECT person_id FROM contacts"
            " WHERE address = 'web:chief-0101') WHERE address = 'web:chief-sms'")
    await report_by_menu(resident)
    await chief.text("/tasks")
    await chief.text("1")
    await chief.press("签收")
    await chief.press("已处置")
    assert "完成" in chief.said
    await chief.text("完成")
    assert "已处置" in chief.said
    known = await conversation_store.load_by_address(gridbot.db.conn, "sim-sms",
                                                     chief.address)
    assert known is not None and known[1].flow != "report"


async def _person(bot: Gridbot, chat: ChatDriver) -> int:
    known = await conversation_store.load_by_address(bot.db.conn, chat.channel, chat.address)
    assert known is not None
    return known[0].person_id


async def _muted(bot: Gridbot, person_id: int) -> bool:
    return await notice_store.is_muted(bot.db.conn, person_id)

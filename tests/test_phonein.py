"""Phone-in (电话代报): staff file a case for a caller, who hears back by SMS or through
the staff member, and the loop closes with the caller's answer."""

from __future__ import annotations

from bot.bootstrap import Gridbot
from bot.services import casework
from bot.services import stats as stats_service
from store import cases as case_store
from store import phonein as phonein_store
from tests.chat import ChatDriver
from tests.helpers import CASE_NUMBER, add_staff
from tests.sms_harness import SmsHarness

CALLER = "+8613900000101"  # 周桂芳, a demo household in 翠苑一区3幢 (grid 0101), 独居老人
STRANGER = "+8613700001234"  # a number nobody has on file
STREET = "33010600100000"


async def phone_in(staff: ChatDriver, typed_number: str, sms: bool,
                   household: str | None = None) -> str:
    """Take the call: the number, SMS or not, the household, then the report; the number."""
    await staff.text("/phonein")
    assert "来电居民的手机号码" in staff.said
    await staff.text(typed_number)
    assert "短信" in staff.said
    await staff.press("发短信告知来电人" if sms else "不发短信")
    if household is not None:
        assert "关联到本事件吗" in staff.said
        await staff.press(household)
    assert "替来电人" in staff.said and "市政设施" in str(staff.last[-1].buttons)  # the report
    await staff.press("市政设施")
    await staff.text("楼道灯坏了，晚上看不见路")
    await staff.text("翠苑一区3幢")
    await staff.press("没有照片")
    await staff.press("确认提交")
    found = CASE_NUMBER.search(staff.said)
    assert found and "电话代报" in staff.said, staff.said
    return found.group(0)


async def close_on_site(chief: ChatDriver, number: str) -> None:
    """The grid chief signs, resolves on site with a note, and checks and closes."""
    await chief.text(f"/case {number}")
    await chief.press("签收")
    await chief.press("已处置")
    await chief.text("已更换灯泡")
    await chief.press("核查通过")


async def test_a_phoned_in_case_goes_round_the_loop_with_the_caller_on_sms(
        sms: SmsHarness) -> None:
    chief = ChatDriver(sms.bot, "sim-telegram", "web:chief-0101")  # 王丽华, grid 0101
    number = await phone_in(chief, "139 0000 0101", sms=True, household="1-101")
    await sms.drain()
    filed = sms.replies(CALLER)
    assert f"编号{number}" in filed and "电话反映" in filed  # the case number by SMS

    stored = await case_store.get_by_number(sms.bot.db.conn, number)
    assert stored is not None and stored.case.id is not None
    assert stored.details.source_channel == "phone"
    record = await phonein_store.get(sms.bot.db.conn, stored.case.id)
    chief_id = (await sms.bot.db.fetchall(
        "SELECT person_id FROM contacts WHERE address = 'web:chief-0101'"))[0][0]
    assert record is not None and record.sms and record.filed_by == chief_id
    # the caller is a person with the number as an SMS contact, and the case's reporter
    rows = await sms.bot.db.fetchall("SELECT person_id FROM contacts WHERE channel = 'sms'"
                                     " AND address = ?", [CALLER])
    assert [r[0] for r in rows] == [stored.case.reporter_id]
    notes = [e.note for e in await case_store.events(sms.bot.db.conn, stored.case.id)
             if e.event == "comment"]
    assert notes and "电话代报" in notes[0] and "0101" not in notes[0]  # no phone in it
    linked = await sms.bot.db.fetchall("SELECT h.room FROM case_households c JOIN households"
                                       " h ON h.id = c.household_id WHERE c.case_id = ?",
                                       [stored.case.id])
    assert [r[0] for r in linked] == ["101"]

    await close_on_site(chief, number)
    await sms.drain()
    updates = sms.replies(CALLER)
    assert "已签收" in updates and "已办结" in updates and "问题解决了吗" in updates
    answer = await sms.text("1", sender=CALLER)  # 1: fixed
    assert "评价" in answer or "★" in answer, answer
    thanks = await sms.text("1", sender=CALLER)  # the first star choice: five
    assert "5" in thanks, thanks
    stored = await case_store.get_by_number(sms.bot.db.conn, number)
    assert stored is not None and stored.case.state.value == "evaluated"
    assert stored.case.rating == 5
    # the chief who filed it heard nothing on the caller's behalf
    assert not [s for s in await chief.inbox() if "请电话转告" in s.text]


async def test_without_sms_the_staff_member_relays_and_records_the_callers_answer(
        gridbot: Gridbot) -> None:
    await add_staff(gridbot, "赵调度", "dispatcher", STREET, "web:dispatcher")
    dispatcher = ChatDriver(gridbot, "sim-telegram", "web:dispatcher")
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    number = await phone_in(dispatcher, "13700001234", sms=False)
    assert "电话转告" in dispatcher.said
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.reporter_id is not None
    caller_contacts = await gridbot.db.fetchall(
        "SELECT channel FROM contacts WHERE person_id = ?", [stored.case.reporter_id])
    assert caller_contacts == []  # no SMS contact: nothing is ever texted to the caller
    phone = await gridbot.db.fetchall("SELECT phone FROM people WHERE id = ?",
                                      [stored.case.reporter_id])
    assert phone[0][0] == STRANGER
    view = await casework.case_view(gridbot.db.conn, gridbot.reference, number,
                                    gridbot.clock.now())
    assert view is not None and view.phoned_in_by == "赵调度" and view.caller_sms is False
    assert view.source_channel == "phone" and "1234" in view.reporter

    await close_on_site(chief, number)
    relayed = [s for s in await dispatcher.inbox() if "请电话转告来电人" in s.text]
    assert any("已签收" in s.text for s in relayed)
    closing = next(s for s in relayed if "已办结" in s.text)
    assert STRANGER in closing.text  # the number in full: the dispatcher calls it back
    dispatcher.last = [closing]
    await dispatcher.press("已解决")  # the caller said so on the phone
    four = next(data for label, data in dispatcher.last[-1].buttons if label == "★★★★")
    await dispatcher.option(four)
    assert "4分" in dispatcher.said
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.id is not None
    assert stored.case.state.value == "evaluated" and stored.case.rating == 4
    record = await phonein_store.get(gridbot.db.conn, stored.case.id)
    assert record is not None and not record.sms and record.answered_by is not None
    # the rating counts as the caller's own (the reporter), recorded by the dispatcher
    rated = [e for e in await case_store.events(gridbot.db.conn, stored.case.id)
             if e.event == "rate"]
    assert rated[0].actor_id == stored.case.reporter_id
    start, end = stats_service.month_of(gridbot.clock.now(), gridbot.reference.tz)
    found = await stats_service.month_report(gridbot.db.conn, start, end)
    assert found.report.by_source["phone"] == 1 and found.report.by_source["chat"] == 0


async def test_a_known_number_is_the_same_person_and_english_works(gridbot: Gridbot) -> None:
    resident = ChatDriver(gridbot, "sim-sms", "web:known")
    await resident.text("/lang en")
    async with gridbot.db.transaction() as conn:  # as a shared Telegram contact leaves it
        await conn.execute("UPDATE people SET phone = ? WHERE id = (SELECT person_id FROM"
                           " contacts WHERE address = 'web:known')", [STRANGER])
    rows = await gridbot.db.fetchall("SELECT person_id FROM contacts WHERE address ="
                                     " 'web:known'")
    known = rows[0][0]
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0102")
    await chief.text("/lang en")
    await chief.text("/phonein 13700001234")
    assert "Text them" in chief.said
    await chief.press("Text the caller")
    assert "Filing for caller" in chief.said
    await chief.press("Public facilities")
    await chief.text("Stairway light out")
    await chief.text("翠苑一区7幢")
    await chief.press("No photos")
    await chief.press("Submit")
    assert "Recorded as a phone-in" in chief.said
    found = CASE_NUMBER.search(chief.said)
    assert found
    stored = await case_store.get_by_number(gridbot.db.conn, found.group(0))
    assert stored is not None and stored.case.reporter_id == known
    await resident.inbox()
    assert "phoned-in report" in resident.said  # in the caller's own language


async def test_residents_and_departments_cannot_phone_in(gridbot: Gridbot,
                                                         resident: ChatDriver) -> None:
    await resident.text("/phonein 13700001234")
    assert "只对网格员和工作人员开放" in resident.said
    await add_staff(gridbot, "环卫", "department", "sanitation", "web:dept")
    department = ChatDriver(gridbot, "sim-telegram", "web:dept")
    await department.text("代报")
    assert "只对网格员和工作人员开放" in department.said


async def test_a_number_that_is_not_one_is_asked_again(gridbot: Gridbot) -> None:
    chief = ChatDriver(gridbot, "sim-telegram", "web:chief-0101")
    await chief.text("/phonein")
    await chief.text("12345")
    assert "不是有效的手机号码" in chief.said
    await chief.text("13700001234")
    assert "短信" in chief.said


async def test_a_caller_without_sms_who_texts_in_later_is_the_same_person(
        sms: SmsHarness) -> None:
    """Declining SMS on the phone means nothing is texted unasked; a text of their own
    later is their choice, and it finds them with the case they phoned in."""
    chief = ChatDriver(sms.bot, "sim-telegram", "web:chief-0101")
    number = await phone_in(chief, "137 0000 1234", sms=False)
    await sms.drain()
    assert sms.replies(STRANGER) == ""  # nothing texted to someone who said no
    stored = await case_store.get_by_number(sms.bot.db.conn, number)
    assert stored is not None

    listed = await sms.text("/mycases", sender=STRANGER)
    assert number in listed, listed
    rows = await sms.bot.db.fetchall("SELECT person_id FROM contacts WHERE channel = 'sms'"
                                     " AND address = ?", [STRANGER])
    assert [r[0] for r in rows] == [stored.case.reporter_id]

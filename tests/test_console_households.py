"""The console's parts of issue 17: phone-in cases filed from a form (the caller on SMS,
or relayed to the filer who records the answer), the household archive (per grid, a
household's page with the phone masked as in the bot, reads logged, visits, the due list,
the street deletes, a case linked), who may not read it (another grid's chief, a
department: 404), CSRF, and the list filtered to phoned-in cases."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.bootstrap import Gridbot
from bot.domain.workflow import EventKind, State
from bot.services import actions
from store import cases as case_store
from store import households as household_store
from store import phonein as phonein_store
from tests.browser_harness import shots_folder
from tests.console_harness import Console, file_case
from tests.helpers import COMMUNITY_1, GRID_1, STREET
from tests.sms_harness import SmsHarness

GRID_2 = "33010600100102"
CALLER = "+8613900000101"  # 周桂芳, demo household 翠苑一区3幢 1-101 in grid 0101, 独居老人
STRANGER = "+8613700001234"
CASE = re.compile(r"\d{6}-\d{3,4}")


async def household_id(bot: Gridbot, phone: str = CALLER) -> int:
    found = await household_store.with_phone(bot.db.conn, [phone])
    assert found, phone
    return found[0].id


async def reads_of(bot: Gridbot, hid: int) -> list[tuple[int, str]]:
    return [(r.person_id, r.what) for r in await household_store.reads(bot.db.conn, hid)]


def building_of(bot: Gridbot, name: str) -> int:
    return next(b.id for b in bot.reference.district.buildings.values() if b.name == name)


def phonein_form(bot: Gridbot, phone: str, sms: bool, **extra: str) -> dict[str, str]:
    return {"phone": phone, "sms": "yes" if sms else "no", "category": "utilities",
            "description": "楼道灯坏了，晚上看不见路",
            "place": f"b:{building_of(bot, '翠苑一区3幢')}", **extra}


async def filed_number(response: object) -> str:
    location = response.headers["location"]
    found = CASE.search(location)
    assert found, location
    return found.group(0)


# --- households: who reads, what they see, what is logged ------------------------------

async def test_a_chief_reads_a_household_of_their_grid_with_the_phone_masked_and_the_read_logged(
        gridbot: Gridbot) -> None:
    console = Console(gridbot)
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    hid = await household_id(gridbot)
    async with console.client() as client:
        await console.sign_in(chief, client)
        listed = await client.get(f"/console/households?grid={GRID_1}")
        assert listed.status_code == 200
        assert f'data-household="{hid}"' in listed.text
        assert "周**" in listed.text or "周*" in listed.text  # names masked in a list
        page = await client.get(f"/console/households/{hid}")
    assert page.status_code == 200
    assert "周桂芳" in page.text and "独居老人" in page.text
    assert "139****0101" in page.text and "13900000101" not in page.text  # masked as in the bot
    assert (chief, "list") in await reads_of(gridbot, hid)
    assert (chief, "console") in await reads_of(gridbot, hid)


async def test_the_street_sees_the_phone_in_full(gridbot: Gridbot) -> None:
    console = Console(gridbot)
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    hid = await household_id(gridbot)
    async with console.client() as client:
        await console.sign_in(dispatcher, client)
        page = await client.get(f"/console/households/{hid}")
    assert page.status_code == 200 and "+8613900000101" in page.text


async def test_another_grids_chief_gets_404_and_nothing_is_logged(gridbot: Gridbot) -> None:
    console = Console(gridbot)
    other = await console.staff("二网格长", "grid_chief", GRID_2)
    hid = await household_id(gridbot)  # in grid 0101
    async with console.client() as client:
        await console.sign_in(other, client)
        page = await client.get(f"/console/households/{hid}")
        listing = await client.get(f"/console/households?grid={GRID_1}")
        visit = await client.post_form(f"/console/households/{hid}/visit", {"raised": "x"})
    assert page.status_code == 404 and "周桂芳" not in page.text
    assert listing.status_code == 404 and visit.status_code == 404
    assert await reads_of(gridbot, hid) == []


@pytest.mark.parametrize("role,scope", [("department", "sanitation"),
                                        ("info_officer", GRID_1)])
async def test_departments_and_officers_get_404_on_every_household_page(
        gridbot: Gridbot, role: str, scope: str) -> None:
    console = Console(gridbot)
    person = await console.staff("不该看的人", role, scope)
    hid = await household_id(gridbot)
    async with console.client() as client:
        await console.sign_in(person, client)
        for url in ("/console/households", f"/console/households?grid={GRID_1}",
                    f"/console/households/{hid}", "/console/households/due"):
            answer = await client.get(url)
            assert answer.status_code == 404, url
            assert "周" not in answer.text
    assert await reads_of(gridbot, hid) == []


async def test_a_chief_logs_a_visit_and_the_household_leaves_the_due_list(
        gridbot: Gridbot) -> None:
    console = Console(gridbot)
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    hid = await household_id(gridbot)
    async with console.client() as client:
        await console.sign_in(chief, client)
        due = await client.get("/console/households/due")
        assert f'data-household="{hid}"' in due.text  # 独居老人, never visited
        assert (chief, "due") in await reads_of(gridbot, hid)
        refused = await client.post(f"/console/households/{hid}/visit",
                                    data={"raised": "身体还好"})  # no CSRF token
        assert refused.status_code == 403
        logged = await client.post_form(f"/console/households/{hid}/visit",
                                        {"raised": "身体还好，要求修楼道灯",
                                         "follow_up": "报修楼道灯"})
        assert logged.status_code == 303
        page = await client.get(logged.headers["location"])
        assert "身体还好，要求修楼道灯" in page.text and "报修楼道灯" in page.text
        assert "一网格长" in page.text
        due = await client.get("/console/households/due")
    assert f'data-household="{hid}"' not in due.text
    visits = await household_store.visits_of(gridbot.db.conn, hid)
    assert len(visits) == 1 and visits[0].person_id == chief


async def test_only_the_street_deletes_a_household_with_an_audit_line_without_personal_data(
        gridbot: Gridbot) -> None:
    console = Console(gridbot)
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    hid = await household_id(gridbot)
    async with console.client() as client:
        await console.sign_in(chief, client)
        page = await client.get(f"/console/households/{hid}")
        assert "delete-form" not in page.text
        await client.post_form(f"/console/households/{hid}/delete")
    assert await household_store.get(gridbot.db.conn, hid) is not None  # a chief cannot
    async with console.client() as client:
        await console.sign_in(dispatcher, client)
        assert (await client.post(f"/console/households/{hid}/delete")).status_code == 403
        assert await household_store.get(gridbot.db.conn, hid) is not None  # no CSRF: kept
        done = await client.post_form(f"/console/households/{hid}/delete")
        assert done.status_code == 303
        gone = await client.get(f"/console/households/{hid}")
    assert gone.status_code == 404
    assert await household_store.get(gridbot.db.conn, hid) is None
    audit = [tuple(row) for row in await household_store.audit(gridbot.db.conn)]
    assert audit and audit[-1][:5] == (hid, GRID_1, "delete", dispatcher, "dispatcher")
    assert "周桂芳" not in str(audit) and "13900000101" not in str(audit)


async def test_a_case_is_linked_to_a_household_from_its_page(gridbot: Gridbot) -> None:
    console = Console(gridbot)
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    number = await file_case(gridbot, GRID_1, "门口有垃圾")
    hid = await household_id(gridbot)
    async with console.client() as client:
        await console.sign_in(chief, client)
        part = await client.get(f"/console/cases/{number}/phonein")
        assert part.status_code == 200 and f'value="{hid}"' in part.text
        linked = await client.post_form(f"/console/cases/{number}/household",
                                        {"household_id": str(hid)})
        assert linked.status_code == 303 and "household=linked" in linked.headers["location"]
        part = await client.get(f"/console/cases/{number}/phonein")
        assert f'href="/console/households/{hid}"' in part.text
        page = await client.get(f"/console/households/{hid}")
    assert number in page.text


# --- phone-in ----------------------------------------------------------------------

async def test_a_phone_in_with_sms_texts_the_caller_the_case_number(sms: SmsHarness) -> None:
    bot = sms.bot
    console = Console(bot)
    worker = await console.staff("社区小李", "community_staff", COMMUNITY_1)
    hid = await household_id(bot)
    async with console.client() as client:
        await console.sign_in(worker, client)
        form = await client.get("/console/phonein?phone=139 0000 0101")
        assert form.status_code == 200 and f'value="{hid}"' in form.text  # offered to link
        assert (worker, "phonein") in await reads_of(bot, hid)
        assert (await client.post("/console/phonein",
                                  data=phonein_form(bot, "13900000101", True))).status_code == 403
        filed = await client.post_form("/console/phonein", phonein_form(
            bot, "139 0000 0101", True, household=str(hid)))
        assert filed.status_code == 303
        number = await filed_number(filed)
        shown = await client.get(filed.headers["location"])
        assert number in shown.text
        part = await client.get(f"/console/cases/{number}/phonein")
        assert "社区小李" in part.text and 'id="caller-hears"' in part.text
        assert "短信" in part.text and "answer-form" not in part.text
    await sms.drain()
    assert f"编号{number}" in sms.replies(CALLER)
    stored = await case_store.get_by_number(bot.db.conn, number)
    assert stored is not None and stored.case.id is not None
    assert stored.details.source_channel == "phone"
    record = await phonein_store.get(bot.db.conn, stored.case.id)
    assert record is not None and record.filed_by == worker and record.sms
    assert await household_store.household_of_case(bot.db.conn, stored.case.id) == hid


async def test_a_phone_in_without_sms_relays_to_the_filer_who_records_the_answer(
        gridbot: Gridbot) -> None:
    console = Console(gridbot)
    chief = await console.staff("一网格长", "grid_chief", GRID_1, "web:chief-console")
    other = await console.staff("另一位", "community_staff", COMMUNITY_1)
    async with console.client() as client:
        await console.sign_in(chief, client)
        filed = await client.post_form("/console/phonein", phonein_form(gridbot, STRANGER,
                                                                        False))
        number = await filed_number(filed)
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.reporter_id is not None
    now = gridbot.clock.now()
    told = []
    for kind, note in ((EventKind.SIGN, ""), (EventKind.REPORT_DONE, "已修好"),
                       (EventKind.CHECK_PASS, "")):
        async with gridbot.db.transaction() as conn:
            acted = await actions.act(conn, gridbot.reference, chief, number, kind,
                                      actions.Given(note=note), now)
            told += acted.notices
    # The caller's "fixed?" question goes to the filer, to be passed on by phone.
    relayed = [n for n in told if n.reply.template == "phonein_relay"]
    assert relayed and all(n.person_id == chief for n in relayed)
    assert not [n for n in told if n.person_id == stored.case.reporter_id]
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.state == State.CLOSED
    async with console.client() as client:  # someone else cannot answer for the caller
        await console.sign_in(other, client)
        part = await client.get(f"/console/cases/{number}/phonein")
        assert "answer-form" not in part.text
        refused = await client.post_form(f"/console/cases/{number}/answer", {"answer": "5"})
        assert "refused" in refused.headers["location"]
    async with console.client() as client:
        await console.sign_in(chief, client)
        part = await client.get(f"/console/cases/{number}/phonein")
        assert "answer-form" in part.text and "电话转告" in part.text
        assert (await client.post(f"/console/cases/{number}/answer",
                                  data={"answer": "4"})).status_code == 403
        done = await client.post_form(f"/console/cases/{number}/answer", {"answer": "4"})
        assert "done=rate" in done.headers["location"]
    stored = await case_store.get_by_number(gridbot.db.conn, number)
    assert stored is not None and stored.case.id is not None
    assert stored.case.state == State.EVALUATED and stored.case.rating == 4
    record = await phonein_store.get(gridbot.db.conn, stored.case.id)
    assert record is not None and record.answered_by == chief and not record.sms


async def test_a_department_cannot_phone_in_and_bad_forms_are_refused(
        gridbot: Gridbot) -> None:
    console = Console(gridbot)
    department = await console.staff("环卫", "department", "sanitation")
    chief = await console.staff("一网格长", "grid_chief", GRID_1)
    async with console.client() as client:
        await console.sign_in(department, client)
        assert (await client.get("/console/phonein")).status_code == 404
        refused = await client.post_form("/console/phonein", phonein_form(gridbot, STRANGER,
                                                                          True))
        assert refused.status_code == 404
    async with console.client() as client:
        await console.sign_in(chief, client)
        bad_phone = await client.post_form("/console/phonein",
                                           phonein_form(gridbot, "12345", True))
        assert bad_phone.status_code == 400
        foreign = next(b.id for b in gridbot.reference.district.buildings.values()
                       if b.grid_code == GRID_2)
        elsewhere = await client.post_form("/console/phonein", phonein_form(
            gridbot, STRANGER, True, place=f"b:{foreign}"))
        assert elsewhere.status_code == 400
        typed = await client.post_form("/console/phonein", phonein_form(
            gridbot, STRANGER, True, description="<script>alert(1)</script>"))
        assert typed.status_code == 303
        page = await client.get(f"/console/cases/{await filed_number(typed)}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text  # kept as text, inert
    assert "<script>alert(1)" not in page.text


async def test_the_case_list_filters_phoned_in_cases(gridbot: Gridbot) -> None:
    console = Console(gridbot)
    dispatcher = await console.staff("调度员", "dispatcher", STREET)
    chat = await file_case(gridbot, GRID_1, "聊天报的")
    async with console.client() as client:
        await console.sign_in(dispatcher, client)
        filed = await client.post_form("/console/phonein", phonein_form(gridbot, STRANGER,
                                                                        True))
        phoned = await filed_number(filed)
        listed = await client.get("/console/cases?channel=phone")
        assert 'value="phone"' in listed.text
    numbers = set(re.findall(r'data-number="(\d{6}-\d{3,4})"', listed.text))
    assert numbers == {phoned} and chat not in numbers


# --- in a real browser -------------------------------------------------------------


async def test_a_community_worker_files_a_phone_call_in_the_browser_and_the_caller_gets_the_number(
        browser: object, sms: SmsHarness, tmp_path: Path) -> None:
    """(A screenshot of the form goes to `$CONSOLE_SCREENSHOTS`, else the temporary
    folder: docs/console.md's is made with `CONSOLE_SCREENSHOTS=docs`.)"""
    from playwright.async_api import expect

    bot = sms.bot
    console = Console(bot)
    worker = await console.staff("社区小李", "community_staff", COMMUNITY_1)
    context = await browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 1280, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = await context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    base = sms.server.url.rstrip("/")
    await page.goto(await console.link(worker, base))
    await page.locator("#signin-button").click()
    await page.wait_for_url("**/console/cases", wait_until="domcontentloaded")

    # The call: the number, look up the household, SMS yes, what and where, file.
    await page.click("nav a[href='/console/phonein']")
    await page.fill("#lookup-phone", "139 0000 0101")
    await page.click("#phonein-lookup button[type=submit]")
    await expect(page.locator("#phonein-household option")).to_have_count(2)
    await page.select_option("#phonein-household", index=1)
    await page.check("#sms-yes")
    await page.select_option("#phonein-category", "utilities")
    await page.fill("#phonein-description", "楼道灯坏了，晚上看不见路")
    await page.select_option("#phonein-place", f"b:{building_of(bot, '翠苑一区3幢')}")
    folder = shots_folder(tmp_path)
    await page.screenshot(path=str(folder / "console-phonein-1280.png"), full_page=True)
    await page.click("#phonein-submit")
    outcome = page.locator("#outcome")
    await expect(outcome).to_contain_text("短信")
    number = (await page.locator("#filed-case").inner_text()).strip()
    assert CASE.fullmatch(number), number

    await sms.drain()
    assert f"编号{number}" in sms.replies(CALLER)  # at the fake Twilio

    await page.click("#filed-case")
    await expect(page.locator("#phonein-info")).to_contain_text("社区小李")
    await expect(page.locator("#caller-hears")).to_contain_text("短信")
    await expect(page.locator("#linked-household")).to_be_visible()
    await page.screenshot(path=str(folder / "console-phonein-case-1280.png"), full_page=True)
    assert not errors  # no CSP violation, no script error


async def test_the_pages_read_in_english_for_an_english_speaking_chief(gridbot: Gridbot) -> None:
    from store import people as people_store

    console = Console(gridbot)
    chief = await console.staff("Chief One", "grid_chief", GRID_1)
    async with gridbot.db.transaction() as conn:
        await people_store.set_locale(conn, chief, "en")
    hid = await household_id(gridbot)
    async with console.client() as client:
        await console.sign_in(chief, client)
        pages = [await client.get(url) for url in (
            "/console/phonein", f"/console/households?grid={GRID_1}",
            f"/console/households/{hid}", "/console/households/due")]
    assert all(p.status_code == 200 for p in pages)
    assert "Phone-in case" in pages[0].text and "Text the caller?" in pages[0].text
    assert "Households" in pages[1].text and "Log a visit" in pages[2].text
    assert "living alone" in pages[2].text.lower()  # the tag in English
    assert "Due a visit" in pages[3].text
    for page in pages:  # no text key left untranslated
        assert not re.search(r">\s*(phonein|households)\.[a-z_]+", page.text)


def test_the_console_texts_have_the_same_keys_in_both_languages() -> None:
    import tomllib

    from bot.entrypoints.console.web import TEMPLATES

    def keys(table: dict[str, object], prefix: str = "") -> set[str]:
        found: set[str] = set()
        for key, value in table.items():
            found |= keys(value, f"{prefix}{key}.") if isinstance(value, dict) \
                else {prefix + key}
        return found

    zh, en = (keys(tomllib.loads((TEMPLATES / "i18n" / f"{lang}.toml").read_text("utf-8")))
              for lang in ("zh_CN", "en"))
    assert {k for k in zh ^ en if k.startswith(("phonein.", "households."))} == set()

"""The console's staff page: a dispatcher invites a grid chief (code, Telegram deep link,
a QR code that a real decoder reads back as the link), sees the staff with their
channels, revokes a role; only administrators and dispatchers manage staff.

The QR test runs in headless Chromium (Debian's `chromium`) against gridbot with
Telegram on the fake Bot API, whose getMe names the bot; the decoder is zxing-cpp.
Screenshots go to `$CONSOLE_SCREENSHOTS` (docs/console.md's: `CONSOLE_SCREENSHOTS=docs`).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from bot.bootstrap import Gridbot
from store import staff as staff_store
from tests.browser_harness import shots_folder
from tests.chat import ChatDriver
from tests.console_harness import Console, browser_sign_in
from tests.helpers import COMMUNITY_1, GRID_1, STREET
from tests.telegram_harness import Harness

try:
    from playwright.async_api import Browser
except ImportError:  # pragma: no cover - the dev extras bring it
    pytest.fail("the browser tests need Playwright: pip install -e '.[dev]'", pytrace=False)

CODE = re.compile(r'id="invite-code">([A-Z0-9]{8})<')


async def test_an_invitation_joins_once_and_the_role_can_be_revoked(gridbot: Gridbot) -> None:
    console = Console(gridbot)
    dispatcher = await console.staff("孙调度", "dispatcher", STREET)
    async with console.client() as client:
        await console.sign_in(dispatcher, client)
        made = await client.post_form("/console/staff/invite",
                                      {"role": "grid_chief", "scope": GRID_1})
        assert made.status_code == 200, made.text
        code = CODE.search(made.text)
        assert code, made.text
        assert 'id="no-telegram"' in made.text  # no Telegram here: the code, no QR
        newcomer = ChatDriver(gridbot, "sim-telegram", "web:newcomer")
        await newcomer.text(f"/join {code.group(1)}")
        assert "欢迎加入" in newcomer.said
        listed = await client.get("/console/staff")
        role = next(r for r in await staff_store.list_staff(gridbot.db.conn)
                    if r.scope == GRID_1 and r.role == "grid_chief"
                    and r.name not in ("王丽华",))
        row = re.search(rf'<tr data-role-id="{role.role_id}">(.*?)</tr>', listed.text, re.S)
        assert row and "sim-telegram" in row.group(1) and "网格长" in row.group(1)
        assert "环卫所" in listed.text and "sanitation" in listed.text  # the departments
        no_token = await client.post(f"/console/staff/{role.role_id}/revoke",
                                     headers={"Origin": "http://console.test"})
        assert no_token.status_code == 403
        revoked = await client.post_form(f"/console/staff/{role.role_id}/revoke")
        assert revoked.status_code == 303
    assert role.role_id not in {r.role_id for r in await staff_store.list_staff(
        gridbot.db.conn)}
    again = ChatDriver(gridbot, "sim-telegram", "web:someone-else")
    await again.text(f"/join {code.group(1)}")
    assert "欢迎加入" not in again.said  # a code works once


async def test_only_admins_and_dispatchers_manage_staff_and_only_in_their_street(
        gridbot: Gridbot) -> None:
    console = Console(gridbot)
    dispatcher = await console.staff("孙调度", "dispatcher", STREET)
    director = await console.staff("社区主任", "community_director", COMMUNITY_1)
    admin = await console.staff("管理员", "admin", None)
    async with console.client() as client:
        await console.sign_in(dispatcher, client)
        as_admin = await client.post_form("/console/staff/invite", {"role": "admin"})
        nowhere = await client.post_form("/console/staff/invite",
                                         {"role": "grid_chief", "scope": "nowhere"})
        admin_role = next(r for r in await staff_store.list_staff(gridbot.db.conn)
                          if r.person_id == admin)
        revoke_admin = await client.post_form(f"/console/staff/{admin_role.role_id}/revoke")
    assert as_admin.status_code == 400 and "不能" in as_admin.text
    assert nowhere.status_code == 400 and CODE.search(nowhere.text) is None
    assert revoke_admin.status_code == 404
    assert admin_role.role_id in {r.role_id for r in await staff_store.list_staff(
        gridbot.db.conn)}
    async with console.client() as client:
        await console.sign_in(director, client)
        assert (await client.get("/console/staff")).status_code == 404
        refused = await client.post_form("/console/staff/invite",
                                         {"role": "grid_chief", "scope": GRID_1})
        assert refused.status_code == 404 and CODE.search(refused.text) is None


async def test_the_printed_qr_code_decodes_to_the_telegram_deep_link(
        browser: Browser, tg: Harness, tmp_path: Path) -> None:
    bot, base = tg.bot, str(tg.http.base_url).rstrip("/")
    console = Console(bot)
    dispatcher = await console.staff("调度员小赵", "dispatcher", STREET)
    context = await browser.new_context(viewport={"width": 1280, "height": 900},
                                        locale="zh-CN", timezone_id="Asia/Shanghai")
    page = await context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await browser_sign_in(page, await console.link(dispatcher, base))
    await page.goto(f"{base}/console/staff")
    await page.select_option("select[name=role]", "grid_chief")
    await page.select_option("select[name=scope]", GRID_1)
    await page.locator("#invite-button").click()
    await page.locator("#invite-qr").wait_for()
    code = await page.locator("#invite-code").inner_text()
    link = await page.locator("#invite-link").inner_text()
    assert link == f"https://t.me/gridbot_test_bot?start={code}"
    shot = await page.locator("#invite-qr").screenshot()
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(shot)).convert("L"))
    assert [b.text for b in found] == [link]
    assert [b.format for b in found] == [zxingcpp.BarcodeFormat.QRCode]
    folder = shots_folder(tmp_path)
    await page.screenshot(path=str(folder / "console-staff-1280.png"), full_page=True)
    await page.emulate_media(media="print")
    await page.screenshot(path=str(folder / "console-invite-print.png"))
    assert errors == []
    await context.close()

"""What the console's browser tests share: Debian's Chromium driven by Playwright, a page
signed in by link, and where screenshots go.

The `browser` fixture itself is in conftest.py. Screenshots go to `$CONSOLE_SCREENSHOTS`
(docs/console.md's are made with `CONSOLE_SCREENSHOTS=docs`), else to the test's folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from tests.console_harness import Console, browser_sign_in

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = shutil.which("chromium")  # Debian's package: /usr/bin/chromium
INSTALL = "apt-get install -y chromium chromium-driver fonts-noto-cjk"


def shots_folder(tmp_path: Path) -> Path:
    """The folder screenshots are written to (made if missing)."""
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def signed_in_page(browser: Browser, console: Console, person: int, base: str,
                         width: int = 1280, height: int = 900, script: bool = True) -> Page:
    """A page in Chinese at Shanghai time (JavaScript off without `script`), signed in as
    `person` by a link; the page's console errors and uncaught exceptions are collected in
    `page.errors`."""
    context = await browser.new_context(viewport={"width": width, "height": height},
                                        locale="zh-CN", timezone_id="Asia/Shanghai",
                                        java_script_enabled=script)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # type: ignore[attr-defined]
    await browser_sign_in(page, await console.link(person, base))
    return page

"""`gridbot console-link --role-id N`: a one-time sign-in link to the web console, for the
first administrator (or anyone holding a staff role) before they have a chat; and the
demo dispatcher's link that `gridbot serve` prints for a local demo."""

from __future__ import annotations

import argparse
import sys

from bot.bootstrap import build
from bot.runtime import loop
from bot.services import console_auth
from bot.settings import Settings
from store import people as people_store

DEMO_DISPATCHER = ("dispatcher", "33010600100000")  # bot/data/demo/street_staff.csv


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `console-link` to the command line."""
    link = commands.add_parser("console-link",
                               help="print a one-time sign-in link to the web console")
    link.add_argument("--role-id", type=int, required=True,
                      help="the staff member's role id (from 'gridbot staff list')")
    link.set_defaults(run=_console_link)


def _console_link(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        bot = await build(settings)
        try:
            async with bot.db.transaction() as conn:
                person_id = await console_auth.person_of_role(conn, args.role_id)
                if person_id is None:
                    print(f"gridbot: no active role with id {args.role_id}"
                          " (see 'gridbot staff list')", file=sys.stderr)
                    return 1
                try:
                    url = await console_auth.issue_link(conn, person_id, bot.clock.now(),
                                                        settings.public_url)
                except console_auth.TooManyLinks:
                    print(f"gridbot: at most {console_auth.LINKS_PER_HOUR} sign-in links an"
                          " hour per person; try again later", file=sys.stderr)
                    return 1
        finally:
            await bot.close()
        print(url)
        print(f"works once, for {console_auth.LINK_MINUTES} minutes")
        return 0

    return loop.run(run())


def demo_line(settings: Settings) -> str | None:
    """For `gridbot serve` on the demo district: a line with a sign-in link for the demo
    dispatcher, or None when the demo is off or has no dispatcher."""
    if not settings.demo:
        return None

    async def run() -> str | None:
        bot = await build(settings)
        try:
            async with bot.db.transaction() as conn:
                person = await people_store.holder_of(conn, *DEMO_DISPATCHER)
                if person is None:
                    return None
                try:
                    url = await console_auth.issue_link(conn, person.id, bot.clock.now(),
                                                        settings.public_url)
                except console_auth.TooManyLinks:
                    return ("console: /console (the demo dispatcher's sign-in links for"
                            " this hour are used up; gridbot console-link --role-id N)")
        finally:
            await bot.close()
        return (f"console: sign in as the demo dispatcher {person.name} at {url}"
                f" (works once, for {console_auth.LINK_MINUTES} minutes)")

    return loop.run(run())

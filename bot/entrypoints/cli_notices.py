"""`gridbot notice` and `gridbot meeting`: the street office's messages from the terminal.

Both print a preview (recipients per channel) and ask before anything is stored, unless
`--yes`. A notice without `--at` is queued at once, in this process, in one transaction;
the server's senders deliver it. With `--at` it is stored and the server's scheduler sends
it then. `--show ID` prints the acknowledgements per grid (or a meeting's answers) and
`--remind` queues the notice again for those who have not acknowledged; with `--json` the
same as one JSON object (fields in docs/cli.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from bot.bootstrap import Gridbot, build
from bot.domain.clock import iso
from bot.domain.wording import counted, plural
from bot.runtime import loop
from bot.services import meetings, notices
from bot.services.mediafiles import MediaRefused, save_photo
from bot.settings import Settings
from store import media as media_store
from store import meetings as meeting_store
from store import notices as notice_store

PHOTO_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
               ".webp": "image/webp", ".gif": "image/gif"}


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `notice` and `meeting` to the command line."""
    notice = commands.add_parser(
        "notice", help="send a notice to residents, grid chiefs or staff of an area",
        description="Preview, confirm and queue a notice; or --show ID [--remind].")
    _audience_arguments(notice)
    notice.add_argument("--text", help="what the notice says (at most 1,000 characters)")
    notice.add_argument("--text-en", help="the same in English, for those who read English")
    notice.add_argument("--photo", type=Path, help="a picture to send with it (.jpg, .png)")
    notice.add_argument("--at", help='local time to send, "YYYY-MM-DD HH:MM" (default: now)')
    notice.add_argument("--remind", action="store_true",
                        help="with --show: send it again to those who have not acknowledged")
    notice.set_defaults(run=lambda s, a: _run(s, a, _notice))

    meeting = commands.add_parser(
        "meeting", help="call a meeting: invitations with attend yes / no, reminders",
        description="Preview, confirm and send meeting invitations; or --show ID.")
    _audience_arguments(meeting)
    meeting.add_argument("--title", help="what the meeting is")
    meeting.add_argument("--place", help="where it is")
    meeting.add_argument("--at", help='local start time, "YYYY-MM-DD HH:MM"')
    meeting.set_defaults(run=lambda s, a: _run(s, a, _meeting))


def _audience_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scope", help="an area code (street, community, grid) or a building")
    parser.add_argument("--to", choices=notices.AUDIENCES, help="who receives it")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--show", type=int, metavar="ID", help="show one sent before")
    parser.add_argument("--json", action="store_true",
                        help="with --show: print one JSON object (fields in docs/cli.md)")


Command = Callable[[Gridbot, argparse.Namespace, TextIO, TextIO], Awaitable[int]]


def _run(settings: Settings, args: argparse.Namespace, command: Command) -> int:
    async def main() -> int:
        bot = await build(settings)
        try:
            return await command(bot, args, sys.stdin, sys.stdout)
        finally:
            await bot.close()

    return loop.run(main())


def _fail(message: str) -> int:
    print(f"gridbot: {message}", file=sys.stderr)
    return 2


def _confirmed(args: argparse.Namespace, source: TextIO, out: TextIO) -> bool:
    if args.yes:
        return True
    print("Send? [y/N] ", end="", file=out, flush=True)
    return source.readline().strip().lower() in ("y", "yes", "是", "好")


def example_time(bot: Gridbot, at: str) -> str:
    """A future local time in the --at format, for an error message: tomorrow at `at`
    (HH:MM), by the bot's clock."""
    tomorrow = bot.clock.now().astimezone(bot.settings.timezone) + timedelta(days=1)
    return f"{tomorrow:%Y-%m-%d} {at}"


def _time(bot: Gridbot, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        return None
    return moment.replace(tzinfo=bot.settings.timezone)


async def _preview(bot: Gridbot, args: argparse.Namespace, out: TextIO,
                   photo: bool = False) -> tuple[notices.Scope, str] | None:
    """Print who would receive it; return the scope and the issuing area."""
    district = bot.reference.district
    scope = notices.resolve_scope(district, args.scope or "")
    if scope is None:
        return None
    counted = await notices.preview(bot.db.conn, scope, args.to)
    channels = ", ".join(f"{name} {count}" for name, count in counted.channels.items())
    print(f"{scope.name(district, 'zh_CN')} ({scope.code}), {args.to}:"
          f" {_recipients(counted.total)}{f' ({channels})' if channels else ''}", file=out)
    if photo and counted.text_only:
        print(f"  {counted.text_only} of them on SMS {plural(counted.text_only, 'gets')} the"
              " text only, without the photo", file=out)
    issuer = district.ancestor(scope.area, "street") or scope.area
    return scope, issuer


def _scope_name(bot: Gridbot, code: str) -> str:
    return notices.scope_name(bot.reference.district, code, "zh_CN")


def _recipients(count: int) -> str:
    return counted(count, "recipient")


async def _notice(bot: Gridbot, args: argparse.Namespace, source: TextIO, out: TextIO) -> int:
    if args.show is not None:
        return await _show_notice(bot, args, out)
    if not args.scope or not args.to or not (args.text or "").strip():
        return _fail("notice: --scope, --to and --text are required (or --show ID)")
    text = args.text.strip()
    if len(text) > notices.MAX_TEXT:
        return _fail(f"notice: the text is longer than {notices.MAX_TEXT} characters")
    now = bot.clock.now()
    send_at = _time(bot, args.at) if args.at else now
    if send_at is None or send_at < now:
        return _fail(f'notice: --at must be a future local time like'
                     f' "{example_time(bot, "09:00")}"')
    photo = None
    if args.photo is not None:
        try:
            photo = save_photo(bot.settings.media_dir, args.photo.read_bytes(),
                               PHOTO_TYPES.get(args.photo.suffix.lower(), ""))
        except (OSError, MediaRefused) as exc:
            return _fail(f"notice: cannot use {args.photo}: {exc}")
    found = await _preview(bot, args, out, photo=photo is not None)
    if found is None:
        return _fail(f"notice: unknown area or building {args.scope!r}")
    scope, issuer = found
    text_en = (args.text_en or "").strip()[:notices.MAX_TEXT] or None
    outreach = notices.Outreach(bot.renderer, bot.reference, bot.settings.quiet_hours)
    shown = await notices.preview_draft(bot.db.conn, outreach, notices.Draft(
        scope, args.to, issuer, text, text_en, photo is not None))
    print("  by SMS: " + ", ".join(f"{locale} {counted(n, 'segment')}"
                                    for locale, n in shown.sms_segments.items()), file=out)
    print(f"at {send_at.astimezone(bot.settings.timezone):%Y-%m-%d %H:%M}: {text}", file=out)
    if not _confirmed(args, source, out):
        print("nothing sent", file=out)
        return 1
    async with bot.db.transaction() as conn:
        photo_id = None
        if photo is not None:
            photo_id = await media_store.add(conn, "cli", now, path=photo.path,
                                             sha256=photo.sha256, content_type=photo.content_type)
        notice, count = await notices.create_notice(
            conn, sender_id=None, issuer=issuer, scope=scope.code, audience=args.to, body=text,
            body_en=text_en, photo_id=photo_id, send_at=send_at, now=now, outreach=outreach)
    notice_id = notice.id
    if count is None:
        print(f"notice {notice_id} scheduled; the server sends it at its time", file=out)
    else:
        print(f"notice {notice_id} queued for {_recipients(count)}", file=out)
    return 0


async def _show_notice(bot: Gridbot, args: argparse.Namespace, out: TextIO) -> int:
    notice = await notice_store.get(bot.db.conn, args.show)
    if notice is None:
        return _fail(f"notice: no notice {args.show}")
    district = bot.reference.district
    counts = await notice_store.ack_counts(bot.db.conn, notice.id)
    view: dict[str, Any] = {
        "id": notice.id, "status": notice.status, "scope": notice.scope,
        "scope_name": _scope_name(bot, notice.scope), "audience": notice.audience,
        "text": notice.body, "send_at": iso(notice.send_at), "recipients": notice.recipients,
        "acknowledged": sum(done for _, _, done in counts),
        "areas": [{"code": area, "name": district.name(area, "zh_CN") if area else None,
                   "recipients": total, "acknowledged": done} for area, total, done in counts],
    }
    if args.remind:
        outreach = notices.Outreach(bot.renderer, bot.reference, bot.settings.quiet_hours)
        async with bot.db.transaction() as conn:
            view["reminded"] = await notices.remind(conn, outreach, notice, bot.clock.now())
    if args.json:
        print(json.dumps(view, ensure_ascii=False, indent=2), file=out)
        return 0
    print(f"notice {notice.id} ({notice.status}, {notice.audience} of {notice.scope}):"
          f" {view['acknowledged']} of {notice.recipients} acknowledged", file=out)
    for area in view["areas"]:
        print(f"  {area['name'] or '-'} ({area['code']}): {area['acknowledged']} /"
              f" {area['recipients']}", file=out)
    if args.remind:
        print(f"reminder queued for {_recipients(view['reminded'])}", file=out)
    return 0


async def _meeting(bot: Gridbot, args: argparse.Namespace, source: TextIO, out: TextIO) -> int:
    if args.show is not None:
        return await _show_meeting(bot, args, out)
    if not (args.scope and args.to and args.title and args.place and args.at):
        return _fail("meeting: --scope, --to, --title, --place and --at are required")
    now = bot.clock.now()
    starts_at = _time(bot, args.at)
    if starts_at is None or starts_at <= now:
        return _fail(f'meeting: --at must be a future local time like'
                     f' "{example_time(bot, "14:30")}"')
    found = await _preview(bot, args, out)
    if found is None:
        return _fail(f"meeting: unknown area or building {args.scope!r}")
    scope, _issuer = found
    print(f"{args.title} at {args.place}, {args.at}", file=out)
    if not _confirmed(args, source, out):
        print("nothing sent", file=out)
        return 1
    outreach = notices.Outreach(bot.renderer, bot.reference, bot.settings.quiet_hours)
    async with bot.db.transaction() as conn:
        meeting, count = await meetings.call(
            conn, outreach, organizer_id=None, title=args.title, place=args.place,
            starts_at=starts_at, scope=scope, audience=args.to, now=now)
    print(f"meeting {meeting.id}: invitations queued for {counted(count, 'person')}",
          file=out)
    return 0


async def _show_meeting(bot: Gridbot, args: argparse.Namespace, out: TextIO) -> int:
    meeting = await meeting_store.get(bot.db.conn, args.show)
    if meeting is None:
        return _fail(f"meeting: no meeting {args.show}")
    answers = await meetings.summary(bot.db.conn, meeting.id)
    if args.json:
        view = {"id": meeting.id, "title": meeting.title, "place": meeting.place,
                "starts_at": iso(meeting.starts_at), "scope": meeting.scope,
                "scope_name": _scope_name(bot, meeting.scope),
                "audience": meeting.audience, "status": meeting.status,
                "invited": answers["invited"], "yes": answers["yes"], "no": answers["no"],
                "unanswered": answers["unanswered"]}
        print(json.dumps(view, ensure_ascii=False, indent=2), file=out)
        return 0
    print(f"meeting {meeting.id} {meeting.title}: {answers['invited']} invited", file=out)
    for key in ("yes", "no", "unanswered"):
        names = answers[key]
        print(f"  {key}: {len(names)}{': ' + ', '.join(names) if names else ''}", file=out)
    return 0

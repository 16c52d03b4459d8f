"""The `gridbot` command (also `python -m bot`): serve, chat, import a district."""

from __future__ import annotations

import argparse
import asyncio
import csv
import errno
import json
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from bot.bootstrap import Gridbot, build
from bot.domain import stats
from bot.domain.channels import SIMULATED
from bot.domain.clock import SystemClock
from bot.domain.households import TagCatalog, TagError
from bot.domain.messages import Inbound, Kind, parse_text
from bot.domain.wording import counted
from bot.entrypoints import cli_apikeys, cli_console, cli_copy, cli_notices
from bot.runtime import loop
from bot.services import casework, households, staff_invites
from bot.services import stats as stats_service
from bot.services.districts import import_buildings, import_geojson
from bot.services.mediafiles import MediaRefused, save_photo
from bot.services.staff_invites import STAFF_ROLE_NAMES, UNSCOPED_ROLES
from bot.settings import Settings, SettingsError
from store import outbox as outbox_store
from store import staff as staff_store
from store.db import UNREACHABLE, Database
from store.pg import display_url

CHAT_HELP = """Type as the resident would. Extra simulator commands:
  /loc LAT LON     send a GPS location, e.g. /loc 30.2812 120.1195
  /photo FILE      send a photo (a .jpg or .png file)
  /quit            leave (or end the input)
Numbers answer the latest menu, on either channel."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        settings = settings_for(args)
    except SettingsError as exc:
        print(f"gridbot: {exc}", file=sys.stderr)
        return 2
    try:
        result: int = args.run(settings, args)
    except UNREACHABLE as exc:
        where = display_url(str(settings.database))
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        print(f"gridbot: cannot reach the database {where}: {reason}", file=sys.stderr)
        return 1
    return result


def settings_for(args: argparse.Namespace) -> Settings:
    """The settings from the environment and .env, with `serve --host/--port` standing for
    GRIDBOT_HOST/GRIDBOT_PORT, so that what is derived from them agrees (the public URL
    of photo links when GRIDBOT_PUBLIC_URL is not set)."""
    overrides = {name: str(value) for name, value in (
        ("GRIDBOT_HOST", getattr(args, "host", None)),
        ("GRIDBOT_PORT", getattr(args, "port", None))) if value}  # "" and 0: not given
    return Settings.from_env({**os.environ, **overrides})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gridbot",
        description="Community grid management bot: residents report, grid staff handle.",
        epilog="Settings come from the environment and .env; see .env.example.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the bot: HTTP server, simulators, channels")
    serve.add_argument("--host", help="address to listen on (default GRIDBOT_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default GRIDBOT_PORT)")
    serve.set_defaults(run=_serve)

    chat = commands.add_parser("chat", help="talk to the bot in the terminal (also piped)")
    chat.add_argument("--as", dest="name", default="resident",
                      help="who you are (a name; each name is a separate person)")
    chat.add_argument("--channel", choices=["telegram", "sms"], default="telegram",
                      help="which channel to imitate: buttons (telegram) or numbered (sms)")
    chat.set_defaults(run=_chat)

    grids = commands.add_parser("import-grids",
                                help="import or update streets, communities and grids")
    grids.add_argument("file", type=Path, help="a GeoJSON FeatureCollection")
    grids.set_defaults(run=_import_grids)

    buildings = commands.add_parser("import-buildings", help="import or update buildings")
    buildings.add_argument("file", type=Path, help="CSV: name,address,grid_code,lat,lon")
    buildings.set_defaults(run=_import_buildings)

    households = commands.add_parser("import-households",
                                     help="import or update households under buildings")
    households.add_argument("file", type=Path, help="CSV: building,grid_code,unit,room,"
                            "head_name,phone,people,tags (docs/households.md)")
    households.set_defaults(run=_import_households)

    migrate = commands.add_parser("migrate", help="create or upgrade the database, then exit")
    migrate.set_defaults(run=_migrate)
    cli_notices.add_commands(commands)  # notice, meeting
    cli_apikeys.add_commands(commands)  # api-key
    cli_console.add_commands(commands)  # console-link
    cli_copy.add_commands(commands)  # copy-database

    invite = commands.add_parser("invite", help="make a one-time code for a staff member")
    invite.add_argument("--role", required=True, choices=sorted(STAFF_ROLE_NAMES),
                        help="the role the code gives")
    invite.add_argument("--scope", help="area code (grid, community, street) or department"
                        " code; required except for admin and supervisor")
    invite.add_argument("--expires", default="7d",
                        help="how long the code works: 7d, 12h, 30m (default 7d)")
    invite.set_defaults(run=_invite)

    staff = commands.add_parser("staff", help="list staff, or revoke a role")
    staff_commands = staff.add_subparsers(dest="staff_command", metavar="ACTION",
                                          required=True)
    staff_commands.add_parser("list", help="every active role").set_defaults(run=_staff_list)
    revoke = staff_commands.add_parser("revoke", help="end one role (ids from 'staff list')")
    revoke.add_argument("role_id", type=int)
    revoke.set_defaults(run=_staff_revoke)

    case = commands.add_parser("case", help="one case: its card and its timeline")
    case.add_argument("number", help="the case number, YYMMDD-NNN (261123-001 or 261123001)")
    case.add_argument("--json", action="store_true",
                      help="print one JSON object (fields in docs/cli.md)")
    case.add_argument("--full-phone", action="store_true",
                      help="show phone numbers in full (default: masked, 139****5678)")
    case.set_defaults(run=_case)

    stats = commands.add_parser("stats", help="the month's indicators and the appraisal")
    stats.add_argument("--month", required=True, help="YYYY-MM")
    stats.add_argument("--scope", help="a street, community or grid code (default: all)")
    written = stats.add_mutually_exclusive_group()
    written.add_argument("--csv-dir", type=Path, metavar="DIR",
                         help="also write each table as CSV into DIR:"
                              " indicators-YYYY-MM.csv, appraisal-, sources- and visits-")
    written.add_argument("--csv", type=Path, metavar="FILE",
                         help="also write the indicators to FILE and the other tables"
                              " beside it: FILE-appraisal.csv, FILE-sources.csv, FILE-visits.csv")
    stats.add_argument("--json", action="store_true",
                       help="print one JSON object instead of the tables (docs/cli.md)")
    stats.set_defaults(run=_stats)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here: the web stack is what `serve` needs and no other command does.
    import uvicorn

    from bot.entrypoints.http import Server, create_app
    from bot.entrypoints.metrics import configure_logging
    from bot.entrypoints.sim import sim_access

    host, port = settings.host, settings.port  # --host/--port are in the settings
    try:  # before anything starts: a second server must not touch the database
        sock = listening_socket(host, port)
    except OSError as exc:
        print(f"gridbot: {cannot_listen(host, port, exc)}", file=sys.stderr)
        return 1
    configure_logging()
    sim = sim_access(settings)
    print(f"gridbot: serving on http://{host}:{port} (health: /healthz),"
          f" database {display_url(str(settings.database))}", flush=True)
    print(f"gridbot: {sim.start_line(settings)}", flush=True)
    console_line = cli_console.demo_line(settings)
    if console_line is not None:
        print(f"gridbot: {console_line}", flush=True)
    server = Server(uvicorn.Config(create_app(settings, sim=sim), host=host, port=port,
                                   log_level="info", timeout_graceful_shutdown=5))
    with sock:
        server.run(sockets=[sock])
    return 0 if server.started else 3  # 3: the start failed (uvicorn's own exit status)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port and listening (raises OSError when it cannot be)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    """One line saying why the server cannot listen, and what to do."""
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} on {host} is already in use (another gridbot serve?);"
                " stop that one or choose another port with --port or GRIDBOT_PORT")
    if exc.errno == errno.EACCES:
        return (f"no permission to listen on {host}:{port}; ports below 1024 need"
                " privileges: choose another with --port or GRIDBOT_PORT")
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def _chat(settings: Settings, args: argparse.Namespace) -> int:
    return loop.run(_chat_loop(settings, args.name, f"sim-{args.channel}", sys.stdin,
                                  sys.stdout))


async def _chat_loop(settings: Settings, name: str, channel: str, source: TextIO,
                     out: TextIO) -> int:
    assert channel in SIMULATED
    bot = await build(settings)
    address = f"cli:{name}"
    interactive = source.isatty()
    try:
        last = await _print_new(bot, channel, address, 0, out, show=False)
        if interactive:
            print(CHAT_HELP, file=out)
        while True:
            if interactive:
                print("> ", end="", file=out, flush=True)
            line = await asyncio.to_thread(source.readline)
            if not line:
                break
            line = line.rstrip("\n")
            if line.strip() == "/quit":
                break
            inbound = _chat_inbound(bot, channel, address, line, out)
            if inbound is not None:
                await bot.engine.handle(inbound)
            last = await _print_new(bot, channel, address, last, out)
    finally:
        await bot.close()
    return 0


def _chat_inbound(bot: Gridbot, channel: str, address: str, line: str,
                  out: TextIO) -> Inbound | None:
    """Turn a typed line into an inbound, handling the simulator's own commands."""
    head, _, rest = line.strip().partition(" ")
    if head == "/loc":
        parts = rest.replace(",", " ").split()
        try:
            lat, lon = float(parts[0]), float(parts[1])
        except (IndexError, ValueError):
            print("usage: /loc LAT LON, e.g. /loc 30.2812 120.1195", file=out)
            return None
        return Inbound(channel, address, Kind.LOCATION, lat=lat, lon=lon)
    if head == "/photo":
        path = Path(rest.strip())
        suffix = path.suffix.lower()
        content_type = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
                        ".gif": "image/gif", ".webp": "image/webp"}.get(suffix, "")
        try:
            photo = save_photo(bot.settings.media_dir, path.read_bytes(), content_type)
        except (OSError, MediaRefused) as exc:
            print(f"cannot send that photo: {exc}", file=out)
            return None
        return Inbound(channel, address, Kind.PHOTO, photo=photo)
    return parse_text(channel, address, line)


async def _print_new(bot: Gridbot, channel: str, address: str, after: int, out: TextIO,
                     show: bool = True) -> int:
    rows = await outbox_store.for_address(bot.db.conn, channel, address, after)
    if not rows:
        return after
    async with bot.db.transaction() as conn:
        await outbox_store.mark_sent(conn, [r.id for r in rows if r.status == "queued"],
                                     bot.clock.now())
    if show:
        for row in rows:
            print(row.body, file=out)
            buttons = row.payload.get("buttons", [])
            if buttons:
                print("  ".join(f"[{i + 1} {label}]" for i, (label, _) in enumerate(buttons)),
                      file=out)
            if row.payload.get("request_location"):
                print(f"[📍 {row.payload['request_location']}: /loc LAT LON]", file=out)
            print("", file=out, flush=True)
    return rows[-1].id


def _run_import(settings: Settings, file: Path, noun: str,
                importer: Callable[[Database], Awaitable[int]]) -> int:
    """Run one import on the database; a refused file imports nothing and says why."""
    async def run() -> int:
        db = await Database.open(settings.database)
        try:
            count = await importer(db)
        except ValueError as exc:  # GeoImportError is one
            print(f"gridbot: {file} refused, nothing imported: {exc}", file=sys.stderr)
            return 1
        finally:
            await db.close()
        print(f"imported {counted(count, noun)} from {file} (running servers use them within"
              " a tick)")
        return 0

    return loop.run(run())


def _import_grids(settings: Settings, args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"gridbot: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1

    return _run_import(settings, args.file, "area",
                       lambda db: import_geojson(db, data, SystemClock().now()))


def _import_buildings(settings: Settings, args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"gridbot: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1

    return _run_import(settings, args.file, "building", lambda db: import_buildings(db, text))


def _import_households(settings: Settings, args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text(encoding="utf-8-sig")
        tags = TagCatalog.load(settings.household_tags)
    except (OSError, UnicodeDecodeError, TagError) as exc:
        print(f"gridbot: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1

    async def importer(db: Database) -> int:
        done = await households.import_households(db, text, tags, settings.phone_region,
                                                  SystemClock().now())
        return done.total

    return _run_import(settings, args.file, "household", importer)


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        bot = await build(settings)
        await bot.close()
        print(f"database {display_url(str(settings.database))} is ready")
        return 0

    return loop.run(run())




def _duration(text: str) -> timedelta | None:
    units = {"d": "days", "h": "hours", "m": "minutes"}
    number, unit = text[:-1], text[-1:]
    if not number.isdigit() or unit not in units or int(number) <= 0:
        return None
    return timedelta(**{units[unit]: int(number)})


def _invite(settings: Settings, args: argparse.Namespace) -> int:
    lifetime = _duration(args.expires)
    if lifetime is None:
        print(f"gridbot: --expires: use a number and d, h or m, e.g. 7d; got {args.expires!r}",
              file=sys.stderr)
        return 2
    if args.scope is None and args.role not in UNSCOPED_ROLES:
        print(f"gridbot: --scope is required for {args.role}", file=sys.stderr)
        return 2

    async def run() -> int:
        bot = await build(settings)
        try:
            async with bot.db.transaction() as conn:
                invitation = await staff_invites.create_invite(
                    conn, bot.reference, args.role, args.scope, bot.clock.now(), lifetime)
        except staff_invites.InviteRefused:
            print(f"gridbot: unknown scope {args.scope!r} (an area or department code)",
                  file=sys.stderr)
            return 2
        finally:
            await bot.close()
        code = invitation.code
        print(f"invitation code: {code}  ({args.role}"
              f"{' in ' + args.scope if args.scope else ''}, works once, expires in"
              f" {args.expires})")
        print(f"Telegram: /start {code}  or the link https://t.me/<your_bot>?start={code}")
        print(f"SMS: JOIN {code}   web simulator or chat: /join {code}")
        return 0

    return loop.run(run())


def _staff_list(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        db = await Database.open(settings.database)
        try:
            rows = await staff_store.list_staff(db.conn)
        finally:
            await db.close()
        print(f"{'id':>4}  {'person':>6}  {'role':<20} {'scope':<16} name")
        for r in rows:
            print(f"{r.role_id:>4}  {r.person_id:>6}  {r.role:<20} {r.scope or '-':<16}"
                  f" {r.name or ''}")
        return 0

    return loop.run(run())


def _staff_revoke(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        db = await Database.open(settings.database)
        try:
            async with db.transaction() as conn:
                done = await staff_store.revoke_role(conn, args.role_id, SystemClock().now())
        finally:
            await db.close()
        if not done:
            print(f"gridbot: no active role with id {args.role_id}", file=sys.stderr)
            return 1
        print(f"role {args.role_id} revoked")
        return 0

    return loop.run(run())


def _case(settings: Settings, args: argparse.Namespace) -> int:
    number = casework.parse_case_number(args.number)
    if number is None:
        print(f"gridbot: case: a case number is YYMMDD-NNN, e.g. 261123-001;"
              f" got {args.number!r}", file=sys.stderr)
        return 2

    async def run() -> int:
        bot = await build(settings)
        try:
            view = await casework.case_view(bot.db.conn, bot.reference, number,
                                            bot.clock.now(), masked=not args.full_phone)
        finally:
            await bot.close()
        if view is None:
            print(f"gridbot: case: no case {number}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(view.as_json(), ensure_ascii=False, indent=2))
        else:
            print(_case_card(bot, view))
        return 0

    return loop.run(run())


def _case_card(bot: Gridbot, view: casework.CaseView) -> str:
    """The case as text for people: the card, then the timeline, oldest first."""
    locale, tz = bot.reference.default_locale, bot.settings.timezone

    def label(key: str, code: str | None) -> str:
        return f"{bot.renderer.label(locale, f'{key}.{code}')} ({code})" if code else "-"

    def when(moment: datetime | None) -> str:
        return f"{moment.astimezone(tz):%Y-%m-%d %H:%M}" if moment else "-"

    place = view.place or (f"{view.lat:.5f}, {view.lon:.5f}"
                           if view.lat is not None and view.lon is not None else "-")
    area = view.grid_code or view.community_code or view.street_code
    lines = [
        f"case {view.number}: {view.category_name} ({view.category}), {view.urgency},"
        f" {view.procedure}{', found on patrol' if view.found_on_patrol else ''}",
        f"  state:       {label('state', view.state)}, at {label('level', view.level)}"
        f"{' ' + view.department if view.department else ''}",
        f"  area:        {view.area_name or '-'} ({area or '-'})",
        f"  place:       {place}{' (' + view.location_note + ')' if view.location_note else ''}",
        f"  description: {view.description}",
        f"  reporter:    {view.reporter or '-'} via {view.source_channel or '-'}"
        f"{_phoned_in(view)}",
        f"  in charge:   {view.assignee or '-'}"
        f"{f' (#{view.assignee_id})' if view.assignee_id is not None else ''}",
        f"  deadline:    {when(view.deadline)}{' (overdue)' if view.overdue else ''}",
        f"  photos:      {len(view.photo_ids)}, followers: {view.followers}"
        f"{f', rating: {view.rating} of 5' if view.rating is not None else ''}"
        f"{f', reworked {view.rework_count}x' if view.rework_count else ''}"
        f"{f', merged into {view.merged_into}' if view.merged_into else ''}",
        "timeline:",
    ]
    for entry in view.timeline:
        who = entry.actor_role if entry.actor_id is None else (
            f"{entry.actor_role} {entry.actor or '#' + str(entry.actor_id)}")
        lines.append(f"  {when(entry.at)}  {label('event', entry.event)}"
                     f" → {bot.renderer.label(locale, f'state.{entry.to_state}')}  by {who}"
                     f"{'：' + entry.note if entry.note else ''}")
    return "\n".join(lines)


def _phoned_in(view: casework.CaseView) -> str:
    """", phoned in by NAME, …" for a phone-in, else nothing."""
    if not view.phoned_in_by:
        return ""
    how = "SMS to the caller" if view.caller_sms else "no SMS: the filer relays"
    return f", phoned in by {view.phoned_in_by} ({how})"


def _stats(settings: Settings, args: argparse.Namespace) -> int:
    try:
        year, month = (int(part) for part in args.month.split("-"))
        first = datetime(year, month, 1, tzinfo=settings.timezone)
    except ValueError:
        print(f"gridbot: --month: use YYYY-MM, got {args.month!r}", file=sys.stderr)
        return 2
    start, end = stats_service.month_of(first, settings.timezone)

    async def run() -> int:
        db = await Database.open(settings.database)
        try:
            found = await stats_service.month_report(db.conn, start, end, args.scope)
        finally:
            await db.close()
        tables = {"indicators": found.indicator_table(), "appraisal": found.appraisal_table(),
                  "sources": found.source_table(), "visits": found.visit_table()}
        try:
            written = [_write_csv(path, tables[name])
                       for name, path in _csv_paths(args, found.month).items()]
        except OSError as exc:
            print(f"gridbot: cannot write the CSV: {exc}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps(found.as_json(), ensure_ascii=False, indent=2))
        else:
            print(f"gridbot indicators for {found.month}"
                  f"{' in ' + args.scope if args.scope else ''}")
            print(stats.format_table(tables["indicators"]))
            print()
            print(f"appraisal: cases handled against the target of {stats.APPRAISAL_TARGET}")
            print(stats.format_table(tables["appraisal"]))
            print()
            print("cases registered by source")
            print(stats.format_table(tables["sources"]))
            print()
            print("household visits")
            print(stats.format_table(tables["visits"]))
        for path in written:
            print(f"written to {path}", file=sys.stderr if args.json else sys.stdout)
        return 0

    return loop.run(run())


CSV_TABLES = ("indicators", "appraisal", "sources", "visits")


def _csv_paths(args: argparse.Namespace, month: str) -> dict[str, Path]:
    """Where each table goes: DIR/indicators-MONTH[-SCOPE].csv and DIR/appraisal-… with
    --csv-dir; with --csv FILE, the indicators in FILE and the appraisal beside it."""
    if args.csv_dir is not None:
        suffix = f"{month}{'-' + args.scope if args.scope else ''}.csv"
        return {name: args.csv_dir / f"{name}-{suffix}" for name in CSV_TABLES}
    if args.csv is not None:
        path: Path = args.csv
        return {"indicators": path, **{
            name: path.with_name(f"{path.stem}-{name}{path.suffix or '.csv'}")
            for name in CSV_TABLES[1:]}}
    return {}
def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    """One table as CSV, UTF-8 with a byte-order mark so that Excel reads the Chinese."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8-sig") as out:
        csv.writer(out).writerows(rows)
    return path

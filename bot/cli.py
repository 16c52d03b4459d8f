"""The `gridbot` command (also `python -m bot`): serve, chat, import a district."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from bot.bootstrap import Gridbot, build
from bot.channels import SIMULATED
from bot.clock import SystemClock
from bot.districts import import_buildings, import_geojson
from bot.geo import GeoImportError
from bot.mediafiles import MediaRefused, save_photo
from bot.messages import Inbound, Kind, parse_text
from bot.settings import Settings, SettingsError
from store import outbox as outbox_store
from store.db import Database

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
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"gridbot: {exc}", file=sys.stderr)
        return 2
    result: int = args.run(settings, args)
    return result


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

    migrate = commands.add_parser("migrate", help="create or upgrade the database, then exit")
    migrate.set_defaults(run=_migrate)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from bot.app import create_app

    host = args.host or settings.host
    port = args.port or settings.port
    print(f"gridbot: serving on http://{host}:{port} (simulator: /sim, health: /healthz),"
          f" database {settings.database}", flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    return 0


def _chat(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_chat_loop(settings, args.name, f"sim-{args.channel}", sys.stdin,
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


def _import_grids(settings: Settings, args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"gridbot: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1

    async def run() -> int:
        db = await Database.open(settings.database)
        try:
            count = await import_geojson(db, data, SystemClock().now())
        except GeoImportError as exc:
            print(f"gridbot: {args.file} refused, nothing imported: {exc}", file=sys.stderr)
            return 1
        finally:
            await db.close()
        print(f"imported {count} areas from {args.file} (restart a running server to use them)")
        return 0

    return asyncio.run(run())


def _import_buildings(settings: Settings, args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"gridbot: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1

    async def run() -> int:
        db = await Database.open(settings.database)
        try:
            count = await import_buildings(db, text)
        except ValueError as exc:
            print(f"gridbot: {args.file} refused, nothing imported: {exc}", file=sys.stderr)
            return 1
        finally:
            await db.close()
        print(f"imported {count} buildings from {args.file}"
              " (restart a running server to use them)")
        return 0

    return asyncio.run(run())


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        bot = await build(settings)
        await bot.close()
        print(f"database {settings.database} is ready")
        return 0

    return asyncio.run(run())

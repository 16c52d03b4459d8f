"""`gridbot api-key create|list|revoke`: the keys Open311 clients file cases with.

A key is shown once, when made; only its sha256 is stored. Each key may be bound to the
services it may file (`--services`, category or service codes) and to a department
(`--department`), whose own system then acts as that department on its cases.
"""

from __future__ import annotations

import argparse
import sys

from bot.bootstrap import build
from bot.domain.clock import SystemClock
from bot.runtime import loop
from bot.services.open311 import create_api_key
from bot.settings import Settings
from store import open311 as open311_store
from store.db import Database


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `api-key` to the command line."""
    keys = commands.add_parser("api-key", help="make, list or revoke Open311 API keys")
    actions = keys.add_subparsers(dest="key_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make a key (shown once)")
    create.add_argument("name", help="who uses it, e.g. FixMyStreet")
    create.add_argument("--services", default="",
                        help="comma list of category or service codes it may file"
                             " (default: all)")
    create.add_argument("--department", help="a department code: the key acts as that"
                                             " department in servicerequestupdates")
    create.set_defaults(run=_create)
    actions.add_parser("list", help="every key, revoked ones too").set_defaults(run=_list)
    revoke = actions.add_parser("revoke", help="stop a key (ids from 'api-key list')")
    revoke.add_argument("key_id", type=int)
    revoke.set_defaults(run=_revoke)


def _create(settings: Settings, args: argparse.Namespace) -> int:
    services = [s.strip() for s in args.services.split(",") if s.strip()]

    async def run() -> int:
        bot = await build(settings)
        try:
            key_id, key = await create_api_key(bot.db, bot.reference, args.name,
                                               bot.clock.now(), services=services,
                                               department=args.department)
        except ValueError as exc:
            print(f"gridbot: {exc}", file=sys.stderr)
            return 2
        finally:
            await bot.close()
        print(f"api key {key_id} for {args.name}: {key}")
        print("It is shown only now: give it to the client (api_key=...), keep it secret.")
        return 0

    return loop.run(run())


def _list(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        db = await Database.open(settings.database)
        try:
            keys = await open311_store.list_keys(db.conn)
        finally:
            await db.close()
        print(f"{'id':>4}  {'key':<10} {'status':<8} {'department':<16} {'services':<24} name")
        for k in keys:
            status = "revoked" if k.revoked_at else "active"
            print(f"{k.id:>4}  {k.prefix + '…':<10} {status:<8} {k.department or '-':<16}"
                  f" {','.join(k.services) if k.services else 'all':<24} {k.name}")
        return 0

    return loop.run(run())


def _revoke(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> int:
        db = await Database.open(settings.database)
        try:
            async with db.transaction() as conn:
                done = await open311_store.revoke_key(conn, args.key_id, SystemClock().now())
        finally:
            await db.close()
        if not done:
            print(f"gridbot: no active api key with id {args.key_id}", file=sys.stderr)
            return 1
        print(f"api key {args.key_id} revoked: it is refused from now on")
        return 0

    return loop.run(run())

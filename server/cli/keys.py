"""`certbound keys list|rotate`: the server's signing keys, on the database directly."""

from __future__ import annotations

import argparse
import time
from typing import Any

from certbound.app import open_database, open_vault
from certbound.cli.common import add_command_group, add_database_options, run_async, settings_from_args
from certbound.keys import KeyRing

__all__ = ["register"]


def register(commands: Any) -> None:
    sub = add_command_group(commands, "keys", "server signing keys")
    for name, help_text in (("list", "list signing keys"), ("rotate", "add a new active key; print its kid")):
        command = sub.add_parser(name, help=help_text)
        add_database_options(command)
        command.set_defaults(run=_run, action=name)


def _run(args: argparse.Namespace) -> int:
    return run_async(_keys(args))


async def _keys(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    vault = open_vault(settings)
    store = await open_database(settings)
    try:
        ring = KeyRing(
            store,
            vault,
            alg=settings.signing_alg,
            publish_after_retirement=settings.token_lifetime + settings.clock_skew,
        )
        if args.action == "rotate":
            print((await ring.rotate()).kid)
            return 0
        for record in await store.list_signing_keys():
            state = (
                "active"
                if record.active
                else f"retired {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(record.retired_at))}"
            )
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created_at))
            print(f"{record.kid}  {record.alg}  created {created}  {state}")
        return 0
    finally:
        await store.close()

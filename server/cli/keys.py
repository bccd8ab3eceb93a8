"""`certbound keys list|rotate`: the server's signing keys, on the database directly (`--db URL |
--config FILE`) or through a running server's admin API (`--url https://... --admin-token T`)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from certbound.cli.adminclient import AdminAPIError
from certbound.cli.backend import add_target_options, open_backend
from certbound.cli.common import add_command_group, run_async, settings_from_args
from certbound.cli.terminal import safe_for_terminal
from certbound.errors import ConfigError

__all__ = ["register"]


def register(commands: Any) -> None:
    sub = add_command_group(commands, "keys", "server signing keys")
    for name, help_text in (("list", "list signing keys"), ("rotate", "add a new active key; print its kid")):
        command = sub.add_parser(name, help=help_text)
        add_target_options(command, frozenset({"signing_alg", "issuer"}))
        command.set_defaults(run=_run, action=name)


def _run(args: argparse.Namespace) -> int:
    return run_async(_keys(args))


def _utc(timestamp: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


async def _keys(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        async with open_backend(args, settings) as backend:
            if args.action == "rotate":
                print(safe_for_terminal((await backend.rotate_key())["kid"]))
                return 0
            for key in await backend.list_keys():
                state = (
                    key["state"] if key["retired_at"] is None else f"{key['state']} {_utc(key['retired_at'])}"
                )
                line = f"{key['kid']}  {key['alg']}  created {_utc(key['created_at'])}  {state}"
                print(safe_for_terminal(line))
            return 0
    except AdminAPIError as exc:
        raise ConfigError(str(exc)) from None

"""`certbound serve`."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from server.cli.common import add_setting_flags, settings_from_args
from server.runtime import run_server

__all__ = ["register"]


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("serve", help="run the token server")
    add_setting_flags(parser)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from server.cli import configure_logging

    settings = settings_from_args(args)
    configure_logging(settings.log_level)
    if settings.workers != 1:
        from server.errors import ConfigError

        raise ConfigError("--workers greater than 1 is not supported yet")
    asyncio.run(run_server(settings))
    return 0

"""`certbound serve`."""

from __future__ import annotations

import argparse
from typing import Any

from certbound.cli.common import add_setting_flags, configure_logging, settings_from_args
from certbound.workers import serve

__all__ = ["register"]


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("serve", help="run the token server")
    add_setting_flags(parser)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(settings.log_level)
    serve(settings)
    return 0

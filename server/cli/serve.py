"""`certbound serve`."""

from __future__ import annotations

import argparse
from typing import Any

from certbound.cli.common import add_setting_flags, settings_from_args
from certbound.logformat import configure_logging
from certbound.proxycert import trusted_proxies
from certbound.proxytrust import log_wide_networks
from certbound.workers import serve

__all__ = ["register"]


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("serve", help="run the token server")
    add_setting_flags(parser)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(settings.log_level, settings.log_format)
    log_wide_networks(trusted_proxies(settings))
    serve(settings)
    return 0

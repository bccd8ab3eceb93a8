"""`certbound` command line (SPEC §3): argv -> Settings -> command. No logic beyond wiring.

Every failure a user can cause ends with exactly one line `certbound: error: ...` on stderr and
exit status 2 (1 for "not found" in the management commands); never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from certbound import __version__
from certbound.cli import certs, clients, demo_resource, keys, serve, tui
from certbound.cli.common import Parser, UsageError, usage_without_command
from certbound.cli.terminal import safe_for_terminal
from certbound.errors import ConfigError, StoreError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="certbound", description="OAuth 2.0 token server with mutual TLS")
    parser.add_argument("--version", action="version", version=f"certbound {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    parser.set_defaults(run=lambda args: usage_without_command(parser, commands))
    serve.register(commands)
    certs.register(commands)
    clients.register(commands)
    keys.register(commands)
    demo_resource.register(commands)
    tui.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        status: int = args.run(args)
        return status
    except (UsageError, ConfigError, StoreError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `certbound clients list | head`: the reader left; that is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _fail(message: str) -> NoReturn:
    # The message may quote a server's answer or a stored value: one line, nothing a terminal obeys.
    sys.stderr.write(f"certbound: error: {safe_for_terminal(message)}\n")
    sys.stderr.flush()
    raise SystemExit(2)

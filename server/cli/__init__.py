"""`certbound` command line (SPEC §3): argv -> Settings -> command. No logic beyond wiring.

Every failure a user can cause ends with exactly one line `certbound: error: ...` on stderr and
exit status 2 (1 for "not found" in the management commands); never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from certbound.cli import certs, clients, demo_resource, keys, serve, tui
from certbound.errors import ConfigError, StoreError

__all__ = ["main"]


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (SPEC §3), not usage text plus a message."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="certbound", description="OAuth 2.0 token server with mutual TLS")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
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
    sys.stderr.write(f"certbound: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(2)


def run_async(coroutine: object) -> int:
    """Run a command's coroutine; shared by the subcommand modules."""
    result: int = asyncio.run(coroutine)  # type: ignore[arg-type]
    return result


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

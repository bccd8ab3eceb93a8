"""`certbound tui [--url URL --admin-token T [--cacert PEM] | --db URL | --config FILE]` (SPEC §3):
manage clients and signing keys in a terminal UI, through the same back end as `certbound clients`
and `certbound keys`. Textual is imported only when this command runs."""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from typing import Any
from urllib.parse import urlsplit

from certbound.cli.adminclient import AdminAPIError
from certbound.cli.backend import add_target_options, admin_target, open_backend
from certbound.cli.common import run_async, settings_from_args
from certbound.errors import ConfigError

__all__ = ["register", "shown_url"]


def register(commands: Any) -> None:
    command: argparse.ArgumentParser = commands.add_parser(
        "tui", help="manage clients and signing keys in a terminal UI"
    )
    add_target_options(command, frozenset({"signing_alg"}))
    command.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    return run_async(_tui(args))


def shown_url(url: str) -> str:
    """Where the TUI works, for its header: the URL without user information or query, which may
    carry a password (`postgresql://user:password@host/db`, `?password=`)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


async def _tui(args: argparse.Namespace) -> int:
    from certbound.tui.app import CertboundApp

    settings = settings_from_args(args)
    admin = admin_target(args, settings)
    target = shown_url(admin.url if admin is not None else settings.db)
    # The back end is opened and tried before the screen is taken, so an unreachable server, a wrong
    # admin token or a database that cannot be read is one error line, not a screen of errors.
    async with open_backend(args, settings) as backend:
        try:
            await backend.list_keys()
        except AdminAPIError as exc:
            raise ConfigError(str(exc)) from None
        await CertboundApp(nullcontext(backend), target=target).run_async()
    return 0

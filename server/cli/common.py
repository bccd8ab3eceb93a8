"""What the subcommands share (SPEC §3): the argument parser, flags built from the settings table
with their defaults, choices and environment variables in `--help`, settings loading, command
groups, the event loop and logging set-up."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

from certbound.config import CONFIG_ENV, OPTIONS, Option, Settings, load_settings

__all__ = [
    "Parser",
    "UsageError",
    "add_command_group",
    "add_setting_flags",
    "configure_warnings",
    "option_help",
    "run_async",
    "settings_from_args",
]


class UsageError(Exception):
    """A command line argparse refuses; the CLI prints it as one `certbound: error:` line."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (SPEC §3), not usage text plus a message."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return " ".join(str(item) for item in value)
    return str(value)


def option_help(option: Option) -> str:
    """The option's help with what `--help` must show: its default and its environment variable
    (and, through the metavar, its choices). Escaped for argparse's %-formatting."""
    notes = []
    if option.default is not None and option.default != () and not option.is_flag:
        notes.append(f"default: {_shown(option.default)}")
    if option.repeatable:
        notes.append(f"repeatable; env {option.env_var}, ':'-separated")
    else:
        notes.append(f"env {option.env_var}")
    return f"{option.help} ({'; '.join(notes)})".replace("%", "%%")


def add_setting_flags(parser: argparse.ArgumentParser, names: set[str] | None = None) -> None:
    """Add `--flag` for each option in the settings table (or only those in `names`)."""
    parser.add_argument(
        "--config", type=Path, metavar="FILE.toml", help=f"TOML configuration file (env {CONFIG_ENV})"
    )
    for option in OPTIONS:
        if names is not None and option.name not in names:
            continue
        help_text = option_help(option)
        if option.is_flag:
            parser.add_argument(
                option.flag, dest=option.name, action="store_true", default=None, help=help_text
            )
            continue
        # Choices are shown, not enforced here: the option's parser refuses a bad value with the
        # same message whether it came from a flag, the environment or the file.
        metavar = "{" + ",".join(option.choices) + "}" if option.choices else option.metavar
        action = "append" if option.repeatable else "store"
        parser.add_argument(option.flag, dest=option.name, action=action, metavar=metavar, help=help_text)


def settings_from_args(args: argparse.Namespace) -> Settings:
    flags = {option.name: getattr(args, option.name, None) for option in OPTIONS}
    return load_settings(flags, config_file=args.config)


def add_command_group(commands: Any, name: str, help_text: str) -> Any:
    """`certbound NAME COMMAND ...`: a parser whose subcommands are added to the returned object.
    Given no command, it prints its help (naming the commands) and a one-line error."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=help_text)
    group = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=type(parser))
    parser.set_defaults(run=lambda args: usage_without_command(parser, group))
    return group


def usage_without_command(parser: argparse.ArgumentParser, group: Any) -> NoReturn:
    sys.stderr.write(parser.format_help())
    choices = ", ".join(group.choices)
    raise UsageError(f"{parser.prog} needs a command: {choices}")


def run_async(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine."""
    return asyncio.run(coroutine)


def configure_warnings() -> None:
    """Management commands: a warning the code logs (a weak or Basic-unsafe secret, a reversed
    subject DN) is one `certbound: warning: ...` line on stderr."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="certbound: warning: %(message)s")

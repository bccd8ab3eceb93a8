"""Helpers shared by subcommands: option flags from the settings table, settings loading."""

from __future__ import annotations

import argparse
from pathlib import Path

from certbound.config import OPTIONS, Settings, load_settings

__all__ = ["add_setting_flags", "settings_from_args"]


def add_setting_flags(parser: argparse.ArgumentParser, names: set[str] | None = None) -> None:
    """Add `--flag` for each option in the settings table (or only those in `names`)."""
    parser.add_argument("--config", type=Path, metavar="FILE.toml", help="TOML configuration file")
    for option in OPTIONS:
        if names is not None and option.name not in names:
            continue
        if option.is_flag:
            parser.add_argument(
                option.flag, dest=option.name, action="store_true", default=None, help=option.help
            )
        elif option.repeatable:
            parser.add_argument(
                option.flag, dest=option.name, action="append", metavar=option.metavar, help=option.help
            )
        else:
            parser.add_argument(option.flag, dest=option.name, metavar=option.metavar, help=option.help)


def settings_from_args(args: argparse.Namespace) -> Settings:
    flags = {option.name: getattr(args, option.name, None) for option in OPTIONS}
    return load_settings(flags, config_file=args.config)

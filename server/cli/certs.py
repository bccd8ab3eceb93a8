"""`certbound certs dev`: write the development PKI (certbound.devpki)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from certbound.cli.common import add_command_group
from certbound.devpki import write_dev_pki

__all__ = ["register"]


def register(commands: Any) -> None:
    sub = add_command_group(commands, "certs", "development certificates")
    dev = sub.add_parser("dev", help="write a trustme dev PKI (CA, server and client certificates)")
    dev.add_argument("--out", type=Path, default=Path("certs"), help="output directory (default certs/)")
    dev.set_defaults(run=_run_dev)


def _run_dev(args: argparse.Namespace) -> int:
    pki = write_dev_pki(args.out)
    for path in pki.written_files():
        print(path)
    # stderr: stdout lists the files, for scripts.
    sys.stderr.write(
        "certbound: warning: a development PKI, not for production: its CAs are throwaways, "
        "anyone with these files can impersonate the server or a client\n"
    )
    return 0

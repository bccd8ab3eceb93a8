"""What `certbound serve` prints on stdout once it serves (SPEC §3).

The first line, `listening on https://HOST:PORT`, is the contract tests and scripts wait for. The
next says which URL clients must use: the issuer, whose host may differ from the address listened
on (`localhost` vs `127.0.0.1`), and discovery and token audiences only work with it. With the
development PKI (`make run`) come the README's first two commands, ready to paste.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from certbound.config import OPTIONS, Settings
from certbound.devpki import DEV_CERTS_DIR, DevPKI

__all__ = ["DEMO_CLIENT_ID", "DEMO_SECRET", "announce_ready", "next_commands"]

#: The README's first client ("Get a token").
DEMO_CLIENT_ID = "demo"
DEMO_SECRET = "demo-secret-0123456789abcdefghij"

_DEFAULT_DB = next(option.default for option in OPTIONS if option.name == "db")


def _command() -> str:
    """This program as the user can type it again: `certbound` when that is on PATH, else the
    script's path (`.venv/bin/certbound` under `make run`), else `python -m certbound`."""
    script = Path(sys.argv[0]).absolute()
    if script.name != "certbound":
        return f"{shlex.quote(sys.executable)} -m certbound"
    on_path = shutil.which("certbound")
    if on_path is not None and Path(on_path).absolute() == script:
        return "certbound"
    inside = Path.cwd() in script.parents
    return shlex.quote(os.path.relpath(script) if inside else str(script))


def next_commands(settings: Settings, dev_pki: DevPKI) -> list[str]:
    """Register the README's demo client and get a token with curl."""
    database = f" --db {shlex.quote(settings.db)}" if settings.db != _DEFAULT_DB else ""
    credentials = shlex.quote(f"{DEMO_CLIENT_ID}:{DEMO_SECRET}")
    return [
        f"{_command()} clients add --method client_secret_basic --client-id {DEMO_CLIENT_ID} "
        f"--secret {shlex.quote(DEMO_SECRET)}{database}",
        f"curl --cacert {dev_pki.path('server-ca.pem')} -u {credentials} "
        f"-d grant_type=client_credentials -d scope=read {settings.token_endpoint}",
    ]


def announce_ready(url: str, settings: Settings) -> None:
    """`url` is where the server listens; `settings` are the ones it serves with."""
    lines = [
        f"listening on {url}",
        f"issuer {settings.issuer} (the URL clients use; metadata at "
        f"{settings.issuer}/.well-known/openid-configuration)",
    ]
    dev_pki = DevPKI(DEV_CERTS_DIR)
    if settings.tls_cert == dev_pki.server_cert:
        lines.append(f"with the development PKI in {dev_pki.directory}/, try in another terminal:")
        lines += [f"  {command}" for command in next_commands(settings, dev_pki)]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()

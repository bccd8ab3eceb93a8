"""`certbound demo-resource` (SPEC §3): a protected API built with server.resource.

`GET /resource` answers `{"client_id", "scope", "cnf"}` for a valid token whose binding matches the
connection's certificate, and RFC 6750 errors otherwise. JWT mode by default; introspection mode
(client_secret_basic) when given introspection credentials. With no TLS flags it uses the dev PKI in
certs/, like `serve`, and then trusts the dev server CA for the AS too.

Its flags are its own: they are not read from CERTBOUND_* variables or a TOML file, which hold the
token server's settings (CERTBOUND_PORT there must not move this server's port).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from server.devpki import ensure_dev_pki
from server.endpoints.http import json_response
from server.errors import ConfigError
from server.resource import (
    TOKEN_KEY,
    TokenVerifier,
    bearer_required,
    install_token_verifier,
    start_resource_server,
)
from server.runtime import DEV_CERTS_DIR
from server.tls import TLSConfigError

__all__ = ["create_demo_app", "register"]

log = logging.getLogger("certbound.resource")


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo-resource", help="a demo protected API that verifies certbound access tokens"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_port, default=9443, help="port to listen on")
    parser.add_argument("--issuer", type=_issuer, required=True, metavar="URL", help="the token server")
    parser.add_argument("--tls-cert", type=Path, metavar="PEM", help="server certificate chain")
    parser.add_argument("--tls-key", type=Path, metavar="PEM", help="server private key")
    parser.add_argument(
        "--client-ca", type=Path, action="append", default=[], metavar="PEM",
        help="CA advertised to clients choosing a certificate (repeatable; any certificate is accepted)",
    )  # fmt: skip
    parser.add_argument("--as-ca", type=Path, metavar="PEM", help="CA trusted for the token server's TLS")
    parser.add_argument("--audience", metavar="URI", help="required token audience (default: the issuer)")
    parser.add_argument(
        "--clock-skew", type=_seconds, default=60, metavar="SECONDS", help="leeway for exp/nbf in seconds"
    )
    parser.add_argument("--introspection-client-id", metavar="ID", help="introspect tokens as this client")
    parser.add_argument("--introspection-client-secret", metavar="S", help="that client's secret")
    parser.set_defaults(run=_run)


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value}")
    return port


def _seconds(value: str) -> int:
    seconds = int(value)
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {value}")
    return seconds


def _issuer(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment:
        # RFC 8414 §2, and the same spelling rule as `serve --issuer`.
        raise argparse.ArgumentTypeError("must be an https URL without query or fragment")
    return value.rstrip("/")


@bearer_required
async def _resource(request: web.Request) -> web.Response:
    token = request[TOKEN_KEY]
    return json_response({"client_id": token.client_id, "scope": token.scope, "cnf": token.cnf})


def create_demo_app(verifier: TokenVerifier) -> web.Application:
    """The demo API: `GET /resource` behind `bearer_required`."""
    app = web.Application()
    install_token_verifier(app, verifier)
    app.router.add_get("/resource", _resource)
    return app


@dataclass(frozen=True)
class _TLSFiles:
    cert: Path
    key: Path
    client_ca: tuple[Path, ...]
    as_ca: Path | None


def _tls_files(args: argparse.Namespace) -> _TLSFiles:
    """The flags' files, or the dev PKI in certs/ when no TLS flag is given (SPEC §3)."""
    if args.tls_cert is None and args.tls_key is None:
        pki = ensure_dev_pki(DEV_CERTS_DIR)
        log.warning(
            "no --tls-cert given: using the development PKI in %s (not for production)", DEV_CERTS_DIR
        )
        files = _TLSFiles(
            pki.server_cert,
            pki.server_key,
            tuple(args.client_ca) or (pki.client_ca,),
            args.as_ca or pki.path("server-ca.pem"),
        )
    elif args.tls_cert is None or args.tls_key is None:
        raise ConfigError("--tls-cert and --tls-key go together")
    else:
        files = _TLSFiles(args.tls_cert, args.tls_key, tuple(args.client_ca), args.as_ca)
    for path in files.client_ca:
        if not path.is_file():
            raise ConfigError(f"--client-ca file not found: {path}")
    if files.as_ca is not None and not files.as_ca.is_file():
        raise ConfigError(f"--as-ca file not found: {files.as_ca}")
    return files


def _verifier(args: argparse.Namespace, as_ca: Path | None) -> TokenVerifier:
    if (args.introspection_client_id is None) != (args.introspection_client_secret is None):
        raise ConfigError("--introspection-client-id and --introspection-client-secret go together")
    try:
        return TokenVerifier(
            issuer=args.issuer,
            audience=args.audience,
            ca_file=as_ca,
            clock_skew=args.clock_skew,
            introspection_client_id=args.introspection_client_id,
            introspection_client_secret=args.introspection_client_secret,
        )
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load --as-ca {as_ca}: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    from server.cli import configure_logging

    configure_logging("info")
    files = _tls_files(args)
    verifier = _verifier(args, files.as_ca)
    asyncio.run(_serve(args, files, verifier))
    return 0


async def _serve(args: argparse.Namespace, files: _TLSFiles, verifier: TokenVerifier) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        server = await start_resource_server(
            create_demo_app(verifier),
            tls_cert=files.cert,
            tls_key=files.key,
            client_ca=files.client_ca,
            host=args.host,
            port=args.port,
        )
    except TLSConfigError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    # The ready line is part of the CLI contract: tests and scripts wait for it.
    sys.stdout.write(f"listening on {server.url}\n")
    sys.stdout.flush()
    mode = "introspection" if verifier.uses_introspection else "JWT"
    log.info("verifying %s tokens from %s for audience %s", mode, verifier.issuer, verifier.audience)
    await stop.wait()
    await server.stop()

"""`certbound demo-resource` (SPEC §3): a protected API built with certbound.resource.

`GET /resource` answers `{"client_id", "scope", "cnf"}` for a valid token whose binding matches the
connection's certificate, and RFC 6750 errors otherwise. JWT mode by default (it cannot see
revocation, and says so when it starts); introspection mode (client_secret_basic) when given
introspection credentials, caching nothing unless --introspection-cache-ttl. Behind a proxy,
--trusted-proxy, --client-cert-header and --trusted-proxy-cert-sha256 work as for `serve`. With no
TLS flags it uses the dev PKI in certs/, like `serve`, and then trusts the dev server CA for the AS too.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from certbound.config import OPTIONS, Option, Settings, read_secret_file
from certbound.endpoints.http import json_response
from certbound.errors import ConfigError
from certbound.logformat import configure_logging
from certbound.resource import (
    TOKEN_KEY,
    TokenVerifier,
    TrustedProxies,
    bearer_required,
    install_token_verifier,
    start_resource_server,
)
from certbound.runtime import DEV_CERTS_DIR, resolve_tls_files
from certbound.tls import TLSConfigError

__all__ = ["create_demo_app", "register"]

log = logging.getLogger("certbound.resource")

_CERT_AND_KEY = "--tls-cert and --tls-key go together"


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "demo-resource", help="a demo protected API that verifies certbound access tokens"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_like_serve("port"), default=9443, help="port to listen on")
    parser.add_argument(
        "--issuer", type=_like_serve("issuer"), required=True, metavar="URL", help="the token server"
    )
    parser.add_argument("--tls-cert", type=Path, metavar="PEM", help="server certificate chain")
    parser.add_argument("--tls-key", type=Path, metavar="PEM", help="server private key")
    parser.add_argument(
        "--client-ca", type=Path, action="append", default=[], metavar="PEM",
        help="CA advertised to clients choosing a certificate (repeatable; any certificate is accepted)",
    )  # fmt: skip
    parser.add_argument("--as-ca", type=Path, metavar="PEM", help="CA trusted for the token server's TLS")
    parser.add_argument("--audience", metavar="URI", help="required token audience (default: the issuer)")
    parser.add_argument(
        "--clock-skew",
        type=_like_serve("clock_skew"),
        default=60,
        metavar="SECONDS",
        help="leeway for exp/nbf in seconds",
    )
    parser.add_argument("--introspection-client-id", metavar="ID", help="introspect tokens as this client")
    parser.add_argument("--introspection-client-secret", metavar="S", help="that client's secret")
    parser.add_argument(
        "--introspection-client-secret-file",
        type=Path,
        metavar="FILE",
        help="read that client's secret from FILE (keeps it off the command line)",
    )
    parser.add_argument(
        "--introspection-cache-ttl",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="cache introspection answers this long (default 0: a revoked token is refused at once)",
    )
    for name in ("trusted_proxy", "trusted_proxy_cert_sha256"):
        option = _serve_option(name)
        parser.add_argument(
            option.flag, type=_like_serve(name), action="append", default=[], metavar=option.metavar,
            help=option.help + " (repeatable)",
        )  # fmt: skip
    for name in ("client_cert_header", "header_timeout"):
        option = _serve_option(name)
        parser.add_argument(
            option.flag,
            type=_like_serve(name),
            default=option.default,
            metavar=option.metavar,
            help=option.help,
        )
    parser.set_defaults(run=_run)


def _serve_option(name: str) -> Option:
    return next(option for option in OPTIONS if option.name == name)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError("must be >= 0")
    return seconds


def _like_serve(name: str) -> Callable[[str], Any]:
    """The argparse type of `serve`'s flag of the same name (one parser per option, certbound.config)."""
    option = _serve_option(name)

    def parse(value: str) -> Any:
        try:
            return option.parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


@bearer_required
async def _resource(request: web.Request) -> web.Response:
    token = request[TOKEN_KEY]
    return json_response({"client_id": token.client_id, "scope": token.scope, "cnf": token.cnf})


def create_demo_app(
    verifier: TokenVerifier, trusted_proxies: TrustedProxies | None = None
) -> web.Application:
    """The demo API: `GET /resource` behind `bearer_required`."""
    app = web.Application()
    install_token_verifier(app, verifier, trusted_proxies=trusted_proxies)
    app.router.add_get("/resource", _resource)
    return app


@dataclass(frozen=True)
class _TLSFiles:
    cert: Path
    key: Path
    client_ca: tuple[Path, ...]
    as_ca: Path | None


def _tls_files(args: argparse.Namespace) -> _TLSFiles:
    """The flags' files, or the dev PKI in certs/ when no TLS flag is given, as for `serve`."""
    if args.tls_key is not None and args.tls_cert is None:
        raise ConfigError(_CERT_AND_KEY)
    resolved = resolve_tls_files(
        Settings(tls_cert=args.tls_cert, tls_key=args.tls_key, client_ca=tuple(args.client_ca))
    )
    if resolved.tls_cert is None or resolved.tls_key is None:
        raise ConfigError(_CERT_AND_KEY)
    as_ca = args.as_ca
    if as_ca is None and args.tls_cert is None:
        # The dev PKI's server CA signed the dev token server's certificate too.
        as_ca = DEV_CERTS_DIR / "server-ca.pem"
    for path in resolved.client_ca:
        if not path.is_file():
            raise ConfigError(f"--client-ca file not found: {path}")
    if as_ca is not None and not as_ca.is_file():
        raise ConfigError(f"--as-ca file not found: {as_ca}")
    return _TLSFiles(resolved.tls_cert, resolved.tls_key, resolved.client_ca, as_ca)


def _introspection_secret(args: argparse.Namespace) -> str | None:
    given: str | None = args.introspection_client_secret
    if args.introspection_client_secret_file is None:
        return given
    if given is not None:
        raise ConfigError("give --introspection-client-secret or its -file, not both")
    return read_secret_file(args.introspection_client_secret_file, "--introspection-client-secret")


def _verifier(args: argparse.Namespace, as_ca: Path | None) -> TokenVerifier:
    secret = _introspection_secret(args)
    if (args.introspection_client_id is None) != (secret is None):
        raise ConfigError("--introspection-client-id and --introspection-client-secret go together")
    try:
        return TokenVerifier(
            issuer=args.issuer,
            audience=args.audience,
            ca_file=as_ca,
            clock_skew=args.clock_skew,
            introspection_client_id=args.introspection_client_id,
            introspection_client_secret=secret,
            introspection_cache_ttl=args.introspection_cache_ttl,
        )
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load --as-ca {as_ca}: {exc}") from None


def _run(args: argparse.Namespace) -> int:
    configure_logging("info")
    files = _tls_files(args)
    proxies = _trusted_proxies(args)
    verifier = _verifier(args, files.as_ca)
    asyncio.run(_serve(args, files, verifier, proxies))
    return 0


def _trusted_proxies(args: argparse.Namespace) -> TrustedProxies | None:
    if args.trusted_proxy_cert_sha256 and not args.trusted_proxy:
        raise ConfigError("--trusted-proxy-cert-sha256 needs --trusted-proxy")
    if not args.trusted_proxy:
        return None
    return TrustedProxies(
        args.trusted_proxy, header_format=args.client_cert_header, cert_sha256=args.trusted_proxy_cert_sha256
    )


async def _serve(
    args: argparse.Namespace, files: _TLSFiles, verifier: TokenVerifier, proxies: TrustedProxies | None
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        server = await start_resource_server(
            create_demo_app(verifier, proxies),
            tls_cert=files.cert,
            tls_key=files.key,
            client_ca=files.client_ca,
            host=args.host,
            port=args.port,
            header_timeout=args.header_timeout,
        )
    except TLSConfigError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    # The ready line is part of the CLI contract: tests and scripts wait for it.
    sys.stdout.write(f"listening on {server.url}\n")
    sys.stdout.flush()
    log.info("%s", verifier.describe())
    await stop.wait()
    await server.stop()

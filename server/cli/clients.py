"""`certbound clients add|list|show|update|delete|rotate-secret|legacy-audience` (SPEC §3, §7, §13).

Works on the database directly (`--db URL | --config FILE`, through the same ClientManager as the
server) or on a running server's admin API (`--url https://... --admin-token T [--cacert PEM]`, or
CERTBOUND_URL, CERTBOUND_ADMIN_TOKEN and CERTBOUND_CACERT; a `--db` flag beats CERTBOUND_URL).
Human tables by default, `--json` for scripts. Exit codes: 0 ok, 1 not found, 2 bad input with one
`certbound: error:` line on stderr; advice on a valid but doubtful registration (certbound.clientadvice)
is a `certbound: warning:` line.

Workload identity clients (SPEC §13) are made here or through the admin API only: `--method
federated_jwt --federated-issuer NAME --federated-claims JSON`, `--method spiffe_jwt --spiffe-id ID`,
or `--method tls_client_auth --spiffe-id ID` for an X.509-SVID. `legacy-audience` lists the clients
whose assertions were accepted only because of `--assertion-audience legacy` (how many, last when).

A chosen secret can stay off the command line (where every local user reads it in /proc):
`--secret -` reads it from stdin (without echo on a terminal), `--secret-file FILE` from a file;
the admin token for --url comes from CERTBOUND_ADMIN_TOKEN or --admin-token-file.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from certbound.authmethods import METHODS
from certbound.cli.adminclient import AdminAPIError
from certbound.cli.backend import Backend, add_target_options, open_backend
from certbound.cli.common import add_command_group, configure_warnings, run_async, settings_from_args
from certbound.cli.terminal import json_for_terminal, safe_for_terminal
from certbound.clientmeta import LEGACY_AUDIENCE_ASSERTIONS, LEGACY_AUDIENCE_LAST_SEEN
from certbound.config import read_secret_file
from certbound.errors import ConfigError, InvalidClientMetadataError, InvalidRedirectUriError
from certbound.jose import jwk_set_from_pem

__all__ = ["register"]

#: RFC 8705 §2.1.2 (and SPEC §13): a tls_client_auth client registers exactly one of these;
#: setting one with a flag drops the others.
_SUBJECT_FLAGS = {
    "subject_dn": "tls_client_auth_subject_dn",
    "san_dns": "tls_client_auth_san_dns",
    "san_uri": "tls_client_auth_san_uri",
    "san_ip": "tls_client_auth_san_ip",
    "san_email": "tls_client_auth_san_email",
    "spiffe_id": "spiffe_id",
}


def _add_target_options(command: argparse.ArgumentParser) -> None:
    add_target_options(command)
    command.add_argument("--json", action="store_true", help="print JSON")


def _add_metadata_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--method",
        choices=list(METHODS),
        metavar="METHOD",
        help=f"token_endpoint_auth_method: {', '.join(METHODS)} (add: default client_secret_basic)",
    )
    command.add_argument(
        "--secret", help="client secret, 8+ characters, or - to read it from stdin (default: generated)"
    )
    command.add_argument("--secret-file", type=Path, metavar="FILE", help="read the client secret from FILE")
    command.add_argument("--name", dest="client_name", help="client_name")
    command.add_argument("--scope", dest="client_scope", help="space-separated scopes (default: all)")
    command.add_argument("--grant-type", action="append", dest="grant_types", help="grant type (repeatable)")
    command.add_argument("--redirect-uri", action="append", dest="redirect_uris", help="(repeatable)")
    command.add_argument("--subject-dn", help="tls_client_auth_subject_dn (RFC 4514)")
    command.add_argument("--san-dns", help="tls_client_auth_san_dns")
    command.add_argument("--san-uri", help="tls_client_auth_san_uri")
    command.add_argument("--san-ip", help="tls_client_auth_san_ip")
    command.add_argument("--san-email", help="tls_client_auth_san_email")
    command.add_argument(
        "--spiffe-id", help="spiffe_id: spiffe_jwt's workload, or tls_client_auth's X.509-SVID subject"
    )
    command.add_argument("--federated-issuer", help="federated_jwt: an issuer name of the federation file")
    command.add_argument(
        "--federated-claims",
        metavar="JSON",
        help='federated_jwt: claim rules, e.g. \'{"repository_id": "123", "ref": "refs/heads/*"}\'',
    )
    command.add_argument(
        "--jwks-file",
        type=Path,
        metavar="FILE",
        help="the client's jwks: a JWK Set (JSON), or PEM certificates or public keys (converted)",
    )
    command.add_argument("--jwks-uri", help="jwks_uri (https)")
    command.add_argument("--signing-alg", dest="client_signing_alg", help="token_endpoint_auth_signing_alg")
    command.add_argument(
        "--opaque",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="issue reference tokens instead of JWTs",
    )
    command.add_argument(
        "--certificate-bound",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="tls_client_certificate_bound_access_tokens (default: true for the mTLS methods)",
    )
    command.add_argument(
        "--dpop-bound",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="dpop_bound_access_tokens: token requests must carry a DPoP proof (RFC 9449; default: no)",
    )
    command.add_argument(
        "--data", type=Path, metavar="FILE", help="JSON file with RFC 7591 metadata ('-': standard input)"
    )


def register(commands: Any) -> None:
    sub = add_command_group(commands, "clients", "manage clients")

    add = sub.add_parser("add", help="register a client; prints its client_id and, once, its secret")
    add.add_argument("--client-id", help="client_id (default: generated)")
    _add_metadata_flags(add)
    _add_target_options(add)
    add.set_defaults(run=_run, action=_add)

    listing = sub.add_parser("list", help="list clients")
    listing.add_argument(
        "--method",
        choices=list(METHODS),
        metavar="METHOD",
        help="only clients of this token_endpoint_auth_method",
    )
    _add_target_options(listing)
    listing.set_defaults(run=_run, action=_list)

    legacy = sub.add_parser(
        "legacy-audience",
        help="clients whose assertions were accepted only because of --assertion-audience legacy",
    )
    _add_target_options(legacy)
    legacy.set_defaults(run=_run, action=_legacy_audience)

    update = sub.add_parser(
        "update", help="change a client: flags and --data are merged into its metadata (null deletes)"
    )
    update.add_argument("client_id")
    _add_metadata_flags(update)
    _add_target_options(update)
    update.set_defaults(run=_run, action=_update)

    for name, action, help_text in (
        ("show", _show, "show one client"),
        ("delete", _delete, "delete a client and its reference tokens"),
        ("rotate-secret", _rotate, "replace a client's secret; prints the new one"),
    ):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("client_id")
        _add_target_options(command)
        command.set_defaults(run=_run, action=action)


def _run(args: argparse.Namespace) -> int:
    configure_warnings()
    return run_async(_execute(args))


async def _execute(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        async with open_backend(args, settings) as backend:
            status: int = await args.action(args, backend)
            return status
    except (InvalidClientMetadataError, InvalidRedirectUriError) as exc:
        raise ConfigError(f"{exc.error}: {exc.description}") from None
    except AdminAPIError as exc:
        raise ConfigError(str(exc)) from None


# metadata from flags
def _read_bytes(path: Path, what: str) -> bytes:
    """A file's bytes, or standard input's for `-`."""
    try:
        return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from None


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"cannot read {what}: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must hold a JSON object")
    return value


def _read_jwks(path: Path) -> dict[str, Any]:
    """A JWK Set file, or PEM certificates and public keys turned into one (`x5c` kept)."""
    data = _read_bytes(path, "--jwks-file")
    if b"-----BEGIN " not in data:
        return _json_object(data, f"--jwks-file {path}")
    try:
        return jwk_set_from_pem(data)
    except ValueError as exc:
        raise ConfigError(f"--jwks-file {path}: {exc}") from None


def _chosen_secret(args: argparse.Namespace) -> str | None:
    """--secret VALUE, --secret - (stdin) or --secret-file FILE; None: let the server generate one."""
    if args.secret is not None and args.secret_file is not None:
        raise ConfigError("give --secret or --secret-file, not both")
    if args.secret_file is not None:
        return read_secret_file(args.secret_file, "--secret")
    given: str | None = args.secret
    if given != "-":  # a secret of 8+ characters is never "-"
        return given
    interactive = sys.stdin.isatty()
    secret = getpass.getpass("client secret: ") if interactive else sys.stdin.readline().rstrip("\r\n")
    if not secret:
        raise ConfigError("--secret -: no secret on stdin")
    return secret


def _metadata_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """--data first, then the flags on top of it."""
    metadata: dict[str, Any] = {}
    if args.data is not None:
        metadata = _json_object(_read_bytes(args.data, "--data file"), f"--data file {args.data}")
    simple = {
        "token_endpoint_auth_method": args.method,
        "client_name": args.client_name,
        "scope": args.client_scope,
        "grant_types": args.grant_types,
        "redirect_uris": args.redirect_uris,
        "jwks_uri": args.jwks_uri,
        "token_endpoint_auth_signing_alg": args.client_signing_alg,
        "tls_client_certificate_bound_access_tokens": args.certificate_bound,
        "dpop_bound_access_tokens": args.dpop_bound,
        "federated_issuer": args.federated_issuer,
    }
    metadata.update({name: value for name, value in simple.items() if value is not None})
    if args.opaque is not None:
        metadata["access_token_as_jwt"] = not args.opaque
    if args.jwks_file is not None:
        metadata["jwks"] = _read_jwks(args.jwks_file)
    if args.federated_claims is not None:
        metadata["federated_claims"] = _json_object(args.federated_claims.encode(), "--federated-claims")
    # jwks xor jwks_uri, and one subject field: a flag replaces its alternatives.
    if args.jwks_file is not None:
        metadata["jwks_uri"] = None
    elif args.jwks_uri is not None:
        metadata["jwks"] = None
    subjects = {field: getattr(args, flag) for flag, field in _SUBJECT_FLAGS.items()}
    if any(value is not None for value in subjects.values()):
        metadata.update(subjects)
    return metadata


# output: every value may come from a registering client (certbound.cli.terminal)
def _print_json(value: Any) -> None:
    print(json_for_terminal(value))


def _text(value: Any) -> str:
    if isinstance(value, str):
        return safe_for_terminal(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return " ".join(safe_for_terminal(item) for item in value)
    return safe_for_terminal(json.dumps(value, ensure_ascii=False))


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _print_client(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(view)
    else:
        _print_table([(_text(name), _text(value)) for name, value in view.items()])


def _print_credentials(view: dict[str, Any], as_json: bool) -> None:
    """client_id and, when just issued, the secret: the only time it is shown."""
    if as_json:
        _print_json(view)
        return
    print(f"client_id: {_text(view['client_id'])}")
    if "client_secret" in view:
        print(f"client_secret: {_text(view['client_secret'])}")


def _without_given_secret(view: dict[str, Any], secret: str | None) -> dict[str, Any]:
    """The operator knows a secret they gave: it is not printed back into scrollback and logs."""
    return {name: value for name, value in view.items() if secret is None or name != "client_secret"}


def _not_found(client_id: str) -> int:
    sys.stderr.write(f"certbound: error: no client {safe_for_terminal(client_id)}\n")
    return 1


# commands
async def _add(args: argparse.Namespace, backend: Backend) -> int:
    metadata = _metadata_from_args(args)
    metadata = {name: value for name, value in metadata.items() if value is not None}
    secret = _chosen_secret(args)
    view = await backend.add(metadata, client_id=args.client_id, secret=secret)
    _print_credentials(_without_given_secret(view, secret), args.json)
    return 0


async def _list(args: argparse.Namespace, backend: Backend) -> int:
    views = await backend.list_clients(method=args.method)
    if args.json:
        _print_json(views)
        return 0
    rows = [("CLIENT_ID", "METHOD", "GRANT_TYPES", "SCOPE", "NAME")]
    rows += [
        (
            _text(view["client_id"]),
            _text(view["token_endpoint_auth_method"]),
            _text(view.get("grant_types", [])) or "-",
            _text(view.get("scope", "")) or "-",
            _text(view.get("client_name", "-")),
        )
        for view in views
    ]
    _print_table(rows)
    return 0


async def _legacy_audience(args: argparse.Namespace, backend: Backend) -> int:
    views = [view for view in await backend.list_clients(method=None) if view.get(LEGACY_AUDIENCE_ASSERTIONS)]
    views.sort(key=lambda view: view.get(LEGACY_AUDIENCE_LAST_SEEN) or 0, reverse=True)
    if args.json:
        _print_json(
            [
                {
                    name: view.get(name)
                    for name in ("client_id", LEGACY_AUDIENCE_ASSERTIONS, LEGACY_AUDIENCE_LAST_SEEN)
                }
                for view in views
            ]
        )
        return 0
    rows = [("CLIENT_ID", "LEGACY_ASSERTIONS", "LAST_SEEN", "NAME")]
    rows += [
        (
            _text(view["client_id"]),
            str(view[LEGACY_AUDIENCE_ASSERTIONS]),
            _timestamp(view.get(LEGACY_AUDIENCE_LAST_SEEN)),
            _text(view.get("client_name", "-")),
        )
        for view in views
    ]
    _print_table(rows)
    return 0


def _timestamp(value: object) -> str:
    if not isinstance(value, int):
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))


async def _show(args: argparse.Namespace, backend: Backend) -> int:
    view = await backend.show(args.client_id)
    if view is None:
        return _not_found(args.client_id)
    _print_client(view, args.json)
    return 0


async def _update(args: argparse.Namespace, backend: Backend) -> int:
    changes = _metadata_from_args(args)
    secret = _chosen_secret(args)
    if not changes and secret is None:
        raise ConfigError("nothing to update: give metadata flags, --secret or --data")
    view = await backend.update(args.client_id, changes, secret=secret)
    if view is None:
        return _not_found(args.client_id)
    _print_client(_without_given_secret(view, secret), args.json)
    return 0


async def _delete(args: argparse.Namespace, backend: Backend) -> int:
    if not await backend.delete(args.client_id):
        return _not_found(args.client_id)
    if args.json:
        _print_json({"deleted": args.client_id})
    else:
        print(f"deleted {safe_for_terminal(args.client_id)}")
    return 0


async def _rotate(args: argparse.Namespace, backend: Backend) -> int:
    view = await backend.rotate(args.client_id)
    if view is None:
        return _not_found(args.client_id)
    _print_credentials(view, args.json)
    return 0

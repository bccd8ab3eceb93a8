"""Settings: the one place that reads configuration (flags, CERTBOUND_* environment, TOML file).

Precedence is flag > environment > file > default (SPEC §3). Every option is declared once in
`OPTIONS`; the CLI builds its flags from that table, so names cannot drift apart.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from certbound.errors import ConfigError

__all__ = [
    "OPTIONS",
    "SIGNING_ALGS",
    "Option",
    "Settings",
    "load_settings",
]

#: Algorithms the server may sign access tokens with (issue: server signing keys).
SIGNING_ALGS = ("ES256", "RS256", "PS256", "EdDSA")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _as_str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def _as_int(minimum: int, maximum: int | None = None) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            number = int(value)
        else:
            raise ValueError("expected an integer")
        if number < minimum or (maximum is not None and number > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ValueError(f"must be {bound}")
        return number

    return parse


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ValueError("expected 1/0/true/false")


def _one_of(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = _as_str(value)
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


def _as_path(value: object) -> Path:
    return Path(_as_str(value))


def _as_cidr(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(_as_str(value), strict=False)
    except ValueError as exc:
        raise ValueError(f"not a CIDR: {value!r}") from exc


def _as_issuer(value: object) -> str:
    text = _as_str(value)
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.netloc or parts.query or parts.fragment:
        # RFC 8414 §2: an https URL with no query or fragment.
        raise ValueError("must be an https URL without query or fragment")
    return text.rstrip("/")


def _as_db(value: object) -> str:
    text = _as_str(value)
    if not (text.startswith("sqlite://") or text.startswith(("postgresql://", "postgres://"))):
        raise ValueError("must be sqlite:///PATH, sqlite://:memory: or postgresql://...")
    return text


def _as_scopes(value: object) -> tuple[str, ...]:
    scopes = tuple(_as_str(value).split())
    if not scopes:
        raise ValueError("must name at least one scope")
    for scope in scopes:
        # RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E
        if any(ch in '"\\' or not 0x21 <= ord(ch) <= 0x7E for ch in scope):
            raise ValueError(f"invalid scope token {scope!r}")
    return scopes


@dataclass(frozen=True)
class Option:
    """One setting: its name (flag `--name-with-dashes`, TOML `name_with_underscores`)."""

    name: str
    parse: Callable[[object], Any]
    default: Any
    help: str
    repeatable: bool = False
    is_flag: bool = False
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env_var(self) -> str:
        return "CERTBOUND_" + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option("host", _as_str, "127.0.0.1", "address to listen on"),
    Option("port", _as_int(0, 65535), 8443, "port to listen on"),
    Option("issuer", _as_issuer, None, "issuer identifier (default https://localhost:PORT)", metavar="URL"),
    Option("tls_cert", _as_path, None, "server certificate chain (PEM)", metavar="PEM"),
    Option("tls_key", _as_path, None, "server private key (PEM)", metavar="PEM"),
    Option(
        "client_ca", _as_path, (), "CA bundle trusted for tls_client_auth", repeatable=True, metavar="PEM"
    ),
    Option("db", _as_db, "sqlite:///data/certbound.db", "database URL", metavar="URL"),
    Option(
        "master_key_file",
        _as_path,
        None,
        "key file that encrypts client secrets and signing keys at rest (default: beside the SQLite file)",
        metavar="FILE",
    ),
    Option("registration", _one_of("open", "token", "closed"), "open", "dynamic registration mode"),
    Option("registration_token", _as_str, None, "bearer token for --registration token", metavar="TOKEN"),
    Option("admin_token", _as_str, None, "bearer token for the admin API", metavar="TOKEN"),
    Option("workers", _as_int(1, 64), 1, "worker processes"),
    Option(
        "outbound_ca",
        _as_path,
        (),
        "extra CAs trusted when fetching jwks_uri",
        repeatable=True,
        metavar="PEM",
    ),
    Option("allow_private_fetch", _as_bool, False, "allow jwks_uri on private addresses", is_flag=True),
    Option("assertion_audience", _one_of("strict", "legacy"), "strict", "accepted client assertion aud"),
    Option("assertion_max_lifetime", _as_int(1), 300, "max seconds between now and assertion exp"),
    Option("clock_skew", _as_int(0, 3600), 60, "allowed clock skew in seconds"),
    Option("scopes", _as_scopes, ("read", "write"), "scopes_supported, space separated"),
    Option("drain_timeout", _as_int(0, 3600), 10, "seconds to finish in-flight requests on shutdown"),
    Option("mtls_port", _as_int(1, 65535), None, "extra listener that requests client certificates"),
    Option(
        "trusted_proxy",
        _as_cidr,
        (),
        "proxy allowed to pass client certs in headers",
        repeatable=True,
        metavar="CIDR",
    ),
    Option("client_cert_header", _one_of("rfc9440", "xfcc", "nginx"), "rfc9440", "proxy header format"),
    Option("client_crl", _as_path, (), "CRL checked for tls_client_auth", repeatable=True, metavar="PEM"),
    Option("token_lifetime", _as_int(1), 600, "access token lifetime in seconds"),
    Option(
        "client_secret_lifetime",
        _as_int(0),
        0,
        "seconds a newly issued client secret is valid (0: never expires)",
    ),
    Option("signing_alg", _one_of(*SIGNING_ALGS), "ES256", "algorithm of new signing keys"),
    Option("log_level", _one_of("debug", "info", "warning", "error"), "info", "log level"),
    Option("handshake_timeout", _as_int(1, 300), 10, "seconds a TLS handshake may take after accept"),
    Option("header_timeout", _as_int(1, 300), 10, "seconds request headers may take after their first byte"),
    Option("keepalive_timeout", _as_int(1, 3600), 60, "seconds an idle keep-alive connection stays open"),
    # Connection bounds (issue 9): what an unauthenticated peer can hold of one worker.
    Option(
        "request_timeout",
        _as_int(1, 3600),
        30,
        "seconds a whole request (headers and body) may take after its first byte",
    ),
    Option("max_connections", _as_int(1), 1024, "open connections per worker"),
    Option(
        "max_connections_per_ip",
        _as_int(1),
        256,
        "open connections per worker from one IPv4 address or IPv6 /64 (--trusted-proxy exempt)",
    ),
    Option(
        "max_handshakes_per_ip",
        _as_int(1),
        64,
        "TLS handshakes in progress per worker from one IPv4 address or IPv6 /64 (--trusted-proxy exempt)",
    ),
)

_BY_NAME = {option.name: option for option in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """Everything the server needs, resolved and validated. Immutable once built."""

    host: str = "127.0.0.1"
    port: int = 8443
    issuer: str = "https://localhost:8443"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: tuple[Path, ...] = ()
    db: str = "sqlite:///data/certbound.db"
    master_key_file: Path | None = None
    registration: str = "open"
    registration_token: str | None = None
    admin_token: str | None = None
    workers: int = 1
    outbound_ca: tuple[Path, ...] = ()
    allow_private_fetch: bool = False
    assertion_audience: str = "strict"
    assertion_max_lifetime: int = 300
    clock_skew: int = 60
    scopes: tuple[str, ...] = ("read", "write")
    drain_timeout: int = 10
    mtls_port: int | None = None
    trusted_proxy: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    client_cert_header: str = "rfc9440"
    client_crl: tuple[Path, ...] = ()
    token_lifetime: int = 600
    client_secret_lifetime: int = 0
    signing_alg: str = "ES256"
    log_level: str = "info"
    handshake_timeout: int = 10
    header_timeout: int = 10
    keepalive_timeout: int = 60
    request_timeout: int = 30
    max_connections: int = 1024
    max_connections_per_ip: int = 256
    max_handshakes_per_ip: int = 64
    config: Path | None = field(default=None, compare=False)

    @property
    def token_endpoint(self) -> str:
        return self.issuer + "/token"

    @property
    def mtls_base_url(self) -> str | None:
        """The base URL of the --mtls-port listener (same host as the issuer), or None."""
        if self.mtls_port is None:
            return None
        parts = urlsplit(self.issuer)
        host = parts.hostname or "localhost"
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.mtls_port}{parts.path}"

    @property
    def sqlite_path(self) -> str | None:
        """The SQLite file path (or ':memory:') when the database is SQLite."""
        if not self.db.startswith("sqlite://"):
            return None
        rest = self.db[len("sqlite://") :]
        return ":memory:" if rest in (":memory:", "/:memory:") else rest[1:] if rest.startswith("/") else rest


def _parse(option: Option, raw: object, source: str) -> Any:
    try:
        if option.repeatable:
            items: Sequence[object]
            if isinstance(raw, str):
                items = [part for part in raw.split(":") if part] if source == "env" else [raw]
            elif isinstance(raw, list | tuple):
                items = raw
            else:
                raise ValueError("expected a list")
            return tuple(option.parse(item) for item in items)
        return option.parse(raw)
    except ValueError as exc:
        where = {"flag": option.flag, "env": option.env_var, "file": option.name}[source]
        raise ConfigError(f"invalid value for {where}: {exc}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


def load_settings(
    flags: Mapping[str, object],
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Resolve settings. `flags` holds only options given on the command line (None = not given)."""
    environ = os.environ if environ is None else environ
    config_file = config_file or (
        Path(environ["CERTBOUND_CONFIG"]) if environ.get("CERTBOUND_CONFIG") else None
    )
    from_file = _read_toml(config_file) if config_file else {}
    unknown = sorted(set(from_file) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown option in {config_file}: {', '.join(unknown)}")

    values: dict[str, Any] = {}
    for option in OPTIONS:
        flag_value = flags.get(option.name)
        if flag_value is not None and flag_value != [] and flag_value is not False:
            values[option.name] = _parse(option, flag_value, "flag")
        elif option.env_var in environ:
            values[option.name] = _parse(option, environ[option.env_var], "env")
        elif option.name in from_file:
            values[option.name] = _parse(option, from_file[option.name], "file")
    if values.get("issuer") is None:
        values["issuer"] = f"https://localhost:{values.get('port', 8443)}"
    if values.get("registration") == "token" and not values.get("registration_token"):
        raise ConfigError("--registration token needs --registration-token")
    if (values.get("tls_cert") is None) != (values.get("tls_key") is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    return Settings(config=config_file, **{k: v for k, v in values.items() if v is not None})

"""Settings: the one place that reads configuration (flags, CERTBOUND_* environment, TOML file).

Precedence is flag > environment > file > default (SPEC §3). Every option is declared once in
`OPTIONS`; the CLI builds its flags from that table, so names cannot drift apart.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from certbound.errors import ConfigError
from certbound.logformat import LOG_FORMATS
from certbound.proxyheaders import HEADER_FORMATS
from certbound.proxytrust import sha256_fingerprint
from certbound.tls.admission import DEFAULT_LIMITS

__all__ = [
    "CACERT_ENV",
    "CONFIG_ENV",
    "OPTIONS",
    "SIGNING_ALGS",
    "URL_ENV",
    "AdminTarget",
    "Option",
    "Settings",
    "build_settings",
    "load_admin_target",
    "load_settings",
    "parse_options",
    "read_secret_file",
]

#: Algorithms the server may sign access tokens with (issue: server signing keys).
SIGNING_ALGS = ("ES256", "RS256", "PS256", "EdDSA")

#: The TOML file `--config` names, from the environment.
CONFIG_ENV = "CERTBOUND_CONFIG"
#: A running server's base URL: `certbound clients` (and the TUI) then use its admin API.
URL_ENV = "CERTBOUND_URL"
#: The CA (PEM) that signed that server's certificate, when the system CAs do not cover it.
CACERT_ENV = "CERTBOUND_CACERT"

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


class _OneOf:
    """A parser for one of a fixed set of words; `--help` shows them (`choices`)."""

    def __init__(self, *choices: str) -> None:
        self.choices = choices

    def __call__(self, value: object) -> str:
        text = _as_str(value)
        if text not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}")
        return text


def _as_path(value: object) -> Path:
    return value if isinstance(value, Path) else Path(_as_str(value))


def _as_cidr(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
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
    """A space-separated string (flag, environment) or a list of scope tokens (TOML, Python)."""
    if isinstance(value, list | tuple):
        scopes = tuple(_as_str(item) for item in value)
    else:
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

    @property
    def choices(self) -> tuple[str, ...] | None:
        return self.parse.choices if isinstance(self.parse, _OneOf) else None


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
    Option("db_pool_size", _as_int(1, 1000), 10, "PostgreSQL connections per process at most"),
    Option(
        "db_timeout",
        _as_int(1, 300),
        5,
        "seconds a database operation may take (PostgreSQL: connect, statements); then 503",
    ),
    Option(
        "master_key_file",
        _as_path,
        None,
        "key file that encrypts client secrets and signing keys at rest (default: beside the SQLite file)",
        metavar="FILE",
    ),
    Option("registration", _OneOf("open", "token", "closed"), "closed", "dynamic registration mode"),
    Option(
        "registration_scopes",
        _as_scopes,
        None,
        "scopes a dynamically registered client may hold (default: all of --scopes)",
        metavar='"SCOPE ..."',
    ),
    Option("registration_token", _as_str, None, "bearer token for --registration token", metavar="TOKEN"),
    Option(
        "registration_token_file",
        _as_path,
        None,
        "file holding the --registration-token (keeps it off the command line)",
        metavar="FILE",
    ),
    Option("admin_token", _as_str, None, "bearer token for the admin API", metavar="TOKEN"),
    Option(
        "admin_token_file",
        _as_path,
        None,
        "file holding the --admin-token (keeps it off the command line)",
        metavar="FILE",
    ),
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
    Option("assertion_audience", _OneOf("strict", "legacy"), "strict", "accepted client assertion aud"),
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
    Option(
        "trusted_proxy_cert_sha256",
        sha256_fingerprint,
        (),
        "SHA-256 fingerprint of a proxy's own TLS client certificate: headers count only from such"
        " connections (hex, colons allowed except in CERTBOUND_*)",
        repeatable=True,
        metavar="HEX",
    ),
    Option("client_cert_header", _OneOf(*HEADER_FORMATS), "rfc9440", "proxy header format"),
    Option("client_crl", _as_path, (), "CRL checked for tls_client_auth", repeatable=True, metavar="PEM"),
    Option("token_lifetime", _as_int(1), 600, "access token lifetime in seconds"),
    Option(
        "client_secret_lifetime",
        _as_int(0),
        0,
        "seconds a newly issued client secret is valid (0: never expires)",
    ),
    Option("signing_alg", _OneOf(*SIGNING_ALGS), "ES256", "algorithm of new signing keys"),
    Option("log_level", _OneOf("debug", "info", "warning", "error"), "info", "log level"),
    Option("log_format", _OneOf(*LOG_FORMATS), "text", "log line format: text, or one JSON object per line"),
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
    Option("max_connections", _as_int(1), DEFAULT_LIMITS.max_connections, "open connections per worker"),
    Option(
        "max_connections_per_ip",
        _as_int(1),
        DEFAULT_LIMITS.max_connections_per_source,
        "open connections per worker from one IPv4 address or IPv6 /64 (--trusted-proxy exempt)",
    ),
    Option(
        "max_handshakes_per_ip",
        _as_int(1),
        DEFAULT_LIMITS.max_handshakes_per_source,
        "TLS handshakes in progress per worker from one IPv4 address or IPv6 /64 (--trusted-proxy exempt)",
    ),
    # DPoP (issue 13, RFC 9449).
    Option(
        "dpop_nonce",
        _as_bool,
        False,
        "DPoP proofs at the token endpoint must carry a nonce this server issued (RFC 9449 §8)",
        is_flag=True,
    ),
    # Workload identity (issue 14, SPEC §13).
    Option(
        "federation",
        _as_path,
        None,
        "trusted token issuers and SPIFFE trust domains for federated_jwt, spiffe_jwt and spiffe_id "
        "clients (TOML; reloaded on SIGHUP)",
        metavar="FILE",
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
    db_pool_size: int = 10
    db_timeout: int = 5
    master_key_file: Path | None = None
    registration: str = "closed"
    registration_scopes: tuple[str, ...] | None = None
    registration_token: str | None = None
    registration_token_file: Path | None = None
    admin_token: str | None = None
    admin_token_file: Path | None = None
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
    trusted_proxy_cert_sha256: tuple[bytes, ...] = ()
    client_cert_header: str = "rfc9440"
    client_crl: tuple[Path, ...] = ()
    token_lifetime: int = 600
    client_secret_lifetime: int = 0
    signing_alg: str = "ES256"
    log_level: str = "info"
    log_format: str = "text"
    handshake_timeout: int = 10
    header_timeout: int = 10
    keepalive_timeout: int = 60
    request_timeout: int = 30
    max_connections: int = DEFAULT_LIMITS.max_connections
    max_connections_per_ip: int = DEFAULT_LIMITS.max_connections_per_source
    max_handshakes_per_ip: int = DEFAULT_LIMITS.max_handshakes_per_source
    dpop_nonce: bool = False
    federation: Path | None = None
    config: Path | None = field(default=None, compare=False)

    @property
    def token_endpoint(self) -> str:
        return self.issuer + "/token"

    @property
    def dynamic_client_scopes(self) -> tuple[str, ...]:
        """SPEC §3: the scopes a dynamically registered client may hold, and gets when it asks for
        none (--registration-scopes, default all of --scopes)."""
        return self.registration_scopes if self.registration_scopes is not None else self.scopes

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


def _parse(option: Option, raw: object, where: str, *, env: bool = False) -> Any:
    """One option's value through its parser; `where` names the source in the error. From the
    environment a repeatable option's items are `:`-separated (SPEC §3)."""
    try:
        if option.repeatable:
            items: Sequence[object]
            if isinstance(raw, list | tuple):
                items = raw
            elif isinstance(raw, str) and env:
                items = [part for part in raw.split(":") if part]
            else:
                items = [raw]
            return tuple(option.parse(item) for item in items)
        return option.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"invalid value for {where}: {exc}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


#: Secrets that may come from a file (`--NAME-file`) instead of the command line, where every local
#: user can read them (/proc/PID/cmdline).
_TOKEN_OPTIONS = ("admin_token", "registration_token")
_DEFAULT_SCOPES = _BY_NAME["scopes"].default


def read_secret_file(path: Path, what: str) -> str:
    """The secret held in a file: its text without the line ending an editor or `echo` adds."""
    try:
        text = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read {what} file {path}: {reason}") from None
    if not text:
        raise ConfigError(f"{what} file {path} is empty")
    return text


def _read_token_file(values: dict[str, Any], name: str) -> None:
    path = values.get(name + "_file")
    if path is None:
        return
    flag = _BY_NAME[name].flag
    if values.get(name) is not None:
        raise ConfigError(f"give {flag} or {flag}-file, not both")
    values[name] = read_secret_file(path, flag)


def load_settings(
    flags: Mapping[str, object],
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Resolve settings. `flags` holds only options given on the command line (None = not given)."""
    environ = os.environ if environ is None else environ
    config_file = config_file or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
    from_file = _read_toml(config_file) if config_file else {}
    unknown = sorted(set(from_file) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"unknown option in {config_file}: {', '.join(unknown)}")

    values: dict[str, Any] = {}
    for option in OPTIONS:
        flag_value = flags.get(option.name)
        if flag_value is not None and flag_value != [] and flag_value is not False:
            values[option.name] = _parse(option, flag_value, option.flag)
        elif option.env_var in environ:
            values[option.name] = _parse(option, environ[option.env_var], option.env_var, env=True)
        elif option.name in from_file:
            values[option.name] = _parse(option, from_file[option.name], option.name)
    return build_settings(values, config_file)


def parse_options(raw: Mapping[str, object], *, source: str) -> dict[str, Any]:
    """Option values given from Python (certbound.testing's overrides), each through its option's
    parser exactly as `serve` parses the flag; an already parsed value (a Path, a tuple of scopes,
    an ip_network) is accepted too. An unknown name or a bad value is a ConfigError naming
    `source[name]`."""
    values: dict[str, Any] = {}
    for name, value in raw.items():
        option = _BY_NAME.get(name)
        if option is None:
            close = difflib.get_close_matches(name, _BY_NAME, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{source}: unknown option {name!r}{hint}")
        values[name] = None if value is None else _parse(option, value, f"{source}[{name!r}]")
    return values


def build_settings(values: Mapping[str, Any], config_file: Path | None = None) -> Settings:
    """Settings from parsed option values (missing or None: the default), with the checks that
    involve several options."""
    values = {name: value for name, value in values.items() if value is not None}
    for name in _TOKEN_OPTIONS:
        _read_token_file(values, name)
    if values.get("issuer") is None:
        values["issuer"] = f"https://localhost:{values.get('port', 8443)}"
    if values.get("registration") == "token" and not values.get("registration_token"):
        raise ConfigError("--registration token needs --registration-token")
    if values.get("trusted_proxy_cert_sha256") and not values.get("trusted_proxy"):
        raise ConfigError("--trusted-proxy-cert-sha256 needs --trusted-proxy")
    outside = set(values.get("registration_scopes") or ()) - set(values.get("scopes", _DEFAULT_SCOPES))
    if outside:
        raise ConfigError(f"--registration-scopes names scopes not in --scopes: {' '.join(sorted(outside))}")
    if (values.get("tls_cert") is None) != (values.get("tls_key") is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    return Settings(config=config_file, **values)


@dataclass(frozen=True)
class AdminTarget:
    """A running server's admin API, as the management clients (`certbound clients`, the TUI)
    reach it."""

    url: str
    token: str
    cacert: Path | None


def load_admin_target(
    settings: Settings,
    *,
    url: str | None = None,
    cacert: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> AdminTarget | None:
    """The admin API to manage clients through: `url` (the --url flag) or CERTBOUND_URL; None when
    neither is set (then the commands work on the database). The token is `settings.admin_token`
    (--admin-token, CERTBOUND_ADMIN_TOKEN or the file's admin_token); the CA is `cacert` (--cacert)
    or CERTBOUND_CACERT."""
    environ = os.environ if environ is None else environ
    url = url or environ.get(URL_ENV) or None
    if url is None:
        return None
    if not settings.admin_token:
        raise ConfigError(f"--url ({URL_ENV}) needs --admin-token (or {_BY_NAME['admin_token'].env_var})")
    if cacert is None and environ.get(CACERT_ENV):
        cacert = Path(environ[CACERT_ENV])
    return AdminTarget(url, settings.admin_token, cacert)

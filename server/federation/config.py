"""The `--federation FILE.toml` file (SPEC §13): trusted issuers and SPIFFE trust domains.

    [[issuer]]                  name, issuer, jwks_uri | jwks_file | neither (OpenID discovery),
                                audience, max_lifetime, allow_reuse
    [[spiffe]]                  trust_domain, bundle_file | bundle_url, max_staleness, max_lifetime

Loading reads and checks everything the file names, so a file that loads is one the server can
use: an unknown key, a wrong type, a bad URL, two entries for one name, an unreadable or invalid
`jwks_file` or `bundle_file` is a ConfigError naming the file and the entry (`certbound serve`
exits 2 with that line; a SIGHUP keeps the running configuration). Relative paths are relative to
the file's directory. Remote key sets and bundles are not fetched here: they are fetched when first
needed (certbound.federation.keys).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from joserfc.jwk import Key

from certbound.errors import ConfigError, InvalidClientMetadataError
from certbound.federation.bundle import SpiffeBundle, parse_bundle
from certbound.jwks import parse_jwks, validate_jwks_uri
from certbound.pki.spiffeid import validate_trust_domain

__all__ = [
    "DEFAULT_MAX_LIFETIME",
    "DEFAULT_MAX_STALENESS",
    "FederationConfig",
    "IssuerConfig",
    "TrustDomainConfig",
    "load_federation",
]

DEFAULT_MAX_LIFETIME = 3600
DEFAULT_MAX_STALENESS = 3600
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Key set and bundle files are small; reading stops being reasonable long before this.
_MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """A trusted token issuer (`[[issuer]]`)."""

    name: str
    issuer: str
    audience: str
    max_lifetime: int = DEFAULT_MAX_LIFETIME
    allow_reuse: bool = False
    jwks_uri: str | None = None
    #: The keys of `jwks_file`, read at load.
    jwks: tuple[Key, ...] | None = None

    @property
    def discovery_uri(self) -> str:
        """OpenID Connect Discovery 1.0 §4: where the issuer publishes its jwks_uri."""
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


@dataclass(frozen=True, slots=True)
class TrustDomainConfig:
    """A trusted SPIFFE trust domain (`[[spiffe]]`)."""

    trust_domain: str
    max_staleness: int = DEFAULT_MAX_STALENESS
    max_lifetime: int = DEFAULT_MAX_LIFETIME
    bundle_url: str | None = None
    #: The bundle of `bundle_file`, read at load.
    bundle: SpiffeBundle | None = None


@dataclass(frozen=True, slots=True)
class FederationConfig:
    issuers: Mapping[str, IssuerConfig] = field(default_factory=dict)
    trust_domains: Mapping[str, TrustDomainConfig] = field(default_factory=dict)

    @property
    def spiffe(self) -> bool:
        return bool(self.trust_domains)


class _Entry:
    """One `[[issuer]]` or `[[spiffe]]` table, read member by member; `where` names it in errors."""

    def __init__(self, table: object, where: str, allowed: tuple[str, ...]) -> None:
        if not isinstance(table, dict):
            raise ConfigError(f"{where} is not a table")
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            raise ConfigError(f"{where}: unknown key {', '.join(unknown)}")
        self._table: dict[str, Any] = table
        self.where = where

    def has(self, key: str) -> bool:
        return key in self._table

    def text(self, key: str, default: str | None = None) -> str:
        value = self._table.get(key, default)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.where}: {key} must be a non-empty string")
        return value

    def optional_text(self, key: str) -> str | None:
        return self.text(key) if key in self._table else None

    def seconds(self, key: str, default: int) -> int:
        value = self._table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{self.where}: {key} must be a whole number of seconds >= 1")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._table.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.where}: {key} must be true or false")
        return value

    def https_url(self, key: str, allow_private: bool) -> str | None:
        value = self.optional_text(key)
        if value is not None:
            try:
                validate_jwks_uri(value, allow_private=allow_private)
            except InvalidClientMetadataError as exc:
                detail = exc.description.removeprefix("jwks_uri ")
                raise ConfigError(f"{self.where}: {key} {detail}") from None
        return value

    def document(self, key: str, base: Path) -> tuple[Path, object] | None:
        """The JSON document of the file `key` names (relative to `base`), or None."""
        name = self.optional_text(key)
        if name is None:
            return None
        path = base / name
        try:
            with path.open("rb") as handle:
                data = handle.read(_MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"{self.where}: cannot read {key} {path}: {exc.strerror}") from None
        if len(data) > _MAX_FILE_BYTES:
            raise ConfigError(f"{self.where}: {key} {path} is larger than {_MAX_FILE_BYTES} bytes")
        try:
            return path, json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"{self.where}: {key} {path} is not JSON: {exc}") from None


_ISSUER_KEYS = ("name", "issuer", "jwks_uri", "jwks_file", "audience", "max_lifetime", "allow_reuse")
_SPIFFE_KEYS = ("trust_domain", "bundle_file", "bundle_url", "max_staleness", "max_lifetime")


def _issuer(entry: _Entry, base: Path, audience: str, allow_private: bool) -> IssuerConfig:
    name = entry.text("name")
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{entry.where}: name must be 1 to 64 letters, digits, '.', '-' or '_'")
    issuer = entry.text("issuer")
    if entry.has("jwks_uri") and entry.has("jwks_file"):
        raise ConfigError(f"{entry.where}: give jwks_uri or jwks_file, not both")
    jwks_uri = entry.https_url("jwks_uri", allow_private)
    keys: tuple[Key, ...] | None = None
    document = entry.document("jwks_file", base)
    if document is not None:
        path, value = document
        try:
            keys = tuple(parse_jwks(value))
        except InvalidClientMetadataError as exc:
            raise ConfigError(f"{entry.where}: jwks_file {path}: {exc.description}") from None
    elif jwks_uri is None:
        # OpenID discovery at the issuer itself: it must be an https URL we may fetch.
        parts = urlsplit(issuer)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            raise ConfigError(
                f"{entry.where}: issuer must be an https URL when neither jwks_uri nor jwks_file is given"
            )
        try:
            validate_jwks_uri(issuer, allow_private=allow_private)
        except InvalidClientMetadataError as exc:
            raise ConfigError(f"{entry.where}: issuer {exc.description.removeprefix('jwks_uri ')}") from None
    return IssuerConfig(
        name=name,
        issuer=issuer,
        audience=entry.text("audience", audience),
        max_lifetime=entry.seconds("max_lifetime", DEFAULT_MAX_LIFETIME),
        allow_reuse=entry.flag("allow_reuse", False),
        jwks_uri=jwks_uri,
        jwks=keys,
    )


def _trust_domain(entry: _Entry, base: Path, allow_private: bool) -> TrustDomainConfig:
    domain = entry.text("trust_domain")
    try:
        validate_trust_domain(domain)
    except ValueError as exc:
        raise ConfigError(f"{entry.where}: trust_domain: {exc}") from None
    if entry.has("bundle_file") == entry.has("bundle_url"):
        raise ConfigError(f"{entry.where}: give exactly one of bundle_file and bundle_url")
    bundle: SpiffeBundle | None = None
    document = entry.document("bundle_file", base)
    if document is not None:
        path, value = document
        try:
            bundle = parse_bundle(value)
        except ValueError as exc:
            raise ConfigError(f"{entry.where}: bundle_file {path}: {exc}") from None
    return TrustDomainConfig(
        trust_domain=domain,
        max_staleness=entry.seconds("max_staleness", DEFAULT_MAX_STALENESS),
        max_lifetime=entry.seconds("max_lifetime", DEFAULT_MAX_LIFETIME),
        bundle_url=entry.https_url("bundle_url", allow_private),
        bundle=bundle,
    )


def _entries(
    document: dict[str, Any],
    section: str,
    path: Path,
    read: Callable[[_Entry], Any],
    allowed: tuple[str, ...],
) -> list[Any]:
    tables = document.get(section, [])
    if not isinstance(tables, list):
        raise ConfigError(f"{path}: {section} must be an array of tables ([[{section}]])")
    return [
        read(_Entry(table, f"{path}: [[{section}]] {number}", allowed))
        for number, table in enumerate(tables, 1)
    ]


def _unique(items: list[Any], key: Callable[[Any], str], what: str, path: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in items:
        value = key(item)
        if value in result:
            raise ConfigError(f"{path}: two entries for {what} {value!r}")
        result[value] = item
    return result


def load_federation(path: Path, *, audience: str, allow_private: bool) -> FederationConfig:
    """Read and check the federation file. `audience` is the default `audience` of issuers (the
    server's issuer identifier); `allow_private` is `--allow-private-fetch`."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"federation file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read federation file {path}: {exc}") from None
    unknown = sorted(set(document) - {"issuer", "spiffe"})
    if unknown:
        raise ConfigError(f"{path}: unknown key {', '.join(unknown)} (expected [[issuer]] and [[spiffe]])")
    base = path.parent
    issuers = _entries(
        document, "issuer", path, lambda entry: _issuer(entry, base, audience, allow_private), _ISSUER_KEYS
    )
    domains = _entries(
        document, "spiffe", path, lambda entry: _trust_domain(entry, base, allow_private), _SPIFFE_KEYS
    )
    # One issuer identifier, one entry: a jti is used once per issuer, whichever name a client uses.
    _unique(issuers, lambda issuer: issuer.issuer, "issuer", path)
    return FederationConfig(
        issuers=_unique(issuers, lambda issuer: issuer.name, "name", path),
        trust_domains=_unique(domains, lambda domain: domain.trust_domain, "trust_domain", path),
    )

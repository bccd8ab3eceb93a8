"""Client metadata validation and defaults (RFC 7591 §2, SPEC §6 and §9).

One function serves every front door (dynamic registration, admin API, CLI): it returns the
metadata as it will be stored, defaults filled and unknown members kept (RFC 7591 §2: "The
authorization server MUST ignore any client metadata sent by the client that it does not
understand"; we keep them so a read returns what was registered), or raises
InvalidClientMetadataError / InvalidRedirectUriError whose description starts with the field
(`metadata_error_field` reads it back: the TUI shows the error next to that field).

General rules live here; what a method needs (subject fields, keys that parse, the algorithm family)
is its `validate_metadata` hook in certbound.clientauth, called last. Which methods exist, and which
a client may register for itself (RFC 7591), is certbound.authmethods. A `federated_issuer` or a
`spiffe_id` must name an issuer or trust domain of the federation file (SPEC §13) when the front
door knows it: a server always does (one without `--federation` knows none), a CLI on the database
when given `--federation` (or a config file naming one).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from certbound.authmethods import METHODS, MTLS_METHODS
from certbound.clientauth import AUTH_METHODS
from certbound.clientauth.federated import FEDERATED_ISSUER
from certbound.config import Settings
from certbound.errors import InvalidClientMetadataError, InvalidRedirectUriError
from certbound.federation import FederationConfig
from certbound.federation.claimrules import FEDERATED_CLAIMS
from certbound.grants import GRANTS
from certbound.jose import JWS_SIGNING_ALGS
from certbound.jwks import parse_jwks, validate_jwks_uri
from certbound.pki.spiffeid import parse_spiffe_id
from certbound.pki.subject import SPIFFE_ID

__all__ = [
    "CLIENT_SIGNING_ALGS",
    "KNOWN_AUTH_METHODS",
    "LEGACY_AUDIENCE_ASSERTIONS",
    "LEGACY_AUDIENCE_LAST_SEEN",
    "SERVER_ASSIGNED",
    "ScopeLimit",
    "merge_metadata",
    "metadata_error_field",
    "normalize_metadata",
]

#: Every method this server knows (certbound.authmethods); it implements them in
#: certbound.clientauth, and refuses to register a method it cannot verify.
KNOWN_AUTH_METHODS = frozenset(METHODS)

#: `token_endpoint_auth_signing_alg` values a client may register (SPEC §5); `none` never.
CLIENT_SIGNING_ALGS = JWS_SIGNING_ALGS

#: What the admin views of a client that signs its own assertions report (certbound.legacyaudience):
#: how many were accepted only because of --assertion-audience legacy, and when the last one was
#: (epoch seconds; null: never).
LEGACY_AUDIENCE_ASSERTIONS = "legacy_audience_assertions"
LEGACY_AUDIENCE_LAST_SEEN = "legacy_audience_last_seen"

#: Members the server issues or reports (RFC 7591 §3.2.1, RFC 7592 §3); never stored as client
#: metadata.
SERVER_ASSIGNED = (
    "client_id",
    "client_secret",
    "client_id_issued_at",
    "client_secret_expires_at",
    "registration_access_token",
    "registration_client_uri",
    LEGACY_AUDIENCE_ASSERTIONS,
    LEGACY_AUDIENCE_LAST_SEEN,
)

#: Members whose value is one whole, replaced by a merge rather than merged into (SPEC §13: a
#: client's claim rules are one rule set; a rule left out of an update is gone).
_REPLACED_WHOLE = (FEDERATED_CLAIMS,)

#: Defaults that depend on the method (SPEC §6, §8): recomputed when a merge changes the method.
_METHOD_DEFAULTS = ("grant_types", "tls_client_certificate_bound_access_tokens")

#: RFC 7591 §2.1: the grant type each response type needs.
_RESPONSE_TYPE_GRANTS = {"code": "authorization_code", "token": "implicit"}

#: Human-readable members that may carry a BCP 47 language tag (RFC 7591 §2.2: `client_name#fr`).
_URL_MEMBERS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
_TEXT_MEMBERS = ("client_name", "software_id", "software_version")
_LOOPBACK_NAMES = ("localhost",)

#: Characters no displayed member may hold (issue 9 finding 10): control characters (ESC starts
#: terminal escape sequences, C1 CSI too), lone surrogates, line and paragraph separators, and the
#: bidirectional embedding, override and isolate controls, which reorder how the text around them
#: displays ("Trojan Source", CVE-2021-42574). Other format characters stay: ZWJ/ZWNJ in emoji,
#: Indic and Persian names, LRM/RLM in mixed-direction ones. Every output escapes what it must
#: anyway (certbound.cli.terminal): metadata stored before this rule, or in unknown members.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _string(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidClientMetadataError(f"{name} must be a non-empty string")
    return value


def _check_displayable(text: str, name: str) -> None:
    if text.isprintable():  # the common case, and none of the refused characters is printable
        return
    for char in text:
        if char in _BIDI_CONTROLS or unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise InvalidClientMetadataError(
                f"{name} must not contain control or bidirectional formatting characters (U+{ord(char):04X})"
            )


def _string_list(metadata: Mapping[str, Any], name: str) -> list[str] | None:
    value = metadata.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise InvalidClientMetadataError(f"{name} must be an array of non-empty strings")
    return list(dict.fromkeys(value))


def _boolean(metadata: Mapping[str, Any], name: str, default: bool) -> bool:
    value = metadata.get(name, default)
    if not isinstance(value, bool):
        raise InvalidClientMetadataError(f"{name} must be a boolean")
    return value


def _web_url(value: object, name: str) -> str:
    text = _string(value, name)
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname or "#" in text:
        raise InvalidClientMetadataError(f"{name} must be an http(s) URL without a fragment")
    return text


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _redirect_uris(metadata: Mapping[str, Any]) -> list[str] | None:
    """RFC 7591 §2 + RFC 6749 §3.1.2: absolute URIs without a fragment. Plain http only for a
    loopback address (RFC 8252 §7.3); private-use schemes (RFC 8252 §7.1) are absolute URIs too."""
    value = metadata.get("redirect_uris")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise InvalidRedirectUriError("redirect_uris must be an array of non-empty strings")
    for uri in value:
        parts = urlsplit(uri)
        scheme_ok = parts.scheme[:1].isalpha() and parts.scheme.isascii()
        # No spaces, controls or invisible characters: not in a URI (RFC 3986 §2), and shown to users.
        if not scheme_ok or "#" in uri or " " in uri or not uri.isprintable():
            raise InvalidRedirectUriError(f"redirect_uris: {uri!r} is not an absolute URI without a fragment")
        if parts.scheme in ("http", "https") and not parts.hostname:
            raise InvalidRedirectUriError(f"redirect_uris: {uri!r} has no host")
        if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
            raise InvalidRedirectUriError(f"redirect_uris: {uri!r} uses http on a non-loopback host")
    return list(dict.fromkeys(value))


def _grant_types(metadata: Mapping[str, Any], method: str) -> list[str]:
    grant_types = _string_list(metadata, "grant_types")
    if grant_types is None:
        # A public client has no grant it can use here by default (SPEC §6).
        return [] if method == "none" else ["client_credentials"]
    unsupported = [grant for grant in grant_types if grant not in GRANTS]
    if unsupported:
        raise InvalidClientMetadataError(
            f"grant_types: not supported by this server: {' '.join(unsupported)}"
        )
    for grant in grant_types:
        if method == "none" and GRANTS[grant].confidential_only:
            raise InvalidClientMetadataError(f"grant_types: a client with method none cannot use {grant}")
    return grant_types


def _response_types(metadata: Mapping[str, Any], grant_types: list[str]) -> list[str] | None:
    response_types = _string_list(metadata, "response_types")
    if response_types is None:
        return None
    for response_type in response_types:
        grant = _RESPONSE_TYPE_GRANTS.get(response_type)
        if grant is None:
            raise InvalidClientMetadataError(f"response_types: {response_type!r} is not supported")
        if grant not in grant_types:
            # RFC 7591 §2.1: the two lists must be consistent.
            raise InvalidClientMetadataError(f"response_types: {response_type} needs the {grant} grant type")
    return response_types


@dataclass(frozen=True, slots=True)
class ScopeLimit:
    """The scopes a client may be given by one front door, and what it gets when it names none.

    An administrator (admin API, CLI) may give any of --scopes, all by default (SPEC §6). Dynamic
    registration is bounded by --registration-scopes (SPEC §3): the registration scopes by default,
    and an RFC 7592 update adds nothing beyond them to what the client already holds (an
    administrator may have widened it; the client keeps that but cannot widen itself).
    """

    allowed: frozenset[str]
    default: tuple[str, ...]
    #: Who is bounded, for the error description.
    holder: str

    @classmethod
    def administrator(cls, settings: Settings) -> ScopeLimit:
        return cls(frozenset(settings.scopes), settings.scopes, "a client")

    @classmethod
    def dynamic(cls, settings: Settings, *, holding: Iterable[str] = ()) -> ScopeLimit:
        scopes = settings.dynamic_client_scopes
        return cls(frozenset((*scopes, *holding)), scopes, "a dynamically registered client")


def _scope(metadata: Mapping[str, Any], settings: Settings, limit: ScopeLimit) -> str:
    scope = metadata.get("scope")
    if scope is None:
        return " ".join(limit.default)
    if not isinstance(scope, str):
        raise InvalidClientMetadataError("scope must be a space-separated string")
    unknown = [item for item in scope.split() if item not in settings.scopes]
    if unknown:
        outside = " ".join(unknown)
        raise InvalidClientMetadataError(f"scope includes values this server does not offer: {outside}")
    beyond = [item for item in scope.split() if item not in limit.allowed]
    if beyond:
        outside = " ".join(beyond)
        raise InvalidClientMetadataError(f"scope includes values {limit.holder} may not hold: {outside}")
    return " ".join(dict.fromkeys(scope.split()))


def _check_keys(metadata: Mapping[str, Any], settings: Settings) -> None:
    """RFC 7591 §2: `jwks` and `jwks_uri` MUST NOT both be present; registered keys parse as public
    JWKs and a jwks_uri is https, whatever the method (SPEC §9). Whether a method needs keys is
    its own rule."""
    jwks, jwks_uri = metadata.get("jwks"), metadata.get("jwks_uri")
    if jwks is not None and jwks_uri is not None:
        raise InvalidClientMetadataError("jwks and jwks_uri must not both be present")
    if jwks is not None:
        parse_jwks(jwks)
    if jwks_uri is not None:
        validate_jwks_uri(jwks_uri, allow_private=settings.allow_private_fetch)


def _check_human_readable(metadata: Mapping[str, Any]) -> None:
    for name, value in metadata.items():
        base = name.partition("#")[0]
        if base in _URL_MEMBERS:
            _check_displayable(_web_url(value, name), name)
        elif base in _TEXT_MEMBERS:
            _check_displayable(_string(value, name), name)
    # Only the shape: RFC 7591 §2 does not define the syntax of a contact.
    for contact in _string_list(metadata, "contacts") or ():
        _check_displayable(contact, "contacts")


def _signing_alg(metadata: Mapping[str, Any]) -> None:
    alg = metadata.get("token_endpoint_auth_signing_alg")
    if alg is not None and alg not in CLIENT_SIGNING_ALGS:
        supported = ", ".join(CLIENT_SIGNING_ALGS)
        raise InvalidClientMetadataError(
            f"token_endpoint_auth_signing_alg {alg!r} is not supported; use one of {supported}"
        )


#: The member naming a part of the federation file, per method that has one (SPEC §13).
_FEDERATION_REFERENCES = {
    "federated_jwt": FEDERATED_ISSUER,
    "spiffe_jwt": SPIFFE_ID,
    "tls_client_auth": SPIFFE_ID,
}


def _check_federation_reference(
    method: str, metadata: Mapping[str, Any], federation: FederationConfig
) -> None:
    """SPEC §13: the issuer or trust domain a workload identity client names is in the federation
    file in use (the method's own hook has checked the member's shape)."""
    member = _FEDERATION_REFERENCES.get(method)
    value = metadata.get(member) if member is not None else None
    if not isinstance(value, str):
        return
    known: Collection[str]
    if member == FEDERATED_ISSUER:
        name, known, what = value, federation.issuers.keys(), "an issuer"
    else:
        name, known, what = (
            parse_spiffe_id(value).trust_domain,
            federation.trust_domains.keys(),
            "a trust domain",
        )
    if name not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise InvalidClientMetadataError(
            f"{member}: {name!r} is not {what} of this server's federation file (known: {listed})"
        )


def normalize_metadata(
    metadata: Mapping[str, Any],
    settings: Settings,
    scopes: ScopeLimit | None = None,
    *,
    dynamic: bool = False,
    federation: FederationConfig | None = None,
) -> dict[str, Any]:
    """Validate `metadata` and return it as stored: defaults filled, server-assigned members
    dropped, members whose value is null dropped (RFC 7592 §2.2 treats them as omitted). `scopes`
    bounds the scope (default: what an administrator may give). `dynamic`: the client registers
    itself (RFC 7591/7592), so only self-registrable methods. `federation`: the federation file in
    use, when known, that `federated_issuer` and `spiffe_id` must refer to."""
    result = {
        name: value for name, value in metadata.items() if value is not None and name not in SERVER_ASSIGNED
    }
    # RFC 7591 §2.3: a server that does not verify software statements MAY ignore them; we do not
    # keep one, so a stored statement can never be mistaken for a verified one.
    result.pop("software_statement", None)
    method = result.setdefault("token_endpoint_auth_method", "client_secret_basic")
    if not isinstance(method, str) or method not in KNOWN_AUTH_METHODS:
        raise InvalidClientMetadataError(f"token_endpoint_auth_method {method!r} is not a known method")
    auth_method = AUTH_METHODS.get(method)
    if auth_method is None:
        raise InvalidClientMetadataError(
            f"token_endpoint_auth_method {method} is not supported by this server"
        )
    if dynamic and not METHODS[method].self_registrable:
        raise InvalidClientMetadataError(
            f"token_endpoint_auth_method {method} is registered by an administrator only (admin API or CLI)"
        )

    redirect_uris = _redirect_uris(result)
    if redirect_uris is not None:
        result["redirect_uris"] = redirect_uris
    result["grant_types"] = _grant_types(result, method)
    response_types = _response_types(result, result["grant_types"])
    if response_types is not None:
        result["response_types"] = response_types
    result["scope"] = _scope(result, settings, scopes or ScopeLimit.administrator(settings))
    _check_human_readable(result)
    _check_keys(result, settings)
    _signing_alg(result)
    result["access_token_as_jwt"] = _boolean(result, "access_token_as_jwt", True)
    result["tls_client_certificate_bound_access_tokens"] = _boolean(
        result, "tls_client_certificate_bound_access_tokens", method in MTLS_METHODS
    )
    if "dpop_bound_access_tokens" in result:
        # RFC 9449 §5.2; omitted means false, and is kept omitted.
        result["dpop_bound_access_tokens"] = _boolean(result, "dpop_bound_access_tokens", False)
    auth_method.validate_metadata(result, settings)
    if federation is not None:
        _check_federation_reference(method, result, federation)
    return result


def merge_metadata(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7396 JSON merge patch of stored metadata (a null deletes a member), for front doors that
    update a few members (the CLI). When the patch changes the method, the defaults that depend on
    the method are dropped unless the patch sets them, so normalize_metadata recomputes them."""
    merged = _merge_patch(current, changes)
    method_changed = merged.get("token_endpoint_auth_method") != current.get("token_endpoint_auth_method")
    if method_changed:
        for name in _METHOD_DEFAULTS:
            if name not in changes:
                merged.pop(name, None)
    return merged


def _merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(target)
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        elif isinstance(value, dict) and isinstance(result.get(name), dict) and name not in _REPLACED_WHOLE:
            result[name] = _merge_patch(result[name], value)
        else:
            result[name] = value
    return result


#: The member an error description starts with: a metadata name (with an optional RFC 7591 §2.2
#: language tag), then a space, a colon or the end.
_ERROR_FIELD = re.compile(r"([a-z][a-z0-9_]*)(?:#[A-Za-z0-9-]+)?(?=[\s:]|$)")


def metadata_error_field(description: str) -> str | None:
    """The metadata member an `invalid_client_metadata` / `invalid_redirect_uri` description names.

    Every such description starts with the member at fault (`scope includes ...`, `jwks key 0 ...`,
    `redirect_uris: ...`), so a client of the API can put the message next to the right input
    without a non-standard response member. None when the description does not start that way."""
    match = _ERROR_FIELD.match(description)
    return match.group(1) if match else None

"""Client metadata validation and defaults (RFC 7591 §2, SPEC §6 and §9).

One function serves every front door (dynamic registration, admin API, CLI): it returns the
metadata as it will be stored, defaults filled and unknown members kept, or raises
InvalidClientMetadataError naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.config import Settings
from server.errors import InvalidClientMetadataError
from server.models import MTLS_METHODS

__all__ = ["KNOWN_AUTH_METHODS", "normalize_metadata"]

#: Every method OAuth and OpenID Connect define (SPEC §1); the server implements them in
#: server.clientauth, and refuses to register a method it cannot verify.
KNOWN_AUTH_METHODS = frozenset(
    {
        "client_secret_basic",
        "client_secret_post",
        "client_secret_jwt",
        "private_key_jwt",
        "tls_client_auth",
        "self_signed_tls_client_auth",
        "none",
    }
)


def _string_list(metadata: Mapping[str, Any], name: str) -> list[str] | None:
    value = metadata.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidClientMetadataError(f"{name} must be an array of strings")
    return value


def _boolean(metadata: Mapping[str, Any], name: str, default: bool) -> bool:
    value = metadata.get(name, default)
    if not isinstance(value, bool):
        raise InvalidClientMetadataError(f"{name} must be a boolean")
    return value


def normalize_metadata(metadata: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    from server.clientauth import AUTH_METHODS  # the registry imports this module's users

    result = dict(metadata)
    method = result.setdefault("token_endpoint_auth_method", "client_secret_basic")
    if not isinstance(method, str) or method not in KNOWN_AUTH_METHODS:
        raise InvalidClientMetadataError(f"token_endpoint_auth_method {method!r} is not a known method")
    auth_method = AUTH_METHODS.get(method)
    if auth_method is None:
        raise InvalidClientMetadataError(
            f"token_endpoint_auth_method {method} is not supported by this server"
        )

    grant_types = _string_list(result, "grant_types")
    if grant_types is None:
        # A public client has no grant it can use here by default (SPEC §6).
        grant_types = [] if method == "none" else ["client_credentials"]
    if method == "none" and "client_credentials" in grant_types:
        raise InvalidClientMetadataError(
            "grant_types: a client with method none cannot use client_credentials"
        )
    result["grant_types"] = grant_types

    scope = result.get("scope")
    if scope is None:
        result["scope"] = " ".join(settings.scopes)
    elif not isinstance(scope, str):
        raise InvalidClientMetadataError("scope must be a space-separated string")
    else:
        unknown = [item for item in scope.split() if item not in settings.scopes]
        if unknown:
            raise InvalidClientMetadataError(
                f"scope includes values this server does not offer: {' '.join(unknown)}"
            )
        result["scope"] = " ".join(dict.fromkeys(scope.split()))

    result["access_token_as_jwt"] = _boolean(result, "access_token_as_jwt", True)
    result["tls_client_certificate_bound_access_tokens"] = _boolean(
        result, "tls_client_certificate_bound_access_tokens", method in MTLS_METHODS
    )
    for forbidden in ("client_secret", "client_id", "registration_access_token"):
        result.pop(forbidden, None)
    auth_method.validate_metadata(result, settings)
    return result

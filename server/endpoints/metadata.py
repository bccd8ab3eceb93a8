"""Authorization server metadata (RFC 8414 §2, OpenID Connect Discovery 1.0 §3), served at both
well-known paths. It lists exactly what this server implements: the registries are the source
(the workload identity methods only with `--federation`, SPEC §13)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from certbound.authmethods import METHODS, advertised_methods
from certbound.clientauth.assertion import ASSERTION_SIGNING_ALGS
from certbound.config import Settings
from certbound.context import CONTEXT
from certbound.dpop import DPOP_SIGNING_ALGS
from certbound.endpoints.http import json_response
from certbound.grants import GRANTS

__all__ = ["build_metadata", "metadata_endpoint"]

_ENDPOINTS = {
    "token_endpoint": "/token",
    "introspection_endpoint": "/introspect",
    "revocation_endpoint": "/revoke",
}


def build_metadata(settings: Settings) -> dict[str, Any]:
    issuer = settings.issuer
    methods = sorted(advertised_methods(federation=settings.federation is not None))
    authenticating = [method for method in methods if METHODS[method].authenticates]
    metadata: dict[str, Any] = {
        "issuer": issuer,
        "token_endpoint": issuer + "/token",
        "jwks_uri": issuer + "/jwks",
        "registration_endpoint": issuer + "/register",
        "introspection_endpoint": issuer + "/introspect",
        "revocation_endpoint": issuer + "/revoke",
        "grant_types_supported": sorted(GRANTS),
        "response_types_supported": [],
        "scopes_supported": list(settings.scopes),
        "token_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": authenticating,
        "revocation_endpoint_auth_methods_supported": authenticating,
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_SIGNING_ALGS),
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_SIGNING_ALGS),
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_SIGNING_ALGS),
        "tls_client_certificate_bound_access_tokens": True,
        # RFC 9449 §5.1.
        "dpop_signing_alg_values_supported": list(DPOP_SIGNING_ALGS),
    }
    mtls_base = settings.mtls_base_url
    if mtls_base is not None:
        # RFC 8705 §5: where mTLS-authenticating clients should send their requests.
        metadata["mtls_endpoint_aliases"] = {name: mtls_base + path for name, path in _ENDPOINTS.items()}
    return metadata


async def metadata_endpoint(request: web.Request) -> web.Response:
    return json_response(build_metadata(request.app[CONTEXT].settings), cacheable=True)

"""certbound.resource: protect an API with certbound access tokens (RFC 9068, RFC 7662, RFC 6750)
and their binding to a certificate (RFC 8705 §3) or a DPoP key (RFC 9449 §7), on ordinary stacks.

- `TokenVerifier` (framework-free): JWT mode with the AS's JWK Set, or introspection mode.
- aiohttp: `install_token_verifier` + `@bearer_required`, served by `aiohttp.web` with a stdlib
  `ssl.SSLContext`, behind a proxy, or by `start_resource_server` (certbound's own TLS layer).
- ASGI (FastAPI, Starlette): `BearerTokenMiddleware` + `get_verified_token(scope)`.
- `TrustedProxies`: which proxies may forward the client certificate in a header.

Importing this package loads the TLS, error and token-reading parts of certbound, never the store,
the vault, the key ring or the client machinery of the authorization server.
"""

from __future__ import annotations

from certbound.proxytrust import TrustedProxies
from certbound.resource.asgi import TOKEN_SCOPE_KEY, BearerTokenMiddleware, get_verified_token
from certbound.resource.authserver import AuthorizationServerError, basic_authorization
from certbound.resource.server import ResourceServer, start_resource_server
from certbound.resource.verifier import DPoPRequest, TokenVerifier, VerifiedToken, certificate_thumbprint
from certbound.resource.web import (
    TOKEN_KEY,
    TOKEN_VERIFIER,
    TRUSTED_PROXIES,
    bearer_required,
    install_token_verifier,
)

__all__ = [
    "TOKEN_KEY",
    "TOKEN_SCOPE_KEY",
    "TOKEN_VERIFIER",
    "TRUSTED_PROXIES",
    "AuthorizationServerError",
    "BearerTokenMiddleware",
    "DPoPRequest",
    "ResourceServer",
    "TokenVerifier",
    "TrustedProxies",
    "VerifiedToken",
    "basic_authorization",
    "bearer_required",
    "certificate_thumbprint",
    "get_verified_token",
    "install_token_verifier",
    "start_resource_server",
]

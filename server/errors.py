"""Error hierarchy: OAuth 2.0 error codes (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7591 §3.2.2).

Each class carries its wire code and HTTP status as class attributes; handlers raise them and the
error middleware (the only place that builds error responses) turns them into JSON.
Infrastructure failures (configuration, storage) live outside the OAuth hierarchy.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AccessDeniedError",
    "ConfigError",
    "InvalidClientError",
    "InvalidClientMetadataError",
    "InvalidGrantError",
    "InvalidRedirectUriError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTokenError",
    "MethodNotAllowedError",
    "MissingTokenError",
    "NotFoundError",
    "OAuthError",
    "PayloadTooLargeError",
    "ServerError",
    "StoreError",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "UnsupportedMediaTypeError",
    "UnsupportedTokenTypeError",
]


class OAuthError(Exception):
    """An error the client is told about: `{"error": code, "error_description": description}`."""

    error: ClassVar[str] = "server_error"
    status: ClassVar[int] = 500

    def __init__(self, description: str = "") -> None:
        super().__init__(description)
        self.description = description


class InvalidRequestError(OAuthError):
    """RFC 6749 §5.2: missing, repeated or malformed parameter; more than one auth mechanism."""

    error = "invalid_request"
    status = 400


class MethodNotAllowedError(InvalidRequestError):
    """RFC 6749 §3.2: the token endpoint takes POST only."""

    status = 405


class UnsupportedMediaTypeError(InvalidRequestError):
    """RFC 6749 §3.2: parameters are sent as application/x-www-form-urlencoded."""


class PayloadTooLargeError(InvalidRequestError):
    """The request body exceeds the endpoint's limit (SPEC §10)."""

    status = 413


class InvalidClientError(OAuthError):
    """RFC 6749 §5.2: client authentication failed (unknown client, bad credentials, wrong method)."""

    error = "invalid_client"
    status = 401

    #: Set when the client tried HTTP Basic: the response then carries `WWW-Authenticate: Basic`
    #: (RFC 6749 §5.2).
    basic_challenge: bool = False


class InvalidGrantError(OAuthError):
    error = "invalid_grant"
    status = 400


class UnauthorizedClientError(OAuthError):
    """RFC 6749 §5.2: the client may not use this grant type."""

    error = "unauthorized_client"
    status = 400


class UnsupportedGrantTypeError(OAuthError):
    error = "unsupported_grant_type"
    status = 400


class InvalidScopeError(OAuthError):
    error = "invalid_scope"
    status = 400


class UnsupportedTokenTypeError(OAuthError):
    """RFC 7009 §2.2.1."""

    error = "unsupported_token_type"
    status = 400


class InvalidClientMetadataError(OAuthError):
    """RFC 7591 §3.2.2. The description starts with the metadata member at fault
    (certbound.clientmeta.metadata_error_field reads it)."""

    error = "invalid_client_metadata"
    status = 400


class InvalidRedirectUriError(OAuthError):
    """RFC 7591 §3.2.2; the description starts with `redirect_uris`."""

    error = "invalid_redirect_uri"
    status = 400


class InvalidTokenError(OAuthError):
    """RFC 6750 §3.1: a bearer token that is expired, revoked, malformed or wrongly bound."""

    error = "invalid_token"
    status = 401


class MissingTokenError(InvalidTokenError):
    """RFC 6750 §3.1: a request with no bearer token at all is challenged without an error code."""


class AccessDeniedError(OAuthError):
    error = "access_denied"
    status = 403


class NotFoundError(OAuthError):
    error = "not_found"
    status = 404


class ServerError(OAuthError):
    """Anything unexpected; details go to the log only."""


class ConfigError(Exception):
    """Bad configuration: the CLI prints `certbound: error: <message>` and exits 2."""


class StoreError(Exception):
    """The store failed (connection, constraint other than the ones callers handle)."""

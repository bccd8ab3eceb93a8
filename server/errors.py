"""Error hierarchy: OAuth 2.0 error codes (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7591 §3.2.2, RFC 9449).

Each class carries its wire code and HTTP status as class attributes; handlers raise them and the
error middleware (the only place that builds error responses) turns them into JSON.
Infrastructure failures (configuration, storage) live outside the OAuth hierarchy.
"""

from __future__ import annotations

from typing import ClassVar

from certbound.reasons import DISCLOSED, GENERIC_REFUSAL, ProofReason, Reason

__all__ = [
    "AccessDeniedError",
    "ConfigError",
    "InvalidClientError",
    "InvalidClientMetadataError",
    "InvalidDPoPProofError",
    "InvalidRedirectUriError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTokenError",
    "InvalidTokenProofError",
    "MethodNotAllowedError",
    "MissingTokenError",
    "NotFoundError",
    "OAuthError",
    "PayloadTooLargeError",
    "StoreError",
    "StoreUnavailableError",
    "TemporarilyUnavailableError",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "UnsupportedMediaTypeError",
    "UseDPoPNonceError",
]


class OAuthError(Exception):
    """An error the client is told about: `{"error": code, "error_description": description}`.
    Raised as is, it is `server_error` (500): what the error middleware answers for anything
    unexpected, with details only in the log."""

    error: ClassVar[str] = "server_error"
    status: ClassVar[int] = 500

    def __init__(self, description: str = "") -> None:
        super().__init__(description)
        self.description = description

    @property
    def public_description(self) -> str:
        """What the client is told; `description` itself may say more, in the log."""
        return self.description


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
    """RFC 6749 §5.2: client authentication failed (unknown client, bad credentials, wrong method).

    `reason` is the machine code logged and counted (certbound.reasons); the client reads
    `description` only when the reason is disclosed, else a generic sentence (no oracle).
    `disclosed=True` shows the description whatever the reason: workload identity refusals
    (SPEC §13) name their check by contract.
    """

    error = "invalid_client"
    status = 401

    #: Set when the client tried HTTP Basic: the response then carries `WWW-Authenticate: Basic`
    #: (RFC 6749 §5.2).
    basic_challenge: bool = False
    #: The client_id the request named, for the access log (set by client authentication).
    client_id: str | None = None
    #: The refused client's registered method, when it was found (access log only).
    auth_method: str | None = None

    def __init__(
        self, description: str = "", *, reason: Reason = Reason.UNCLASSIFIED, disclosed: bool = False
    ) -> None:
        super().__init__(description)
        self.reason = reason
        self.disclosed = disclosed

    @property
    def public_description(self) -> str:
        return self.description if self.disclosed or self.reason in DISCLOSED else GENERIC_REFUSAL


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


class InvalidClientMetadataError(OAuthError):
    """RFC 7591 §3.2.2. The description starts with the metadata member at fault
    (certbound.clientmeta.metadata_error_field reads it)."""

    error = "invalid_client_metadata"
    status = 400


class InvalidRedirectUriError(OAuthError):
    """RFC 7591 §3.2.2; the description starts with `redirect_uris`."""

    error = "invalid_redirect_uri"
    status = 400


class InvalidDPoPProofError(OAuthError):
    """RFC 9449 §5: the token endpoint's refusal of a DPoP proof (malformed, or failing a check of
    §4.3); `reason` is the machine code of the access log (certbound.reasons.ProofReason)."""

    error = "invalid_dpop_proof"
    status = 400

    def __init__(self, description: str, *, reason: ProofReason) -> None:
        super().__init__(description)
        self.reason = reason


class UseDPoPNonceError(InvalidDPoPProofError):
    """RFC 9449 §8: the proof must carry a nonce this server issued; the answer carries a fresh
    one, `nonce`, in its `DPoP-Nonce` header."""

    error = "use_dpop_nonce"

    def __init__(self, description: str, *, nonce: str, reason: ProofReason) -> None:
        super().__init__(description, reason=reason)
        self.nonce = nonce


class InvalidTokenError(OAuthError):
    """RFC 6750 §3.1: a bearer token that is expired, revoked, malformed or wrongly bound."""

    error = "invalid_token"
    status = 401

    #: Set by a resource that accepts DPoP when the request used the DPoP scheme or the token is
    #: DPoP-bound: the challenge is then `DPoP ..., algs="..."` (RFC 9449 §7.1) with these algs.
    dpop_algs: tuple[str, ...] | None = None


class InvalidTokenProofError(InvalidTokenError):
    """RFC 9449 §7.1: a resource's refusal of the DPoP proof that came with a token (401)."""

    error = "invalid_dpop_proof"


class MissingTokenError(InvalidTokenError):
    """RFC 6750 §3.1: a request with no bearer token at all is challenged without an error code."""


class AccessDeniedError(OAuthError):
    error = "access_denied"
    status = 403


class NotFoundError(OAuthError):
    error = "not_found"
    status = 404


class TemporarilyUnavailableError(OAuthError):
    """RFC 6749 §4.1.2.1: "the authorization server is currently unable to handle the request due
    to a temporary overloading or maintenance" (here: its database does not answer, too many
    slow secret checks are waiting, or the CPU-heavy work queue is full, certbound.cpupool). The
    response carries `Retry-After` (RFC 9110 §10.2.3)."""

    error = "temporarily_unavailable"
    status = 503
    #: Seconds a client should wait before retrying.
    retry_after: ClassVar[int] = 2


class ConfigError(Exception):
    """Bad configuration: the CLI prints `certbound: error: <message>` and exits 2."""


class StoreError(Exception):
    """The store failed (connection, constraint other than the ones callers handle)."""


class StoreUnavailableError(StoreError):
    """The database did not answer in time, refused the connection or dropped it: the same request
    may succeed later. The error middleware answers it with TemporarilyUnavailableError."""

"""Domain objects the store takes and returns: clients, signing keys, reference tokens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Client",
    "ReferenceToken",
    "SigningKeyRecord",
]


@dataclass(frozen=True, slots=True)
class Client:
    """A registered client.

    `metadata` is the RFC 7591 client metadata as registered (defaults filled, unknown members
    kept), never including the secret. The secret lives apart: `secret_hash` is an HMAC for
    methods that only compare it; `secret_ciphertext` is the AES-GCM encrypted secret for
    client_secret_jwt, which needs the plain secret as an HMAC key.
    """

    client_id: str
    metadata: Mapping[str, Any]
    client_id_issued_at: int
    secret_hash: bytes | None = None
    secret_ciphertext: bytes | None = None
    secret_expires_at: int = 0
    registration_token_hash: bytes | None = None
    # Read from `metadata` once: the token endpoint asks for them on every request.
    auth_method: str = field(init=False, compare=False)
    grant_types: tuple[str, ...] = field(init=False, compare=False)
    scopes: tuple[str, ...] = field(init=False, compare=False)
    access_token_as_jwt: bool = field(init=False, compare=False)
    #: RFC 8705 §3.4 `tls_client_certificate_bound_access_tokens`.
    certificate_bound: bool = field(init=False, compare=False)
    #: RFC 9449 §5.2 `dpop_bound_access_tokens`: every token request must carry a DPoP proof.
    dpop_bound: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        metadata = self.metadata
        derived = {
            "auth_method": str(metadata.get("token_endpoint_auth_method", "client_secret_basic")),
            "grant_types": tuple(metadata.get("grant_types", ())),
            "scopes": tuple(str(metadata.get("scope", "")).split()),
            "access_token_as_jwt": bool(metadata.get("access_token_as_jwt", True)),
            "certificate_bound": bool(metadata.get("tls_client_certificate_bound_access_tokens", False)),
            "dpop_bound": bool(metadata.get("dpop_bound_access_tokens", False)),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)  # frozen: set once, here

    @property
    def is_confidential(self) -> bool:
        return self.auth_method != "none"


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    """A server signing key as stored: the private key PEM is encrypted at rest."""

    kid: str
    alg: str
    private_key_ciphertext: bytes
    created_at: int
    retired_at: int | None = None

    @property
    def active(self) -> bool:
        return self.retired_at is None


@dataclass(frozen=True, slots=True)
class ReferenceToken:
    """An opaque access token; only the SHA-256 of the token string is stored."""

    token_hash: bytes
    jti: str
    client_id: str
    subject: str
    scope: str
    audience: str
    issued_at: int
    expires_at: int
    cnf_x5t_s256: str | None = None
    revoked: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: RFC 9449 §6: the thumbprint of the DPoP key the token is bound to.
    cnf_jkt: str | None = None

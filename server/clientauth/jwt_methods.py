"""client_secret_jwt and private_key_jwt (OpenID Connect Core §9, RFC 7523 §2.2).

Each method picks its key material and algorithm family, lets `AssertionValidator` check the
assertion, and only then records its jti: one conditional insert shared by every worker and node,
so a replayed assertion, even two copies raced concurrently, is honoured once (RFC 7523 §3 item 7).
An assertion accepted only because of `--assertion-audience legacy` is counted for its client
(certbound.legacyaudience).
"""

from __future__ import annotations

import functools
import time
from typing import Any, ClassVar

from certbound.clientauth.assertion import (
    ASYMMETRIC_ALGS,
    HMAC_ALGS,
    AssertionValidator,
    ParsedAssertion,
    VerifiedAssertion,
    check_algorithm,
)
from certbound.clientauth.credentials import PresentedCredentials
from certbound.config import Settings
from certbound.context import ServerContext
from certbound.errors import InvalidClientError, InvalidClientMetadataError
from certbound.jwks import require_key_source
from certbound.keypolicy import costly_to_verify
from certbound.models import Client
from certbound.reasons import Reason

__all__ = ["ClientSecretJwt", "PrivateKeyJwt", "check_signing_alg"]


def _read_assertion(presented: PresentedCredentials) -> ParsedAssertion:
    if presented.assertion is None:  # the mechanism check makes this unreachable
        raise InvalidClientError("client_assertion is missing", reason=Reason.MALFORMED_CREDENTIALS)
    subject = presented.assertion.claims.get("sub")
    if presented.client_id_named and isinstance(subject, str) and subject != presented.client_id:
        # Checked before any key is fetched: a client's own assertion names it as sub (RFC 7523 §3).
        raise InvalidClientError(
            "client_assertion sub differs from client_id", reason=Reason.CLIENT_ID_MISMATCH
        )
    return presented.assertion


async def _accept(verified: VerifiedAssertion, context: ServerContext) -> None:
    """Record the jti (the assertion is honoured once), then count a legacy-audience assertion."""
    fresh = await context.store.record_assertion_jti(
        verified.client.client_id, verified.jti, verified.jti_expires_at
    )
    if not fresh:
        raise InvalidClientError(
            "client_assertion jti has already been used (replay): each assertion needs a new jti",
            reason=Reason.JTI_REPLAYED,
        )
    if verified.legacy_audience:
        context.legacy_audience.record(verified.client.client_id)


def check_signing_alg(metadata: dict[str, Any], family: tuple[str, ...], method: str) -> None:
    """Registration: a `token_endpoint_auth_signing_alg` must be of the method's family."""
    alg = metadata.get("token_endpoint_auth_signing_alg")
    if alg is not None and alg not in family:
        raise InvalidClientMetadataError(
            f"token_endpoint_auth_signing_alg {alg!r} is not allowed with {method} "
            f"(allowed: {', '.join(family)})"
        )


class ClientSecretJwt:
    """HMAC (HS256/384/512) keyed by the client secret, which is stored encrypted for this."""

    name: ClassVar[str] = "client_secret_jwt"

    async def verify(self, presented: PresentedCredentials, client: Client, context: ServerContext) -> None:
        parsed = _read_assertion(presented)
        key = context.client_keys.hmac_key_for(client, context.vault)
        verified = AssertionValidator(context.settings).validate(parsed, client, [key], family=HMAC_ALGS)
        # Only after the MAC verified: whether a secret expired is the client's business alone.
        if client.secret_expires_at and client.secret_expires_at < time.time():
            raise InvalidClientError("client secret has expired", reason=Reason.SECRET_EXPIRED)
        await _accept(verified, context)

    def validate_metadata(self, metadata: dict[str, Any], settings: Settings) -> None:
        check_signing_alg(metadata, HMAC_ALGS, self.name)


class PrivateKeyJwt:
    """Signatures (RSA, RSA-PSS, ECDSA, EdDSA) verified with the client's `jwks` or `jwks_uri`."""

    name: ClassVar[str] = "private_key_jwt"

    async def verify(self, presented: PresentedCredentials, client: Client, context: ServerContext) -> None:
        parsed = _read_assertion(presented)
        validator = AssertionValidator(context.settings)
        # Refuse none/HMAC/unregistered algs before any key fetch.
        check_algorithm(parsed, client, ASYMMETRIC_ALGS)
        keys = await context.client_keys.keys_for(client)
        kid = parsed.kid
        if kid is not None and all(key.kid != kid for key in keys):
            # The client may have rotated its keys since we cached them.
            keys = await context.client_keys.keys_for(client, refresh=True)
        key = validator.select_key(parsed, client, keys, family=ASYMMETRIC_ALGS)
        if costly_to_verify(key.public_key):
            # A key the client chose and dear to verify with: off the event loop (certbound.cpupool).
            validate = functools.partial(validator.validate, family=ASYMMETRIC_ALGS)
            verified = await context.cpu.run(validate, parsed, client, [key])
        else:
            verified = validator.validate(parsed, client, [key], family=ASYMMETRIC_ALGS)
        await _accept(verified, context)

    def validate_metadata(self, metadata: dict[str, Any], settings: Settings) -> None:
        check_signing_alg(metadata, ASYMMETRIC_ALGS, self.name)
        require_key_source(metadata, settings)

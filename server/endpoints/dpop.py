"""The token endpoint's DPoP step (RFC 9449 §5, §8; SPEC §12): the proof of the request, checked
after client authentication, so only an authenticated client can make the server verify one.

The proof must be for `POST` at the URL the request was sent to: the token endpoint under the
issuer, or its mTLS alias (RFC 8705 §5) on the --mtls-port listener. Its signature is checked with
the one key it carries, off the event loop when that key is costly (certbound.cpupool), as client
assertions are. With --dpop-nonce it must carry a nonce this server (or any node sharing the master
key) issued less than 5 minutes ago. Its jti is recorded last, in the store every worker and node
shares, and accepted once whoever sends it.
"""

from __future__ import annotations

import functools

from aiohttp import web

from certbound.accesslog import note
from certbound.context import ServerContext
from certbound.dpop import DPOP_HEADER, NONCE_HEADER, DPoPProofError, NonceCheck, NonceIssuer, VerifiedProof
from certbound.errors import InvalidDPoPProofError, UseDPoPNonceError
from certbound.keypolicy import costly_to_verify
from certbound.reasons import ProofReason

__all__ = ["add_fresh_nonce", "proven_key"]

_NONCE_REFUSALS = {
    NonceCheck.FORGED: ("the DPoP proof's nonce was not issued by this server", ProofReason.NONCE_INVALID),
    NonceCheck.STALE: ("the DPoP proof's nonce has expired", ProofReason.NONCE_EXPIRED),
}


def _requested_url(request: web.Request, context: ServerContext) -> str:
    """The token endpoint's URL as the client reached it: the alias on the --mtls-port listener."""
    settings = context.settings
    transport = request.transport
    local = transport.get_extra_info("sockname") if transport is not None else None
    alias = settings.mtls_base_url
    if alias is not None and isinstance(local, tuple) and local[1] == settings.mtls_port:
        return alias + "/token"
    return settings.token_endpoint


def _check_nonce(proof: VerifiedProof, nonces: NonceIssuer) -> None:
    if proof.nonce is None:
        raise UseDPoPNonceError(
            "the DPoP proof must carry a nonce from this server's DPoP-Nonce header",
            nonce=nonces.issue(),
            reason=ProofReason.NONCE_MISSING,
        )
    check = nonces.check(proof.nonce)
    if check is not NonceCheck.VALID:
        description, reason = _NONCE_REFUSALS[check]
        raise UseDPoPNonceError(description, nonce=nonces.issue(), reason=reason)


async def proven_key(request: web.Request, context: ServerContext) -> str | None:
    """The thumbprint of the key the request's DPoP proof proves, None without a `DPoP` header;
    InvalidDPoPProofError (or UseDPoPNonceError) when the proof does not pass."""
    values = request.headers.getall(DPOP_HEADER, [])
    if not values:
        return None
    checker = context.proofs
    verify = functools.partial(checker.verify, method=request.method, url=_requested_url(request, context))
    try:
        parsed = checker.parse(values)
        if costly_to_verify(parsed.key.public_key):
            proof = await context.cpu.run(verify, parsed)
        else:
            proof = verify(parsed)
    except DPoPProofError as exc:
        raise InvalidDPoPProofError(str(exc), reason=exc.reason) from None
    if context.dpop_nonces is not None:
        _check_nonce(proof, context.dpop_nonces)
    if not await context.store.record_proof_jti(proof.jti, proof.remember_until):
        raise InvalidDPoPProofError(
            "the DPoP proof's jti has already been used (replay)", reason=ProofReason.JTI_REPLAYED
        )
    note(request, dpop_jkt=proof.jkt)
    return proof.jkt


def add_fresh_nonce(response: web.Response, context: ServerContext) -> None:
    """RFC 9449 §8.2: with --dpop-nonce every token response offers the nonce to use next."""
    if context.dpop_nonces is not None:
        response.headers[NONCE_HEADER] = context.dpop_nonces.issue()

"""certbound.dpop: DPoP (RFC 9449), sender-constrained tokens for clients without certificates.

- `ProofChecker` (sans-IO): parses and checks a proof for the token endpoint and resources alike.
- `NonceIssuer`: server nonces every node sharing the master key accepts (RFC 9449 §8).
- `ProofReplayCache`: a resource's memory of accepted jtis.
- `DPoPKey`: the client's side, a key pair that signs proofs.

Nothing here touches the store or the server's configuration: the resource library imports it.
"""

from __future__ import annotations

from certbound.dpop.nonces import NonceCheck, NonceIssuer
from certbound.dpop.proof import (
    DPOP_SIGNING_ALGS,
    DPoPProofError,
    ParsedProof,
    ProofChecker,
    VerifiedProof,
    access_token_hash,
)
from certbound.dpop.replay import ProofReplayCache, ProofReplayCheck
from certbound.dpop.signer import DPoPKey

__all__ = [
    "DPOP_HEADER",
    "DPOP_SIGNING_ALGS",
    "NONCE_HEADER",
    "DPoPKey",
    "DPoPProofError",
    "NonceCheck",
    "NonceIssuer",
    "ParsedProof",
    "ProofChecker",
    "ProofReplayCache",
    "ProofReplayCheck",
    "VerifiedProof",
    "access_token_hash",
]

#: RFC 9449 §4.1: the request header carrying the proof.
DPOP_HEADER = "DPoP"
#: RFC 9449 §8: the response header carrying a server nonce.
NONCE_HEADER = "DPoP-Nonce"

"""Checking a DPoP proof (RFC 9449 §4.2, §4.3), sans-IO, for the token endpoint and resources alike.

`ProofChecker.parse` takes the request's `DPoP` header values and does what costs no signature:
exactly one header (§4.3 item 1), a size cap, a compact JWS with strict JSON (duplicate members
refused), `typ: dpop+jwt`, an allowed asymmetric `alg`, and a public `jwk` within the key policy
(certbound.jose.public_key_from_jwk: private members refused, sizes checked before any number is
decoded), which must be able to verify that alg. A header that passed is remembered (bounded), so
a client's next proofs, whose header is the same, skip the key import. `ProofChecker.verify` then
checks the signature with that one key, `htm`, `htu` (certbound.dpop.urls), `iat` within the leeway
on both sides, the `jti`, and at a resource the `ath` (§4.3 item 12). It records nothing: the caller
checks the nonce and records the jti (`VerifiedProof.remember_until`) once everything else passed,
so a proof that fails a later check does not burn its jti.

Every refusal is a DPoPProofError whose message says what was wrong and whose `reason` is the code
of certbound.reasons.ProofReason; each side wraps it in its own OAuth error (400 at the token
endpoint, 401 at a resource).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import Key
from joserfc.jws import JWSRegistry

from certbound.dpop.urls import normalized_htu
from certbound.jose import (
    JWKError,
    b64url_decode,
    b64url_encode,
    decode_json_segment,
    public_key_from_jwk,
    rfc7638_thumbprint,
)
from certbound.reasons import ProofReason

__all__ = [
    "DPOP_SIGNING_ALGS",
    "MAX_PROOF_CHARS",
    "DPoPProofError",
    "ParsedProof",
    "ProofChecker",
    "VerifiedProof",
    "access_token_hash",
]

#: `dpop_signing_alg_values_supported` (SPEC §12): asymmetric only, never `none` or a MAC.
DPOP_SIGNING_ALGS: tuple[str, ...] = ("ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256")
#: A proof is a few hundred bytes (an 8192-bit RSA key makes it about 3.6 KB): anything larger is
#: refused before it is decoded. (aiohttp refuses a header line over 8190 bytes before this.)
MAX_PROOF_CHARS = 6 * 1024
#: The jti is remembered for replay detection: bound what a client can make us store.
_MAX_JTI_CHARS = 256
#: Proof headers whose key stays imported (one per active client key, typically).
_CACHED_HEADERS = 1024
#: RFC 9449 §4.2; media type names are case-insensitive (RFC 2045 §5.1).
_TYP = "dpop+jwt"
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class DPoPProofError(ValueError):
    """A proof refused; the message says why, `reason` is its code."""

    def __init__(self, message: str, reason: ProofReason) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ParsedProof:
    """A proof whose form, header and key passed; its signature and claims are not checked yet."""

    alg: str
    key: Key
    #: RFC 7638 SHA-256 thumbprint of the proof's `jwk`: the token's `cnf.jkt` (RFC 9449 §6.1).
    jkt: str
    claims: Mapping[str, Any]
    signing_input: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class VerifiedProof:
    jkt: str
    jti: str
    iat: float
    #: The `nonce` claim, when the proof has one (checked by the caller, RFC 9449 §8).
    nonce: str | None
    #: Until when the jti must be remembered: past it, the iat check refuses the proof anyway.
    remember_until: int


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 `ath`: base64url of the SHA-256 of the token's ASCII bytes."""
    return b64url_encode(hashlib.sha256(access_token.encode("ascii")).digest())


def _decoded_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = decode_json_segment(segment)
    except ValueError:
        raise DPoPProofError(
            f"the DPoP proof's {what} is not base64url JSON", ProofReason.MALFORMED
        ) from None
    if not isinstance(value, dict):
        raise DPoPProofError(f"the DPoP proof's {what} is not a JSON object", ProofReason.MALFORMED)
    return value


def _single_value(values: Sequence[str]) -> str:
    if not values:
        raise DPoPProofError("the request has no DPoP header", ProofReason.MISSING)
    if len(values) > 1:
        raise DPoPProofError("the request has more than one DPoP header", ProofReason.REPEATED)
    value = values[0].strip()
    if len(value) > MAX_PROOF_CHARS:
        raise DPoPProofError(
            f"the DPoP proof is larger than {MAX_PROOF_CHARS} characters", ProofReason.TOO_LARGE
        )
    return value


def _jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    # The members the thumbprint hashes (RFC 7638 §3.2) are present, and strings, once the key
    # imported; the others (kid, use, x5c...) are not hashed.
    return rfc7638_thumbprint({name: value for name, value in jwk.items() if isinstance(value, str)})


class ProofChecker:
    """Checks proofs signed with one of `algs`, whose `iat` is within `leeway` seconds of `clock()`."""

    def __init__(
        self,
        *,
        algs: Sequence[str] = DPOP_SIGNING_ALGS,
        leeway: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unknown = [alg for alg in algs if alg not in DPOP_SIGNING_ALGS]
        if unknown or not algs:
            raise ValueError(f"DPoP algorithms must be among {', '.join(DPOP_SIGNING_ALGS)}")
        self.algs: tuple[str, ...] = tuple(algs)
        self.leeway = leeway
        self._clock = clock
        self._headers: OrderedDict[str, tuple[str, Key, str]] = OrderedDict()

    def parse(self, values: Sequence[str]) -> ParsedProof:
        """The request's one proof, read and its key imported; DPoPProofError otherwise."""
        proof = _single_value(values)
        segments = proof.split(".")
        if len(segments) != 3 or not all(segments) or not all(_B64URL.issuperset(part) for part in segments):
            raise DPoPProofError("the DPoP proof is not a compact JWS", ProofReason.MALFORMED)
        alg, key, jkt = self._read_header(segments[0])
        claims = _decoded_object(segments[1], "claims")
        signature = b64url_decode(segments[2])  # the alphabet was checked above
        signing_input = f"{segments[0]}.{segments[1]}".encode("ascii")
        return ParsedProof(alg, key, jkt, claims, signing_input, signature)

    def _read_header(self, segment: str) -> tuple[str, Key, str]:
        """The alg, key and thumbprint of a header segment. A client sends the same header with
        every proof (only the claims change), so what it yields is kept for the next proof: a
        bounded cache of the last _CACHED_HEADERS headers that passed, keyed by the segment itself;
        a header that fails is not kept and fails again each time."""
        cached = self._headers.get(segment)
        if cached is not None:
            self._headers.move_to_end(segment)
            return cached
        read = self._check_header(_decoded_object(segment, "header"))
        self._headers[segment] = read
        if len(self._headers) > _CACHED_HEADERS:
            self._headers.popitem(last=False)
        return read

    def _check_header(self, header: Mapping[str, Any]) -> tuple[str, Key, str]:
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower().removeprefix("application/") != _TYP:
            raise DPoPProofError(f"the DPoP proof's typ must be {_TYP}", ProofReason.TYP)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algs:
            raise DPoPProofError(
                f"the DPoP proof's alg {alg!r} is not accepted (accepted: {', '.join(self.algs)})",
                ProofReason.ALG,
            )
        if "crit" in header:
            # RFC 7515 §4.1.11: no extension is understood here, so a critical one is refused.
            raise DPoPProofError("the DPoP proof's header has crit extensions", ProofReason.MALFORMED)
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise DPoPProofError("the DPoP proof's header has no jwk object", ProofReason.KEY)
        try:
            key = public_key_from_jwk(jwk)
            # Key type, curve, `use`, `alg` and `key_ops` must all allow the header's alg.
            JWSRegistry.algorithms[alg].check_key(key)
            key.check_key_op("verify")
        except JWKError as exc:
            raise DPoPProofError(f"the DPoP proof's jwk {exc}", ProofReason.KEY) from None
        except JoseError:
            raise DPoPProofError(f"the DPoP proof's jwk cannot verify {alg}", ProofReason.KEY) from None
        return alg, key, _jwk_thumbprint(jwk)

    def verify(
        self, parsed: ParsedProof, *, method: str, url: str, access_token: str | None = None
    ) -> VerifiedProof:
        """Signature and claims of a parsed proof for the request `method url`; with `access_token`
        (at a resource) its `ath` too. DPoPProofError otherwise."""
        try:
            algorithm = JWSRegistry.algorithms[parsed.alg]
            valid = algorithm.verify(parsed.signing_input, parsed.signature, parsed.key)
        except (JoseError, ValueError, TypeError):
            valid = False
        if not valid:
            raise DPoPProofError("the DPoP proof's signature is invalid", ProofReason.BAD_SIGNATURE)
        claims = parsed.claims
        jti, htm, htu, iat = (claims.get(name) for name in ("jti", "htm", "htu", "iat"))
        if not isinstance(jti, str) or not jti:
            raise DPoPProofError("the DPoP proof has no jti", ProofReason.CLAIM_MISSING)
        if len(jti) > _MAX_JTI_CHARS:
            raise DPoPProofError(
                f"the DPoP proof's jti is longer than {_MAX_JTI_CHARS} characters", ProofReason.JTI_TOO_LONG
            )
        if not isinstance(htm, str) or not isinstance(htu, str):
            raise DPoPProofError("the DPoP proof has no htm or htu", ProofReason.CLAIM_MISSING)
        if isinstance(iat, bool) or not isinstance(iat, int | float) or not math.isfinite(iat):
            raise DPoPProofError("the DPoP proof has no numeric iat", ProofReason.CLAIM_MISSING)
        if htm != method:
            raise DPoPProofError(f"the DPoP proof's htm is not {method}", ProofReason.HTM_MISMATCH)
        expected = normalized_htu(url)
        if expected is None or normalized_htu(htu) != expected:
            raise DPoPProofError(f"the DPoP proof's htu is not {expected or url}", ProofReason.HTU_MISMATCH)
        now = self._clock()
        if iat < now - self.leeway:
            raise DPoPProofError("the DPoP proof is too old (iat)", ProofReason.IAT_TOO_OLD)
        if iat > now + self.leeway:
            raise DPoPProofError("the DPoP proof's iat is in the future", ProofReason.IAT_IN_FUTURE)
        nonce = claims.get("nonce")
        if nonce is not None and not isinstance(nonce, str):
            raise DPoPProofError("the DPoP proof's nonce is not a string", ProofReason.NONCE_INVALID)
        if access_token is not None:
            ath = claims.get("ath")
            if not isinstance(ath, str) or not hmac.compare_digest(
                ath.encode(), access_token_hash(access_token).encode()
            ):
                raise DPoPProofError(
                    "the DPoP proof's ath is not the hash of the access token", ProofReason.ATH_MISMATCH
                )
        return VerifiedProof(parsed.jkt, jti, iat, nonce, math.ceil(iat + self.leeway) + 1)

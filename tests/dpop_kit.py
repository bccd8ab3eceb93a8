"""DPoP proofs for tests (RFC 9449 §4.2), right and wrong, built with joserfc through the assertion
kit, independently of certbound.dpop.signer; and the table of refusals every side must give
(SPEC §12), shared by the proof checker's unit tests, the token endpoint's and the resource's."""

from __future__ import annotations

import dataclasses
import functools
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey, RSAKey

from certbound.dpop import access_token_hash
from certbound.jose import b64url_encode
from certbound.reasons import ProofReason
from tests.assertion_kit import compact, hmac_compact, sign

__all__ = ["Case", "ProofKey", "accepted_variants", "refusals"]


class ProofKey:
    """A client's DPoP key (P-256 unless given) and proofs made with it, right or deliberately wrong."""

    def __init__(self, key: ECKey | RSAKey | None = None, alg: str = "ES256") -> None:
        self.key = key or ECKey.generate_key("P-256")
        self.alg = alg
        self.public = {
            name: value
            for name, value in self.key.as_dict(private=False).items()
            if name in ("kty", "crv", "x", "y", "n", "e")
        }

    def claims(
        self, method: str, url: str, *, access_token: str | None = None, **overrides: Any
    ) -> dict[str, Any]:
        """Valid claims; an override of None removes that claim."""
        claims: dict[str, Any] = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(time.time())}
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def header(self, **overrides: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"typ": "dpop+jwt", "jwk": self.public}
        header.update(overrides)
        return header

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        header: dict[str, Any] | None = None,
        signer: ECKey | RSAKey | None = None,
        **claims: Any,
    ) -> str:
        """A proof for `method url`; `header` overrides header members (None removes one),
        `signer` signs with another key than the one in the header, `claims` override claims."""
        members = self.header(**(header or {}))
        protected = {name: value for name, value in members.items() if value is not None}
        # assertion_kit.sign adds the signing key's kid, which a proof has no use for.
        return sign(
            signer or self.key,
            self.alg,
            self.claims(method, url, access_token=access_token, **claims),
            kid=None,
            **protected,
        )


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    #: The values of the request's `DPoP` headers.
    headers: list[str]
    reason: ProofReason
    #: A fragment of the description the refusal must carry.
    says: str


def _other_url(url: str, **parts: Any) -> str:
    split = urlsplit(url)
    return urlunsplit(split._replace(**parts))


def _authority(host: str, port: int | None) -> str:
    return host if port is None else f"{host}:{port}"


@functools.cache
def _weak_rsa_jwk() -> dict[str, Any]:
    """The public JWK of a 1024-bit RSA key: below the key policy (made once: key generation is slow)."""
    numbers = rsa.generate_private_key(65537, 1024).public_key().public_numbers()
    return {"kty": "RSA", "n": _b64int(numbers.n), "e": _b64int(numbers.e)}


@functools.cache
def _rsa_jwk() -> dict[str, Any]:
    """The public JWK of an RSA key, which no ES256 proof can be verified with (made once)."""
    return RSAKey.generate_key(2048).as_dict(private=False)


def _b64int(number: int) -> str:
    return b64url_encode(number.to_bytes((number.bit_length() + 7) // 8, "big"))


def refusals(key: ProofKey, method: str, url: str, *, access_token: str | None = None) -> list[Case]:
    """Every way a proof for `method url` (with `access_token`, at a resource) is refused. The
    proofs carry the current time: build the table when the test runs, not when it is collected."""
    now = int(time.time())
    split = urlsplit(url)

    def proof(**claims: Any) -> str:
        return key.proof(method, url, access_token=access_token, **claims)

    def with_header(**header: Any) -> str:
        return key.proof(method, url, access_token=access_token, header=header)

    def claim_case(name: str, reason: ProofReason, says: str, **claims: Any) -> Case:
        return Case(name, [proof(**claims)], reason, says)

    def header_case(name: str, reason: ProofReason, says: str, **header: Any) -> Case:
        return Case(name, [with_header(**header)], reason, says)

    def htu_case(name: str, **parts: Any) -> Case:
        return claim_case(name, ProofReason.HTU_MISMATCH, "htu is not", htu=_other_url(url, **parts))

    unsigned = key.claims(method, url, access_token=access_token)
    other_method = "GET" if method != "GET" else "POST"
    cases = [
        Case("two DPoP headers", [proof(), proof()], ProofReason.REPEATED, "more than one DPoP header"),
        Case("garbage", ["not a jwt at all"], ProofReason.MALFORMED, "not a compact JWS"),
        Case("two segments", ["eyJhIjoxfQ.eyJhIjoxfQ"], ProofReason.MALFORMED, "not a compact JWS"),
        Case("header not JSON", ["bm90IGpzb24.eyJhIjoxfQ.c2ln"], ProofReason.MALFORMED, "not base64url JSON"),
        Case("too large", ["a" * 7000], ProofReason.TOO_LARGE, "larger than"),
        header_case("typ JWT", ProofReason.TYP, "typ must be dpop+jwt", typ="JWT"),
        header_case("typ at+jwt", ProofReason.TYP, "typ must be dpop+jwt", typ="at+jwt"),
        header_case("no typ", ProofReason.TYP, "typ must be dpop+jwt", typ=None),
        Case(
            "alg none",
            [compact({"typ": "dpop+jwt", "alg": "none", "jwk": key.public}, unsigned, b"\0")],
            ProofReason.ALG,
            "alg 'none' is not accepted",
        ),
        Case(
            "alg HS256",
            [hmac_compact(b"secret", "HS256", unsigned, typ="dpop+jwt", jwk=key.public)],
            ProofReason.ALG,
            "alg 'HS256' is not accepted",
        ),
        header_case("crit", ProofReason.MALFORMED, "crit", crit=["exp"]),
        header_case("no jwk", ProofReason.KEY, "no jwk", jwk=None),
        header_case(
            "jwk with private members", ProofReason.KEY, "private", jwk=key.key.as_dict(private=True)
        ),
        header_case("jwk out of policy", ProofReason.KEY, "RSA key of 1024 bits", jwk=_weak_rsa_jwk()),
        header_case(
            "jwk of another type than alg",
            ProofReason.KEY,
            "cannot verify ES256",
            jwk=_rsa_jwk(),
        ),
        Case(
            "signed by another key",
            [key.proof(method, url, access_token=access_token, signer=ECKey.generate_key("P-256"))],
            ProofReason.BAD_SIGNATURE,
            "signature is invalid",
        ),
        claim_case("no jti", ProofReason.CLAIM_MISSING, "no jti", jti=None),
        claim_case("jti too long", ProofReason.JTI_TOO_LONG, "longer than", jti="j" * 300),
        claim_case("no htm", ProofReason.CLAIM_MISSING, "no htm or htu", htm=None),
        claim_case("no htu", ProofReason.CLAIM_MISSING, "no htm or htu", htu=None),
        claim_case("no iat", ProofReason.CLAIM_MISSING, "no numeric iat", iat=None),
        claim_case("iat a string", ProofReason.CLAIM_MISSING, "no numeric iat", iat=str(now)),
        claim_case("htm of another method", ProofReason.HTM_MISMATCH, "htm is not", htm=other_method),
        claim_case("htm in lower case", ProofReason.HTM_MISMATCH, "htm is not", htm=method.lower()),
        htu_case("htu with another path", path=split.path + "x"),
        htu_case("htu with another host", netloc=_authority("other.example", split.port)),
        htu_case("htu with another port", netloc=_authority(split.hostname or "", 1)),
        htu_case("htu over http", scheme="http"),
        claim_case("htu not a URL", ProofReason.HTU_MISMATCH, "htu is not", htu="token"),
        claim_case("iat in the past", ProofReason.IAT_TOO_OLD, "too old", iat=now - 120),
        claim_case("iat in the future", ProofReason.IAT_IN_FUTURE, "in the future", iat=now + 120),
    ]
    if access_token is not None:
        cases += [
            claim_case("no ath", ProofReason.ATH_MISMATCH, "ath is not", ath=None),
            claim_case(
                "ath of another token",
                ProofReason.ATH_MISMATCH,
                "ath is not",
                ath=access_token_hash(access_token + "x"),
            ),
        ]
    return cases


def accepted_variants(key: ProofKey, method: str, url: str) -> dict[str, Callable[..., str]]:
    """The refusals' twins: proofs spelled differently, yet for this request (RFC 9449 §4.3)."""
    split = urlsplit(url)
    upper = _other_url(url, scheme="HTTPS", netloc=_authority((split.hostname or "").upper(), split.port))
    return {
        "htu with query and fragment": lambda **kw: key.proof(method, url + "?a=1#frag", **kw),
        "htu with upper-case scheme and host": lambda **kw: key.proof(method, upper, **kw),
        "htu with a dot segment": lambda **kw: key.proof(
            method, _other_url(url, path="/x/.." + split.path), **kw
        ),
        "iat within the leeway": lambda **kw: key.proof(method, url, iat=int(time.time()) - 50, **kw),
        "typ as a media type": lambda **kw: key.proof(
            method, url, header={"typ": "application/DPoP+JWT"}, **kw
        ),
    }

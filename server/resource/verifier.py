"""Verifying access tokens at a resource server (RFC 9068 §4, RFC 7662 §2) and their binding to a
certificate (RFC 8705 §3) or a DPoP key (RFC 9449 §7), framework-free.

`TokenVerifier.verify(token, certificate, dpop=...)` returns a VerifiedToken or raises
InvalidTokenError with a description for the RFC 6750 / RFC 9449 §7.1 error; AuthorizationServerError
when the AS is needed and cannot answer. JWT mode checks signatures against the AS's published keys
and cannot see revocation: a revoked JWT is accepted until it expires. Introspection mode asks the
AS about every token, so a revocation is seen at once, unless answers are cached
(`introspection_cache_ttl` > 0, default 0).

A token sent with the DPoP scheme comes with its request (`DPoPRequest`): the proof is checked
first (certbound.dpop: signature, `htm`, `htu`, `iat`, `ath`), then the token, then that the proof's
key is the one the token is bound to (`cnf.jkt`), and last its jti is recorded (`dpop_replay`). A
DPoP-bound token sent as Bearer and an unbound token sent as DPoP are refused; a token bound to both
a certificate and a key needs both.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs
from cryptography import x509

from certbound.accesstoken import read_access_token_jwt, verified_claims
from certbound.dpop import (
    DPOP_SIGNING_ALGS,
    DPoPProofError,
    ProofChecker,
    ProofReplayCache,
    ProofReplayCheck,
    VerifiedProof,
)
from certbound.errors import InvalidTokenError, InvalidTokenProofError
from certbound.resource.authserver import AuthorizationServer, AuthorizationServerError, basic_authorization
from certbound.resource.keyset import PublishedKeys
from certbound.tls.peer import PeerCertificates

__all__ = ["DPoPRequest", "TokenVerifier", "VerifiedToken", "certificate_thumbprint"]

#: Introspection answers cached at most; tokens are attacker-chosen, so memory must be bounded.
_MAX_CACHED_ANSWERS = 10_000
_X5T_S256 = "x5t#S256"
_JKT = "jkt"
#: RFC 9068 §2.2 lists the claims every JWT access token carries.
_JWT_REQUIRED_CLAIMS = ("iss", "exp", "aud", "client_id", "iat", "jti")


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """An access token that passed every check; `claims` is the JWT's claims or the
    introspection answer, as received."""

    client_id: str
    subject: str | None
    scope: str
    audience: tuple[str, ...]
    issuer: str | None
    expires_at: int | None
    jti: str | None
    #: The confirmation of a bound token, already matched: RFC 8705 §3.1 `x5t#S256` and/or
    #: RFC 9449 §6.1 `jkt`; None for an unbound token.
    cnf: dict[str, str] | None
    claims: Mapping[str, Any]

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())


def certificate_thumbprint(certificate: x509.Certificate | PeerCertificates) -> str:
    """RFC 8705 §3.1: base64url of the SHA-256 of the certificate's DER encoding."""
    if isinstance(certificate, PeerCertificates):
        return certificate.x5t_s256
    return PeerCertificates.from_certs(certificate, ()).x5t_s256


@dataclass(frozen=True, slots=True)
class DPoPRequest:
    """What a proof is checked against (RFC 9449 §4.3): the request's method, its URL as the client
    sent it (query and fragment are ignored), and the values of its `DPoP` headers."""

    method: str
    url: str
    proofs: Sequence[str]


def _certificate_binding(expected: str, certificate: x509.Certificate | PeerCertificates | None) -> None:
    """RFC 8705 §3: a bound token is accepted only from the connection with its certificate."""
    if certificate is None:
        raise InvalidTokenError("the token is bound to a client certificate: present it over mutual TLS")
    if not hmac.compare_digest(certificate_thumbprint(certificate).encode(), expected.encode()):
        raise InvalidTokenError("the client certificate does not match the token's binding (cnf)")


class _DPoPBoundTokenError(InvalidTokenError):
    """A DPoP-bound token sent as Bearer: challenged with the DPoP scheme all the same."""


def _key_binding(expected: str | None, proof: VerifiedProof | None) -> None:
    """RFC 9449 §7.1: a DPoP-bound token comes with the DPoP scheme and a proof of its key; an
    unbound token does not."""
    if expected is None:
        if proof is not None:
            raise InvalidTokenError("the token is not DPoP-bound: send it with the Bearer scheme")
        return
    if proof is None:
        raise _DPoPBoundTokenError("the token is DPoP-bound: send it with the DPoP scheme and a proof")
    if not hmac.compare_digest(proof.jkt.encode(), expected.encode()):
        raise InvalidTokenError("the DPoP proof's key is not the one the token is bound to (cnf.jkt)")


def _binding(
    cnf: object, certificate: x509.Certificate | PeerCertificates | None, proof: VerifiedProof | None
) -> dict[str, str] | None:
    """Every confirmation the token carries must hold; one this resource cannot check refuses it."""
    if cnf is None:
        _key_binding(None, proof)
        return None
    if (
        not isinstance(cnf, dict)
        or not cnf
        or not set(cnf) <= {_X5T_S256, _JKT}
        or not all(isinstance(value, str) for value in cnf.values())
    ):
        raise InvalidTokenError("the token's confirmation (cnf) is not a certificate or DPoP key thumbprint")
    if _X5T_S256 in cnf:
        _certificate_binding(cnf[_X5T_S256], certificate)
    _key_binding(cnf.get(_JKT), proof)
    return dict(cnf)


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTokenError(f"the token's {name} is not a number")
    return value


def _optional_str(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidTokenError(f"the token's {name} is not a string")
    return value


class TokenVerifier:
    """Verifies access tokens issued by `issuer` for `audience` (default: the issuer).

    JWT mode (default): RFC 9068 §4 checks against the AS's JWK Set (found by RFC 8414 discovery).
    Introspection mode (when given introspection client credentials, sent with
    client_secret_basic): RFC 7662; answers are cached only when `introspection_cache_ttl` > 0,
    for at most that many seconds and never past the token's exp. Either way: iss, aud, exp/nbf
    with `clock_skew` seconds of leeway, and the certificate or DPoP binding. `ca_file` adds a CA
    trusted for the AS's TLS certificate to the system's; `clock` gives the time (seconds since the
    epoch).

    DPoP (RFC 9449): proofs signed with one of `dpop_algs`, their `iat` within `clock_skew`, each
    jti accepted once by `dpop_replay` (default: this process's memory). `dpop_origin`
    (`https://api.example`) is the scheme and authority clients address this resource at, for the
    `htu` check; by default the request's own (its Host header), which a proxy may change.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | None = None,
        ca_file: str | Path | None = None,
        clock_skew: int = 60,
        introspection_client_id: str | None = None,
        introspection_client_secret: str | None = None,
        introspection_cache_ttl: float = 0.0,
        jwks_refresh_cooldown: float = 10.0,
        jwks_max_age: float = 300.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        dpop_algs: Sequence[str] = DPOP_SIGNING_ALGS,
        dpop_replay: ProofReplayCheck | None = None,
        dpop_origin: str | None = None,
    ) -> None:
        if (introspection_client_id is None) != (introspection_client_secret is None):
            raise ValueError("introspection needs both a client_id and a client secret")
        if introspection_cache_ttl < 0:
            raise ValueError("introspection_cache_ttl must be >= 0")
        self.issuer = issuer
        self.audience = audience or issuer
        self._leeway = clock_skew
        self._introspection_auth = (
            basic_authorization(introspection_client_id, introspection_client_secret)
            if introspection_client_id is not None and introspection_client_secret is not None
            else None
        )
        self.introspection_cache_ttl = introspection_cache_ttl
        self._answers: dict[bytes, tuple[float, dict[str, Any]]] = {}
        self._clock = clock
        self._server = AuthorizationServer(issuer, ca_file=ca_file, timeout=timeout)
        self._keys = PublishedKeys(self._fetch_jwks, cooldown=jwks_refresh_cooldown, max_age=jwks_max_age)
        self._proofs = ProofChecker(algs=dpop_algs, leeway=clock_skew, clock=clock)
        self._replay = dpop_replay if dpop_replay is not None else ProofReplayCache(clock=clock)
        self._dpop_origin = dpop_origin.rstrip("/") if dpop_origin is not None else None

    @property
    def dpop_algs(self) -> tuple[str, ...]:
        """The algorithms DPoP proofs may use here (the challenge's `algs`, RFC 9449 §7.1)."""
        return self._proofs.algs

    @property
    def uses_introspection(self) -> bool:
        return self._introspection_auth is not None

    def describe(self) -> str:
        """One line for a start-up log: the mode and what it means for revoked tokens."""
        if not self.uses_introspection:
            return (
                f"verifying JWT access tokens from {self.issuer} for audience {self.audience}; "
                "JWT mode cannot see revocation: a revoked token is accepted until it expires "
                "(use introspection to refuse it at once)"
            )
        cache = (
            f"answers cached up to {self.introspection_cache_ttl:g} s, so a revoked token may pass that long"
            if self.introspection_cache_ttl > 0
            else "answers not cached, so a revoked token is refused at once"
        )
        return f"introspecting access tokens at {self.issuer} for audience {self.audience}; {cache}"

    async def verify(
        self,
        token: str,
        certificate: x509.Certificate | PeerCertificates | None = None,
        *,
        dpop: DPoPRequest | None = None,
    ) -> VerifiedToken:
        """The verified token, or InvalidTokenError saying what is wrong with it (its challenge is
        DPoP's when the request used that scheme or the token is DPoP-bound);
        AuthorizationServerError when the AS is needed and cannot answer. `dpop` is given when the
        token came with the DPoP scheme (`Authorization: DPoP <token>`)."""
        try:
            proof = self._proof(token, dpop) if dpop is not None else None
            verified = await self._verify(token, certificate, proof)
            if proof is not None and not await self._replay.first_use(proof.jti, proof.remember_until):
                raise InvalidTokenProofError("the DPoP proof has already been used (jti replay)")
        except InvalidTokenError as exc:
            if dpop is not None or isinstance(exc, _DPoPBoundTokenError):
                exc.dpop_algs = self.dpop_algs
            raise
        return verified

    def _proof(self, token: str, dpop: DPoPRequest) -> VerifiedProof:
        url = dpop.url
        if self._dpop_origin is not None:
            parts = urlsplit(url)
            url = self._dpop_origin + parts.path
        try:
            parsed = self._proofs.parse(dpop.proofs)
            return self._proofs.verify(parsed, method=dpop.method, url=url, access_token=token)
        except DPoPProofError as exc:
            raise InvalidTokenProofError(str(exc)) from None

    async def _verify(
        self,
        token: str,
        certificate: x509.Certificate | PeerCertificates | None,
        proof: VerifiedProof | None,
    ) -> VerifiedToken:
        if self._introspection_auth is not None:
            answer = await self._introspect(token)
            if answer["active"] is not True:
                raise InvalidTokenError("the token is not active (expired, revoked or unknown)")
            return self._accept(answer, certificate, proof, required=("client_id",))
        signed = read_access_token_jwt(token)
        key = await self._keys.get(signed.headers()["kid"])
        if key is None:
            raise InvalidTokenError("the token is signed by a key the authorization server does not publish")
        claims = verified_claims(signed, key)
        return self._accept(claims, certificate, proof, required=_JWT_REQUIRED_CLAIMS)

    def _accept(
        self,
        claims: Mapping[str, Any],
        certificate: x509.Certificate | PeerCertificates | None,
        proof: VerifiedProof | None,
        *,
        required: Sequence[str],
    ) -> VerifiedToken:
        missing = [name for name in required if claims.get(name) is None]
        if missing:
            raise InvalidTokenError(f"the token has no {', '.join(missing)}")
        issuer = _optional_str(claims, "iss")
        if issuer is not None and issuer != self.issuer:
            raise InvalidTokenError("the token was issued by another authorization server")
        now = self._clock()
        expires_at = _number(claims, "exp")
        if expires_at is not None and now >= expires_at + self._leeway:
            raise InvalidTokenError("the token has expired")
        not_before = _number(claims, "nbf")
        if not_before is not None and not_before > now + self._leeway:
            raise InvalidTokenError("the token is not valid yet")
        aud = claims.get("aud")
        audience = (aud,) if isinstance(aud, str) else tuple(aud) if isinstance(aud, list) else ()
        if self.audience not in audience:
            raise InvalidTokenError("the token is meant for another audience")
        client_id = _optional_str(claims, "client_id")
        if client_id is None:
            raise InvalidTokenError("the token names no client_id")
        return VerifiedToken(
            client_id=client_id,
            subject=_optional_str(claims, "sub"),
            scope=_optional_str(claims, "scope") or "",
            audience=tuple(str(item) for item in audience),
            issuer=issuer,
            expires_at=int(expires_at) if expires_at is not None else None,
            jti=_optional_str(claims, "jti"),
            cnf=_binding(claims.get("cnf"), certificate, proof),
            claims=claims,
        )

    async def _introspect(self, token: str) -> dict[str, Any]:
        cache_key = hashlib.sha256(token.encode("utf-8")).digest()
        cached = self._answers.get(cache_key)
        if cached is not None:
            if cached[0] > self._clock():
                return cached[1]
            del self._answers[cache_key]
        answer = await self._server.request_json(
            await self._server.endpoint("introspection_endpoint"),
            data={"token": token, "token_type_hint": "access_token"},
            headers={hdrs.AUTHORIZATION: self._introspection_auth or ""},
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("active"), bool):
            raise AuthorizationServerError("the introspection answer has no boolean active member")
        self._remember(cache_key, answer)
        return answer

    def _remember(self, cache_key: bytes, answer: dict[str, Any]) -> None:
        """Cache `answer` for introspection_cache_ttl seconds, never past the token's exp."""
        now = self._clock()
        ttl = self.introspection_cache_ttl
        exp = answer.get("exp")
        if answer["active"] and isinstance(exp, int | float) and not isinstance(exp, bool):
            ttl = min(ttl, exp - now)
        if ttl <= 0:
            return
        if len(self._answers) >= _MAX_CACHED_ANSWERS:
            self._answers.clear()
        self._answers[cache_key] = (now + ttl, answer)

    async def _fetch_jwks(self) -> object:
        return await self._server.request_json(await self._server.endpoint("jwks_uri"))

    async def close(self) -> None:
        await self._server.close()

    async def __aenter__(self) -> TokenVerifier:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

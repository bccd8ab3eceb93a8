"""JWT client assertions (RFC 7523 §3, OpenID Connect Core §9, draft-ietf-oauth-rfc7523bis §4).

Sans-IO: `AssertionValidator.validate` takes the assertion, the client, the candidate keys, the
settings and a clock, and returns a `VerifiedAssertion` or raises InvalidClientError. It fetches
nothing and records nothing: the caller records the jti (replay protection) only after validation
succeeded, so that a forged assertion cannot burn a legitimate client's jti.

One signature check per assertion, whatever the client registered (issue 9 finding 3): the key is
the one the header's `kid` names among the client's keys that can verify the alg, or, without a
kid, the only such key; when several could, the assertion must name one. The key must be within
certbound.keypolicy (a JWK Set is checked when registered or fetched; this guards keys that
reach the validator another way).
"""

from __future__ import annotations

import binascii
import math
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import Key, OctKey
from joserfc.jws import JWSRegistry

from certbound.config import Settings
from certbound.errors import InvalidClientError
from certbound.jose import (
    JWS_ASYMMETRIC_ALGS,
    JWS_HMAC_ALGS,
    JWS_SIGNING_ALGS,
    b64url_decode,
    decode_json_segment,
)
from certbound.keypolicy import KeyPolicyError, check_public_key
from certbound.models import Client
from certbound.reasons import Reason

__all__ = [
    "ASSERTION_SIGNING_ALGS",
    "ASSERTION_TYPE",
    "ASYMMETRIC_ALGS",
    "HMAC_ALGS",
    "AssertionValidator",
    "ParsedAssertion",
    "VerifiedAssertion",
    "parse_assertion",
]

#: RFC 7523 §2.2: the only `client_assertion_type` this server accepts.
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: client_secret_jwt: MACs keyed by the client secret (OIDC Core §9).
HMAC_ALGS = JWS_HMAC_ALGS
#: private_key_jwt: signatures verified with the client's registered public keys.
ASYMMETRIC_ALGS = JWS_ASYMMETRIC_ALGS
#: Published in discovery (SPEC §5); `none` is never among them.
ASSERTION_SIGNING_ALGS = JWS_SIGNING_ALGS

# Assertions are a few hundred bytes; anything far larger is not worth decoding.
_MAX_ASSERTION_CHARS = 16 * 1024
# The jti is stored for replay detection: bound what a client can make us store.
_MAX_JTI_CHARS = 256
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# draft-ietf-oauth-rfc7523bis §4.1 registers `client-authentication+jwt`; plain JWT and no typ
# stay accepted for existing clients. Any other typ (at+jwt, id_token+jwt, logout+jwt...) marks a
# token minted for another purpose being replayed as a client credential.
_ACCEPTED_TYP = frozenset({"jwt", "client-authentication+jwt"})


@dataclass(frozen=True, slots=True)
class ParsedAssertion:
    """A compact JWS split and decoded once, not yet trusted."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    """A valid assertion; its jti must be recorded until `jti_expires_at` before it is honoured."""

    client: Client
    jti: str
    jti_expires_at: int


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = decode_json_segment(segment)
    except ValueError:
        raise InvalidClientError(
            f"client_assertion {what} is not a base64url JSON object", reason=Reason.ASSERTION_MALFORMED
        ) from None
    if not isinstance(value, dict):
        raise InvalidClientError(
            f"client_assertion {what} is not a JSON object", reason=Reason.ASSERTION_MALFORMED
        )
    return value


def parse_assertion(token: str) -> ParsedAssertion:
    """Split a compact JWS (RFC 7515 §7.1), decode its header and claims strictly, and refuse what
    no client may send (alg none, a foreign typ, crit): checks of the request alone, run before the
    client is looked up."""
    if len(token) > _MAX_ASSERTION_CHARS:
        raise InvalidClientError(
            f"client_assertion is larger than {_MAX_ASSERTION_CHARS} characters",
            reason=Reason.ASSERTION_MALFORMED,
        )
    segments = token.split(".")
    if len(segments) != 3 or not all(_B64URL.fullmatch(segment) for segment in segments):
        raise InvalidClientError(
            "client_assertion is not a compact JWS (three base64url segments)",
            reason=Reason.ASSERTION_MALFORMED,
        )
    header_segment, payload_segment, signature_segment = segments
    header = _json_object(header_segment, "header")
    claims = _json_object(payload_segment, "claims")
    try:
        signature = b64url_decode(signature_segment)
    except (ValueError, binascii.Error):
        raise InvalidClientError(
            "client_assertion signature is not base64url", reason=Reason.ASSERTION_MALFORMED
        ) from None
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise InvalidClientError("client_assertion header has no alg", reason=Reason.ASSERTION_MALFORMED)
    if alg.lower() == "none":
        raise InvalidClientError(
            "client_assertion is unsigned (alg none is never accepted)", reason=Reason.ALG_NONE
        )
    _check_header(header)
    signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
    return ParsedAssertion(header, claims, signing_input, signature)


def _check_header(header: Mapping[str, Any]) -> None:
    typ = header.get("typ")
    # RFC 7515 §4.1.9: "application/" may be omitted and media types are case-insensitive.
    if typ is not None and (
        not isinstance(typ, str) or typ.lower().removeprefix("application/") not in _ACCEPTED_TYP
    ):
        raise InvalidClientError(
            f"client_assertion typ {typ!r} is not a client authentication JWT "
            "(expected client-authentication+jwt)",
            reason=Reason.TYP_NOT_CLIENT_AUTH,
        )
    if "kid" in header and not isinstance(header["kid"], str):
        raise InvalidClientError("client_assertion kid is not a string", reason=Reason.ASSERTION_MALFORMED)
    if "crit" in header:
        # RFC 7515 §4.1.11: we understand no extensions, so any critical one is a refusal.
        raise InvalidClientError(
            "client_assertion header has crit extensions this server does not support",
            reason=Reason.CRIT_UNSUPPORTED,
        )


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidClientError(
            f"client_assertion {name} is not a NumericDate", reason=Reason.CLAIM_MALFORMED
        )
    return value


def _can_verify(alg: str, key: Key) -> bool:
    try:
        # Key type, curve, `use`, `alg` and `key_ops` must all allow this algorithm.
        JWSRegistry.algorithms[alg].check_key(key)
        key.check_key_op("verify")
    except JoseError:
        return False
    return True


def _select_key(parsed: ParsedAssertion, alg: str, keys: Sequence[Key]) -> Key:
    kid = parsed.kid
    if kid is not None:
        keys = [key for key in keys if key.kid == kid]
        if not keys:
            raise InvalidClientError(
                f"client_assertion kid {kid!r} matches none of the client's keys", reason=Reason.KID_UNKNOWN
            )
    usable = [key for key in keys if _can_verify(alg, key)]
    if not usable:
        raise InvalidClientError(
            f"none of the client's keys can verify alg {alg}", reason=Reason.NO_USABLE_KEY
        )
    if len(usable) > 1:
        raise InvalidClientError(
            f"{len(usable)} of the client's keys can verify alg {alg}: "
            "the client_assertion header must name one with kid",
            reason=Reason.KID_REQUIRED,
        )
    key = usable[0]
    if not isinstance(key, OctKey):
        try:
            check_public_key(key.public_key)
        except KeyPolicyError as exc:
            raise InvalidClientError(
                f"client key refused: it is {exc}", reason=Reason.KEY_OUT_OF_POLICY
            ) from None
    return key


class AssertionValidator:
    """Validates client assertions under one server's settings (audience mode, lifetimes, skew)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._skew = settings.clock_skew
        self._max_lifetime = settings.assertion_max_lifetime
        audiences = [settings.issuer]
        # Descriptions of claim checks are disclosed (certbound.reasons): each names the server
        # flag that relaxes it, so a client library's defaults (Authlib: aud = the token endpoint,
        # exp an hour ahead) can be told from a broken client.
        audience_rule = (
            f"{settings.issuer}, the issuer (a server run with --assertion-audience legacy also "
            "accepts the token endpoint URL)"
        )
        if settings.assertion_audience == "legacy":
            # RFC 7523 §3 item 3 let clients use the token endpoint URL; rfc7523bis keeps it only
            # as an opt-in for older clients, one value at a time.
            audiences.append(settings.token_endpoint)
            if settings.mtls_base_url is not None:
                audiences.append(settings.mtls_base_url + "/token")
            audience_rule = " or ".join(audiences)
        self.audiences: tuple[str, ...] = tuple(audiences)
        self._audience_rule = audience_rule

    def check_algorithm(self, parsed: ParsedAssertion, client: Client, family: Collection[str]) -> str:
        """Refuse an alg outside `family` (the method's list) or other than the client's registered
        `token_endpoint_auth_signing_alg`; cheap, so callers run it before fetching keys."""
        alg = parsed.alg
        if alg not in family:
            raise InvalidClientError(
                f"client_assertion alg {alg} is not allowed for {client.auth_method} "
                f"(allowed: {', '.join(family)})",
                reason=Reason.ALG_NOT_ALLOWED,
            )
        registered = client.metadata.get("token_endpoint_auth_signing_alg")
        if registered is not None and alg != registered:
            raise InvalidClientError(
                f"client_assertion alg {alg} differs from the registered "
                f"token_endpoint_auth_signing_alg {registered}",
                reason=Reason.ALG_NOT_REGISTERED,
            )
        return alg

    def select_key(
        self, parsed: ParsedAssertion, client: Client, keys: Sequence[Key], *, family: Collection[str]
    ) -> Key:
        """The one key that may verify `parsed`, after the cheap checks (alg, header, the key's
        choice and policy); InvalidClientError otherwise. Verifies nothing."""
        return _select_key(parsed, self.check_algorithm(parsed, client, family), keys)

    def validate(
        self,
        assertion: str | ParsedAssertion,
        client: Client,
        keys: Sequence[Key],
        *,
        family: Collection[str],
    ) -> VerifiedAssertion:
        parsed = parse_assertion(assertion) if isinstance(assertion, str) else assertion
        key = self.select_key(parsed, client, keys, family=family)
        try:
            valid = JWSRegistry.algorithms[parsed.alg].verify(parsed.signing_input, parsed.signature, key)
        except (JoseError, ValueError, TypeError):
            valid = False
        if not valid:
            raise InvalidClientError("client_assertion signature is invalid", reason=Reason.BAD_SIGNATURE)
        jti, expires_at = self._check_claims(parsed.claims, client.client_id)
        return VerifiedAssertion(client, jti, expires_at)

    def _check_claims(self, claims: Mapping[str, Any], client_id: str) -> tuple[str, int]:
        # RFC 7523 §3 items 1-2 and OIDC Core §9: the client asserts about itself.
        if claims.get("iss") != client_id:
            raise InvalidClientError("client_assertion iss must be the client_id", reason=Reason.ISS_MISMATCH)
        if claims.get("sub") != client_id:
            raise InvalidClientError("client_assertion sub must be the client_id", reason=Reason.SUB_MISMATCH)
        self._check_audience(claims.get("aud"))

        now = self._clock()
        exp = _number(claims, "exp")
        if exp is None:
            raise InvalidClientError("client_assertion has no exp", reason=Reason.EXP_MISSING)
        if exp + self._skew <= now:
            raise InvalidClientError("client_assertion has expired", reason=Reason.EXPIRED)
        if exp > now + self._max_lifetime + self._skew:
            raise InvalidClientError(
                f"client_assertion exp is more than {self._max_lifetime} seconds ahead "
                "(too long-lived: the server's --assertion-max-lifetime)",
                reason=Reason.EXP_TOO_FAR,
            )
        for name in ("nbf", "iat"):
            value = _number(claims, name)
            if value is not None and value > now + self._skew:
                raise InvalidClientError(
                    f"client_assertion {name} is in the future", reason=Reason.NOT_YET_VALID
                )

        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise InvalidClientError("client_assertion has no jti", reason=Reason.JTI_MISSING)
        if len(jti) > _MAX_JTI_CHARS:
            raise InvalidClientError(
                f"client_assertion jti is longer than {_MAX_JTI_CHARS} characters", reason=Reason.JTI_TOO_LONG
            )
        # Accepted until exp + skew, so the jti is remembered at least that long.
        return jti, math.ceil(exp + self._skew)

    def _check_audience(self, aud: object) -> None:
        # rfc7523bis §4: the issuer identifier as the sole audience; an array may hold only it.
        # Several values are refused even when one is right (the 2025 audience-injection attack
        # relied on servers accepting an assertion whose aud merely contained them).
        if isinstance(aud, list):
            if len(aud) != 1:
                raise InvalidClientError(
                    "client_assertion aud must hold exactly one value, the issuer",
                    reason=Reason.AUD_NOT_ISSUER,
                )
            aud = aud[0]
        if not isinstance(aud, str) or aud not in self.audiences:
            raise InvalidClientError(
                f"client_assertion aud must be {self._audience_rule}", reason=Reason.AUD_NOT_ISSUER
            )

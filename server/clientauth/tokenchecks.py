"""Checks every JWT credential shares, whoever signed it: a client's own assertion (RFC 7523 §3) or
a workload's platform token (SPEC §13): the one key that may verify it, the signature, the time
claims (RFC 7519 §4.1.4-6), a sole audience, a bounded `jti`.

One signature check per token, whatever the key set holds (issue 9 finding 3): the key is the one
the header's `kid` names among the keys that can verify the alg, or, without a kid, the only such
key; when several could, the token must name one. The key must be within certbound.keypolicy (a
JWK Set is checked when registered or fetched; this guards keys that reach here another way).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import Key, OctKey
from joserfc.jws import JWSRegistry

from certbound.clientauth.jwsparse import ParsedAssertion
from certbound.errors import InvalidClientError
from certbound.keypolicy import KeyPolicyError, check_public_key
from certbound.reasons import Reason

__all__ = [
    "MAX_JTI_CHARS",
    "choose_key",
    "numeric_date",
    "replay_window",
    "require_jti",
    "require_started",
    "require_unexpired",
    "require_valid_signature",
    "sole_audience",
]

#: The jti is stored for replay detection: bound what a client can make us store.
MAX_JTI_CHARS = 256


def numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim (RFC 7519 §2), None when absent."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidClientError(
            f"client_assertion {name} is not a NumericDate", reason=Reason.CLAIM_MALFORMED
        )
    return value


def require_unexpired(claims: Mapping[str, Any], *, now: float, skew: float) -> float:
    """RFC 7519 §4.1.4: `exp` present and not past (within `skew`); returns it. How far ahead it
    may be is the caller's rule, checked next."""
    exp = numeric_date(claims, "exp")
    if exp is None:
        raise InvalidClientError("client_assertion has no exp", reason=Reason.EXP_MISSING)
    if exp + skew <= now:
        raise InvalidClientError("client_assertion has expired", reason=Reason.EXPIRED)
    return exp


def require_started(claims: Mapping[str, Any], *, now: float, skew: float) -> None:
    """RFC 7519 §4.1.5-6: `nbf` and `iat`, when present, not in the future beyond `skew`."""
    for name in ("nbf", "iat"):
        value = numeric_date(claims, name)
        if value is not None and value > now + skew:
            raise InvalidClientError(f"client_assertion {name} is in the future", reason=Reason.NOT_YET_VALID)


def sole_audience(aud: object) -> str | None:
    """The audience when `aud` names exactly one (a string, or an array of one string); None
    otherwise. rfc7523bis §4 and SPEC §13 refuse several values even when one is right (the 2025
    audience-injection attack relied on servers accepting an assertion whose aud merely contained
    them)."""
    if isinstance(aud, list):
        if len(aud) != 1:
            return None
        aud = aud[0]
    return aud if isinstance(aud, str) else None


def require_jti(claims: Mapping[str, Any]) -> str:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidClientError("client_assertion has no jti", reason=Reason.JTI_MISSING)
    if len(jti) > MAX_JTI_CHARS:
        raise InvalidClientError(
            f"client_assertion jti is longer than {MAX_JTI_CHARS} characters", reason=Reason.JTI_TOO_LONG
        )
    return jti


def replay_window(exp: float, skew: float) -> int:
    """Until when a jti must be remembered: the token is accepted until exp + skew."""
    return math.ceil(exp + skew)


def _can_verify(alg: str, key: Key) -> bool:
    try:
        # Key type, curve, `use`, `alg` and `key_ops` must all allow this algorithm.
        JWSRegistry.algorithms[alg].check_key(key)
        key.check_key_op("verify")
    except JoseError:
        return False
    return True


def choose_key(parsed: ParsedAssertion, alg: str, keys: Sequence[Key], *, whose: str) -> Key:
    """The one key of `keys` (described as `whose`, e.g. "the client's keys") that may verify
    `parsed` with `alg`; InvalidClientError otherwise."""
    kid = parsed.kid
    if kid is not None:
        keys = [key for key in keys if key.kid == kid]
        if not keys:
            raise InvalidClientError(
                f"client_assertion kid {kid!r} matches none of {whose}", reason=Reason.KID_UNKNOWN
            )
    usable = [key for key in keys if _can_verify(alg, key)]
    if not usable:
        raise InvalidClientError(f"none of {whose} can verify alg {alg}", reason=Reason.NO_USABLE_KEY)
    if len(usable) > 1:
        raise InvalidClientError(
            f"{len(usable)} of {whose} can verify alg {alg}: "
            "the client_assertion header must name one with kid",
            reason=Reason.KID_REQUIRED,
        )
    key = usable[0]
    if not isinstance(key, OctKey):
        try:
            check_public_key(key.public_key)
        except KeyPolicyError as exc:
            raise InvalidClientError(f"key refused: it is {exc}", reason=Reason.KEY_OUT_OF_POLICY) from None
    return key


def require_valid_signature(parsed: ParsedAssertion, key: Key) -> None:
    try:
        valid = JWSRegistry.algorithms[parsed.alg].verify(parsed.signing_input, parsed.signature, key)
    except (JoseError, ValueError, TypeError):
        valid = False
    if not valid:
        raise InvalidClientError("client_assertion signature is invalid", reason=Reason.BAD_SIGNATURE)

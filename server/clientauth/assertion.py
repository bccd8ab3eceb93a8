"""JWT client assertions (RFC 7523 §3, OpenID Connect Core §9, draft-ietf-oauth-rfc7523bis §4).

Sans-IO: `AssertionValidator.validate` takes the assertion, the client, the candidate keys, the
settings and a clock, and returns a `VerifiedAssertion` or raises InvalidClientError. It fetches
nothing and records nothing: the caller records the jti (replay protection) only after validation
succeeded, so that a forged assertion cannot burn a legitimate client's jti.

The checks every JWT credential shares (the one key, the signature, time claims, a sole audience)
are certbound.clientauth.tokenchecks; parsing is certbound.clientauth.jwsparse. RFC 10070 (the
published rfc7523bis) assertions with `typ: client-authentication+jwt` and untyped ones are
accepted alike; under `--assertion-audience legacy` a `VerifiedAssertion` says whether it was
accepted only because of legacy mode (its audience was the token endpoint), so the server can count
the clients that must change before going strict.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import Key

from certbound.authmethods import JWT_BEARER
from certbound.clientauth.jwsparse import ParsedAssertion, parse_assertion
from certbound.clientauth.tokenchecks import (
    choose_key,
    replay_window,
    require_jti,
    require_started,
    require_unexpired,
    require_valid_signature,
    sole_audience,
)
from certbound.config import Settings
from certbound.errors import InvalidClientError
from certbound.jose import JWS_ASYMMETRIC_ALGS, JWS_HMAC_ALGS, JWS_SIGNING_ALGS
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
    "check_algorithm",
    "parse_assertion",
]

#: RFC 7523 §2.2: the `client_assertion_type` of a client's own assertion.
ASSERTION_TYPE = JWT_BEARER
#: client_secret_jwt: MACs keyed by the client secret (OIDC Core §9).
HMAC_ALGS = JWS_HMAC_ALGS
#: private_key_jwt: signatures verified with the client's registered public keys.
ASYMMETRIC_ALGS = JWS_ASYMMETRIC_ALGS
#: Published in discovery (SPEC §5); `none` is never among them.
ASSERTION_SIGNING_ALGS = JWS_SIGNING_ALGS


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    """A valid assertion; its jti must be recorded until `jti_expires_at` before it is honoured."""

    client: Client
    jti: str
    jti_expires_at: int
    #: Accepted only because of `--assertion-audience legacy`: its aud was the token endpoint.
    legacy_audience: bool = False


def check_algorithm(parsed: ParsedAssertion, client: Client, family: Collection[str]) -> str:
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

    def select_key(
        self, parsed: ParsedAssertion, client: Client, keys: Sequence[Key], *, family: Collection[str]
    ) -> Key:
        """The one key that may verify `parsed`, after the cheap checks (alg, header, the key's
        choice and policy); InvalidClientError otherwise. Verifies nothing."""
        alg = check_algorithm(parsed, client, family)
        return choose_key(parsed, alg, keys, whose="the client's keys")

    def validate(
        self,
        assertion: str | ParsedAssertion,
        client: Client,
        keys: Sequence[Key],
        *,
        family: Collection[str],
    ) -> VerifiedAssertion:
        parsed = parse_assertion(assertion) if isinstance(assertion, str) else assertion
        require_valid_signature(parsed, self.select_key(parsed, client, keys, family=family))
        return self._check_claims(parsed.claims, client)

    def _check_claims(self, claims: Mapping[str, Any], client: Client) -> VerifiedAssertion:
        client_id = client.client_id
        # RFC 7523 §3 items 1-2 and OIDC Core §9: the client asserts about itself.
        if claims.get("iss") != client_id:
            raise InvalidClientError("client_assertion iss must be the client_id", reason=Reason.ISS_MISMATCH)
        if claims.get("sub") != client_id:
            raise InvalidClientError("client_assertion sub must be the client_id", reason=Reason.SUB_MISMATCH)
        legacy = self._check_audience(claims.get("aud"))

        now = self._clock()
        exp = require_unexpired(claims, now=now, skew=self._skew)
        if exp > now + self._max_lifetime + self._skew:
            raise InvalidClientError(
                f"client_assertion exp is more than {self._max_lifetime} seconds ahead "
                "(too long-lived: the server's --assertion-max-lifetime)",
                reason=Reason.EXP_TOO_FAR,
            )
        require_started(claims, now=now, skew=self._skew)
        jti = require_jti(claims)
        return VerifiedAssertion(client, jti, replay_window(exp, self._skew), legacy_audience=legacy)

    def _check_audience(self, aud: object) -> bool:
        """rfc7523bis §4: the issuer identifier as the sole audience (or, in legacy mode, one of
        the token endpoint URLs); returns whether it was a legacy one."""
        if isinstance(aud, list) and len(aud) != 1:
            raise InvalidClientError(
                "client_assertion aud must hold exactly one value, the issuer",
                reason=Reason.AUD_NOT_ISSUER,
            )
        audience = sole_audience(aud)
        if audience is None or audience not in self.audiences:
            raise InvalidClientError(
                f"client_assertion aud must be {self._audience_rule}", reason=Reason.AUD_NOT_ISSUER
            )
        return audience != self.audiences[0]

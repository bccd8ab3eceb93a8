"""`federated_jwt`: a workload authenticates with the token its platform issued it (SPEC §13), a
Kubernetes projected service-account token, a GitHub Actions OIDC token, any issuer's JWT.

The request names the client (`client_id`) and carries the token as a jwt-bearer
`client_assertion`; only that client's rules apply. Checked, cheapest first: the client's
`federated_issuer` is configured; an asymmetric alg (and the registered one, if any); `iss` is that
issuer; the signature, with the issuer's keys (`jwks_file`, `jwks_uri` or OpenID discovery; one
refetch on an unknown kid); `aud` is the issuer's configured `audience`, alone; `exp` is in the
future and `exp - iat` (or `exp - now` without `iat`) at most `max_lifetime`; `nbf`/`iat` not in the
future beyond `--clock-skew`; every claim rule (certbound.federation.claimrules); and, unless the
issuer has `allow_reuse`, a `jti` used once per issuer until `exp`, recorded only after everything
else passed. `--assertion-audience` and `--assertion-max-lifetime` do not apply. Every refusal
names its check (certbound.clientauth.workload).
"""

from __future__ import annotations

from typing import Any, ClassVar

from joserfc.jwk import Key

from certbound.clientauth.assertion import ASYMMETRIC_ALGS, check_algorithm
from certbound.clientauth.jwsparse import ParsedAssertion
from certbound.clientauth.jwt_methods import check_signing_alg
from certbound.clientauth.tokenchecks import (
    numeric_date,
    replay_window,
    require_jti,
    require_started,
    require_unexpired,
    sole_audience,
)
from certbound.clientauth.workload import WorkloadMethod, require_federation, verify_signature
from certbound.config import Settings
from certbound.context import ServerContext
from certbound.errors import InvalidClientError, InvalidClientMetadataError
from certbound.federation import FederationConfig, IssuerConfig, first_mismatch, parse_claim_rules
from certbound.federation.claimrules import FEDERATED_CLAIMS
from certbound.models import Client
from certbound.reasons import Reason
from certbound.store.base import issuer_jti_scope

__all__ = ["FEDERATED_ISSUER", "FederatedJwt"]

FEDERATED_ISSUER = "federated_issuer"


def _issuer_of(client: Client, config: FederationConfig) -> IssuerConfig:
    name = client.metadata.get(FEDERATED_ISSUER)
    issuer = config.issuers.get(name) if isinstance(name, str) else None
    if issuer is None:
        raise InvalidClientError(
            f"the client's federated_issuer {name!r} is not an issuer of the federation file",
            reason=Reason.ISSUER_UNKNOWN,
        )
    return issuer


class FederatedJwt(WorkloadMethod):
    name: ClassVar[str] = "federated_jwt"

    async def _check(self, parsed: ParsedAssertion, client: Client, context: ServerContext) -> None:
        issuer = _issuer_of(client, require_federation(context))
        try:
            rules = parse_claim_rules(client.metadata.get(FEDERATED_CLAIMS))
        except ValueError as exc:
            raise InvalidClientError(
                f"the client's registration cannot be used: {exc}", reason=Reason.REGISTRATION_UNUSABLE
            ) from None
        alg = check_algorithm(parsed, client, ASYMMETRIC_ALGS)
        claims = parsed.claims
        if claims.get("iss") != issuer.issuer:
            raise InvalidClientError(
                f"client_assertion iss is not the issuer of {issuer.name}", reason=Reason.ISS_MISMATCH
            )

        async def keys(refresh: bool) -> list[Key]:
            return await context.federation_keys.issuer_keys(issuer, refresh=refresh)

        await verify_signature(parsed, alg, keys, whose=f"the keys of issuer {issuer.name}", context=context)
        if sole_audience(claims.get("aud")) != issuer.audience:
            raise InvalidClientError(
                f"client_assertion aud must be the audience of issuer {issuer.name}, alone",
                reason=Reason.AUD_MISMATCH,
            )
        now = self._clock()
        skew = context.settings.clock_skew
        exp = require_unexpired(claims, now=now, skew=skew)
        iat = numeric_date(claims, "iat")
        if exp - (now if iat is None else iat) > issuer.max_lifetime:
            raise InvalidClientError(
                f"client_assertion lives longer than the {issuer.max_lifetime} s issuer {issuer.name} allows",
                reason=Reason.EXP_TOO_FAR,
            )
        require_started(claims, now=now, skew=skew)
        mismatch = first_mismatch(rules, claims)
        if mismatch is not None:
            raise InvalidClientError(
                f"claim {mismatch!r} did not match the client's {FEDERATED_CLAIMS}",
                reason=Reason.CLAIM_MISMATCH,
            )
        if issuer.allow_reuse:
            return
        jti = require_jti(claims)
        if not await context.store.record_assertion_jti(
            issuer_jti_scope(issuer.issuer), jti, replay_window(exp, skew)
        ):
            raise InvalidClientError(
                f"client_assertion jti has already been used with issuer {issuer.name} (replay)",
                reason=Reason.JTI_REPLAYED,
            )

    def validate_metadata(self, metadata: dict[str, Any], settings: Settings) -> None:
        name = metadata.get(FEDERATED_ISSUER)
        if not isinstance(name, str) or not name:
            raise InvalidClientMetadataError(f"{FEDERATED_ISSUER} must name an issuer of the federation file")
        try:
            parse_claim_rules(metadata.get(FEDERATED_CLAIMS))
        except ValueError as exc:
            raise InvalidClientMetadataError(str(exc)) from None
        check_signing_alg(metadata, ASYMMETRIC_ALGS, self.name)

"""`spiffe_jwt`: a SPIFFE workload authenticates with a JWT-SVID (draft-ietf-oauth-spiffe-client-auth,
JWT-SVID specification, SPEC §13).

The client registers its `spiffe_id`; the request names the client (`client_id`) and carries the
JWT-SVID as a `client_assertion` of type jwt-spiffe. Checked: the trust domain of the `spiffe_id` is
configured and its bundle is fresh (certbound.federation.keys: a stale bundle fails closed); an alg
of the JWT-SVID list (JWT-SVID §2.1) and the registered one, if any; the signature, with a jwt-svid
key of that bundle (one refetch on an unknown kid); `sub` is the client's `spiffe_id`; `aud` is this
server's issuer, alone; `exp` in the future and at most the trust domain's `max_lifetime` ahead;
`nbf`/`iat` (optional) not in the future beyond `--clock-skew`. `iss` and `jti` are optional, and a
JWT-SVID may be presented again until `exp` (JWT-SVID §6.1: validators are not required to track
`jti`). Every refusal names its check (certbound.clientauth.workload).
"""

from __future__ import annotations

from typing import Any, ClassVar

from joserfc.jwk import Key

from certbound.clientauth.assertion import check_algorithm
from certbound.clientauth.jwsparse import ParsedAssertion
from certbound.clientauth.jwt_methods import check_signing_alg
from certbound.clientauth.tokenchecks import require_started, require_unexpired, sole_audience
from certbound.clientauth.workload import WorkloadMethod, require_federation, verify_signature
from certbound.config import Settings
from certbound.context import ServerContext
from certbound.errors import InvalidClientError, InvalidClientMetadataError
from certbound.federation import FederationConfig, TrustDomainConfig
from certbound.jose import JWS_ASYMMETRIC_ALGS
from certbound.models import Client
from certbound.pki.spiffeid import SpiffeId, parse_spiffe_id
from certbound.pki.subject import SPIFFE_ID
from certbound.reasons import Reason

__all__ = ["JWT_SVID_ALGS", "SpiffeJwt", "registered_spiffe_id", "trust_domain_of"]

#: JWT-SVID §2.1: RSASSA-PKCS1-v1_5, ECDSA and RSASSA-PSS with SHA-2 (no EdDSA, no HMAC).
JWT_SVID_ALGS = tuple(alg for alg in JWS_ASYMMETRIC_ALGS if alg[:2] in ("RS", "ES", "PS"))


def registered_spiffe_id(client: Client) -> SpiffeId:
    try:
        return parse_spiffe_id(client.metadata.get(SPIFFE_ID))
    except ValueError as exc:
        raise InvalidClientError(
            f"the client's registration cannot be used: {SPIFFE_ID}: {exc}",
            reason=Reason.REGISTRATION_UNUSABLE,
        ) from None


def trust_domain_of(spiffe_id: SpiffeId, config: FederationConfig) -> TrustDomainConfig:
    domain = config.trust_domains.get(spiffe_id.trust_domain)
    if domain is None:
        raise InvalidClientError(
            f"trust domain {spiffe_id.trust_domain} is not a trust domain of the federation file",
            reason=Reason.ISSUER_UNKNOWN,
        )
    return domain


class SpiffeJwt(WorkloadMethod):
    name: ClassVar[str] = "spiffe_jwt"

    async def _check(self, parsed: ParsedAssertion, client: Client, context: ServerContext) -> None:
        spiffe_id = registered_spiffe_id(client)
        domain = trust_domain_of(spiffe_id, require_federation(context))
        alg = check_algorithm(parsed, client, JWT_SVID_ALGS)
        bundle = await context.federation_keys.bundle(domain)

        async def keys(refresh: bool) -> tuple[Key, ...]:
            current = await context.federation_keys.bundle(domain, refresh=True) if refresh else bundle
            return current.jwt_keys

        whose = f"the jwt-svid keys of trust domain {domain.trust_domain}"
        await verify_signature(parsed, alg, keys, whose=whose, context=context)
        claims = parsed.claims
        if claims.get("sub") != str(spiffe_id):
            raise InvalidClientError(
                "client_assertion sub is not the client's spiffe_id", reason=Reason.SUB_MISMATCH
            )
        if sole_audience(claims.get("aud")) != context.settings.issuer:
            raise InvalidClientError(
                "client_assertion aud must be this server's issuer, alone", reason=Reason.AUD_NOT_ISSUER
            )
        now = self._clock()
        skew = context.settings.clock_skew
        exp = require_unexpired(claims, now=now, skew=skew)
        if exp > now + domain.max_lifetime + skew:
            raise InvalidClientError(
                f"client_assertion exp is more than the {domain.max_lifetime} s trust domain "
                f"{domain.trust_domain} allows ahead",
                reason=Reason.EXP_TOO_FAR,
            )
        require_started(claims, now=now, skew=skew)

    def validate_metadata(self, metadata: dict[str, Any], settings: Settings) -> None:
        try:
            parse_spiffe_id(metadata.get(SPIFFE_ID))
        except ValueError as exc:
            raise InvalidClientMetadataError(f"{SPIFFE_ID} must be a workload's SPIFFE ID: {exc}") from None
        check_signing_alg(metadata, JWT_SVID_ALGS, self.name)

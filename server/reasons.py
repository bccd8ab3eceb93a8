"""Why client authentication was refused: the machine reason codes (SPEC §3), in one place.

Every `InvalidClientError` carries one of these. The code goes to the access log and to the
`certbound_client_auth_refusals_total{reason}` counter; the client sees it only indirectly, through
the description, and only when the reason is in `DISCLOSED`.

The disclosure rule (issue 9 finding 12, no oracles): until a request has proven possession of its
client's credential, its answer must not depend on the client's registration. An unknown client, a
client registered for another method, a wrong secret, a key the client never registered and an
untrusted certificate all get the same description, so /token cannot be used to find out which
client_ids exist or how they authenticate. A reason is disclosed when it depends only on what the
request itself carries (a malformed Basic header, an unparsable assertion), or when it is found
only after the credential was verified (the claims of a correctly signed assertion, a replayed jti,
a correct but expired secret). A new refusal that picks no reason gets `UNCLASSIFIED`, which is not
disclosed: the safe default.

Workload identity (SPEC §13) is the exception by contract: once the client is known to be a
`federated_jwt`, `spiffe_jwt` or `spiffe_id` client, every refusal names the check that failed
(the issuer's name, a claim's name, a stale bundle, never an expected value or the token), whatever
its reason, so an operator can tell a workload why its platform token was refused. Those methods
raise with `disclosed=True` (certbound.errors.InvalidClientError); the reasons below marked
"workload identity" occur only there.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DISCLOSED", "GENERIC_REFUSAL", "ProofReason", "Reason"]

#: What a client is told when its refusal reason is not disclosed.
GENERIC_REFUSAL = "client authentication failed"


class Reason(StrEnum):
    # The request's shape, before any client is looked up.
    MALFORMED_CREDENTIALS = "malformed_credentials"
    NO_CLIENT_ID = "no_client_id"
    CLIENT_ID_MISMATCH = "client_id_mismatch"
    ASSERTION_MALFORMED = "assertion_malformed"
    ASSERTION_TYPE_UNSUPPORTED = "assertion_type_unsupported"
    ALG_NONE = "alg_none"
    TYP_NOT_CLIENT_AUTH = "typ_not_client_auth"
    CRIT_UNSUPPORTED = "crit_unsupported"
    # The client and its registration.
    UNKNOWN_CLIENT = "unknown_client"
    METHOD_MISMATCH = "method_mismatch"
    METHOD_UNSUPPORTED = "method_unsupported"
    PUBLIC_CLIENT = "public_client"
    # Shared secrets.
    NO_SECRET = "no_secret"
    BAD_SECRET = "bad_secret"
    SECRET_UNUSABLE = "secret_unusable"
    SECRET_EXPIRED = "secret_expired"
    # JWT assertions: algorithm and keys (before the signature is known to be good).
    ALG_NOT_ALLOWED = "alg_not_allowed"
    ALG_NOT_REGISTERED = "alg_not_registered"
    KID_UNKNOWN = "kid_unknown"
    KID_REQUIRED = "kid_required"
    KEY_OUT_OF_POLICY = "key_out_of_policy"
    NO_USABLE_KEY = "no_usable_key"
    NO_KEYS = "no_keys"
    JWKS_UNAVAILABLE = "jwks_unavailable"
    JWKS_INVALID = "jwks_invalid"
    BAD_SIGNATURE = "bad_signature"
    # JWT assertions: claims of a correctly signed assertion.
    ISS_MISMATCH = "iss_mismatch"
    SUB_MISMATCH = "sub_mismatch"
    AUD_NOT_ISSUER = "aud_not_issuer"
    EXP_MISSING = "exp_missing"
    EXPIRED = "expired"
    EXP_TOO_FAR = "exp_too_far"
    NOT_YET_VALID = "not_yet_valid"
    CLAIM_MALFORMED = "claim_malformed"
    JTI_MISSING = "jti_missing"
    JTI_TOO_LONG = "jti_too_long"
    JTI_REPLAYED = "jti_replayed"
    # Client certificates (RFC 8705).
    NO_CERTIFICATE = "no_certificate"
    NO_CLIENT_CA = "no_client_ca"
    TOO_MANY_INTERMEDIATES = "too_many_intermediates"
    CERT_MALFORMED = "cert_malformed"
    CERT_EXPIRED = "cert_expired"
    CHAIN_UNTRUSTED = "chain_untrusted"
    CERT_REVOKED = "cert_revoked"
    CRL_UNUSABLE = "crl_unusable"
    REGISTRATION_UNUSABLE = "registration_unusable"
    DN_MISMATCH = "dn_mismatch"
    SAN_MISMATCH = "san_mismatch"
    CA_PIN_MISMATCH = "ca_pin_mismatch"
    KEY_NOT_REGISTERED = "key_not_registered"
    # Workload identity (SPEC §13): federated issuers, SPIFFE trust domains and their SVIDs.
    ISSUER_UNKNOWN = "issuer_unknown"
    ISSUER_KEYS_UNAVAILABLE = "issuer_keys_unavailable"
    BUNDLE_STALE = "bundle_stale"
    AUD_MISMATCH = "aud_mismatch"
    CLAIM_MISMATCH = "claim_mismatch"
    SVID_INVALID = "svid_invalid"
    SPIFFE_ID_MISMATCH = "spiffe_id_mismatch"
    # A refusal whose raiser named no reason.
    UNCLASSIFIED = "unclassified"


#: Reasons whose description the client may read (see the module docstring for the rule).
DISCLOSED: frozenset[Reason] = frozenset(
    {
        Reason.MALFORMED_CREDENTIALS,
        Reason.NO_CLIENT_ID,
        Reason.CLIENT_ID_MISMATCH,
        Reason.ASSERTION_MALFORMED,
        Reason.ASSERTION_TYPE_UNSUPPORTED,
        Reason.ALG_NONE,
        Reason.TYP_NOT_CLIENT_AUTH,
        Reason.CRIT_UNSUPPORTED,
        # A public client proves nothing, and its client_id is public: nothing to hide.
        Reason.PUBLIC_CLIENT,
        Reason.SECRET_EXPIRED,
        Reason.ISS_MISMATCH,
        Reason.SUB_MISMATCH,
        Reason.AUD_NOT_ISSUER,
        Reason.EXP_MISSING,
        Reason.EXPIRED,
        Reason.EXP_TOO_FAR,
        Reason.NOT_YET_VALID,
        Reason.CLAIM_MALFORMED,
        Reason.JTI_MISSING,
        Reason.JTI_TOO_LONG,
        Reason.JTI_REPLAYED,
    }
)


class ProofReason(StrEnum):
    """Why a DPoP proof (RFC 9449) was refused, at the token endpoint or at a resource: logged on
    the access line and always disclosed (a proof is the request's own, and is checked only after
    client authentication, so its refusal tells nothing about any registration)."""

    MISSING = "dpop_missing"
    REPEATED = "dpop_repeated"
    TOO_LARGE = "dpop_too_large"
    MALFORMED = "dpop_malformed"
    TYP = "dpop_typ"
    ALG = "dpop_alg"
    KEY = "dpop_key"
    BAD_SIGNATURE = "dpop_bad_signature"
    CLAIM_MISSING = "dpop_claim_missing"
    HTM_MISMATCH = "dpop_htm_mismatch"
    HTU_MISMATCH = "dpop_htu_mismatch"
    IAT_TOO_OLD = "dpop_iat_too_old"
    IAT_IN_FUTURE = "dpop_iat_in_future"
    JTI_TOO_LONG = "dpop_jti_too_long"
    JTI_REPLAYED = "dpop_jti_replayed"
    NONCE_MISSING = "dpop_nonce_missing"
    NONCE_INVALID = "dpop_nonce_invalid"
    NONCE_EXPIRED = "dpop_nonce_expired"
    ATH_MISMATCH = "dpop_ath_mismatch"
    KEY_MISMATCH = "dpop_key_mismatch"

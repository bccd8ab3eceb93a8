"""The client's side of DPoP (RFC 9449 §4.2): a key pair and the proofs it signs, for Python
clients, the test harness (certbound.testing) and resource servers' own tests.

    key = DPoPKey()                                      # a new P-256 key (ES256)
    proof = key.proof("POST", token_endpoint)            # the DPoP header of a token request
    proof = key.proof("GET", url, access_token=token)    # and of a resource request (adds ath)

`key.jkt` is the thumbprint the server binds tokens to (`cnf.jkt`).
"""

from __future__ import annotations

import json
import secrets
import time
import warnings
from typing import Any

from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

from certbound.dpop.proof import access_token_hash
from certbound.dpop.urls import strip_query
from certbound.jose import rfc7638_thumbprint

__all__ = ["DPoPKey"]

_ALG_OF_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
#: The members of a public JWK (RFC 7518 §6, RFC 8037 §2): nothing else goes into a proof.
_PUBLIC_MEMBERS = ("kty", "crv", "x", "y", "n", "e")


class DPoPKey:
    """A private key (joserfc ECKey, RSAKey or OKPKey; default a new P-256 key) and its alg
    (default: ES256/384/512 for EC keys by curve, PS256 for RSA, EdDSA for OKP)."""

    def __init__(self, key: ECKey | RSAKey | OKPKey | None = None, *, alg: str | None = None) -> None:
        self.key = key if key is not None else ECKey.generate_key("P-256")
        if alg is None:
            if isinstance(self.key, ECKey):
                alg = _ALG_OF_CURVE[str(self.key.as_dict()["crv"])]
            else:
                alg = "PS256" if isinstance(self.key, RSAKey) else "EdDSA"
        self.alg = alg
        members = self.key.as_dict(private=False)
        self.public_jwk: dict[str, Any] = {name: members[name] for name in _PUBLIC_MEMBERS if name in members}
        #: RFC 7638 thumbprint of the public key: `cnf.jkt` of the tokens bound to it.
        self.jkt = rfc7638_thumbprint(self.public_jwk)

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        iat: float | None = None,
    ) -> str:
        """A fresh proof (new jti) for the request `method url`; `access_token` adds its `ath`
        (resource requests), `nonce` the server's nonce (RFC 9449 §8)."""
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": strip_query(url),
            "iat": int(time.time() if iat is None else iat),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        header = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public_jwk}
        payload = json.dumps(claims, separators=(",", ":")).encode("utf-8")
        with warnings.catch_warnings():
            # joserfc flags `EdDSA` as superseded (RFC 9864); SPEC §12 lists it, and servers know it.
            warnings.simplefilter("ignore", SecurityWarning)
            return jws.serialize_compact(header, payload, self.key, algorithms=[self.alg])

"""Server signing keys: generation, at-rest encryption, rotation and the published JWK Set.

`kid` is the RFC 7638 thumbprint of the public key. Exactly one key is active (it signs); retired
keys stay published at /jwks until every token they signed has expired (retired_at + token
lifetime + clock skew). Every node re-reads the key table periodically, so a rotation made with
`certbound keys rotate` on any node is published by all of them within the refresh interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from certbound.errors import ConfigError
from certbound.jose import b64url_encode, json_compact, public_jwk, rfc7638_thumbprint
from certbound.models import SigningKeyRecord
from certbound.store import Store
from certbound.vault import Vault

__all__ = ["KEY_STATES", "KeyRing", "SigningKey", "generate_signing_key", "key_information"]

log = logging.getLogger("certbound.keys")

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

#: How often each node re-reads the key table (SPEC: a rotation is published within 30 s).
REFRESH_SECONDS = 10.0
_KID_CONTEXT = b"certbound signing key "
#: What an operator sees of a key (admin API, CLI, TUI): it signs, it is retired but still
#: published at /jwks (tokens it signed may be alive), or it is no longer published.
KEY_STATES = ("active", "retired", "expired")


def _new_private_key(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported signing alg {alg}")


def _signer(private_key: PrivateKey, alg: str) -> Callable[[bytes], bytes]:
    """The JWS signature function (RFC 7518 §3) for a key, chosen once: signing is the hot path."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        ecdsa, ec_sign = ec.ECDSA(hashes.SHA256()), private_key.sign

        def sign_ecdsa(data: bytes) -> bytes:
            r, s = decode_dss_signature(ec_sign(data, ecdsa))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        return sign_ecdsa
    if isinstance(private_key, rsa.RSAPrivateKey):
        rsa_sign, sha256 = private_key.sign, hashes.SHA256()
        pad: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            if alg == "PS256"
            else padding.PKCS1v15()
        )
        return lambda data: rsa_sign(data, pad, sha256)
    return private_key.sign


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A loaded signing key: signs JWS signing inputs and knows its public JWK."""

    kid: str
    alg: str
    private_key: PrivateKey
    jwk: dict[str, str]
    created_at: int
    retired_at: int | None
    #: The JWS signature over a signing input (RFC 7518 §3).
    sign: Callable[[bytes], bytes] = field(compare=False, repr=False)

    @classmethod
    def from_private_key(
        cls, private_key: PrivateKey, alg: str, created_at: int, retired_at: int | None = None
    ) -> SigningKey:
        jwk = public_jwk(private_key.public_key())
        kid = rfc7638_thumbprint(jwk)
        jwk = {**jwk, "kid": kid, "alg": alg, "use": "sig"}
        return cls(kid, alg, private_key, jwk, created_at, retired_at, _signer(private_key, alg))

    def encode_jws(self, header_b64: str, payload: bytes) -> str:
        """A compact JWS (RFC 7515 §7.1) over an already serialized payload."""
        signing_input = header_b64 + "." + b64url_encode(payload)
        return signing_input + "." + b64url_encode(self.sign(signing_input.encode("ascii")))

    def header_b64(self, typ: str) -> str:
        return b64url_encode(json_compact({"alg": self.alg, "kid": self.kid, "typ": typ}))


def generate_signing_key(alg: str, vault: Vault, now: int) -> tuple[SigningKey, SigningKeyRecord]:
    """A fresh key and its storable record (private key PEM encrypted under the vault)."""
    private_key = _new_private_key(alg)
    key = SigningKey.from_private_key(private_key, alg, now)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ciphertext = vault.encrypt(pem, context=_KID_CONTEXT + key.kid.encode())
    return key, SigningKeyRecord(key.kid, alg, ciphertext, now)


def key_information(
    record: SigningKeyRecord | SigningKey, *, now: int, publish_after_retirement: int
) -> dict[str, Any]:
    """The operator's view of a key: never key material, only kid, alg, state and times."""
    if record.retired_at is None:
        state = KEY_STATES[0]
    elif record.retired_at + publish_after_retirement >= now:
        state = KEY_STATES[1]
    else:
        state = KEY_STATES[2]
    return {
        "kid": record.kid,
        "alg": record.alg,
        "state": state,
        "created_at": record.created_at,
        "retired_at": record.retired_at,
    }


def _load(record: SigningKeyRecord, vault: Vault) -> SigningKey:
    pem = vault.decrypt(record.private_key_ciphertext, context=_KID_CONTEXT + record.kid.encode())
    private_key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private_key, PrivateKey):
        raise ValueError(f"signing key {record.kid} has an unsupported type")
    return SigningKey.from_private_key(private_key, record.alg, record.created_at, record.retired_at)


class KeyRing:
    """The node's view of the signing keys: the active one and the published set."""

    def __init__(
        self,
        store: Store,
        vault: Vault,
        *,
        alg: str,
        publish_after_retirement: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._clock = clock
        self._vault = vault
        self._alg = alg
        self._grace = publish_after_retirement
        self._keys: dict[str, SigningKey] = {}
        self._active: SigningKey | None = None
        self._jwks: dict[str, list[dict[str, str]]] = {"keys": []}

    @property
    def has_active_key(self) -> bool:
        return self._active is not None

    @property
    def active(self) -> SigningKey:
        if self._active is None:
            raise RuntimeError("key ring not loaded")
        return self._active

    @property
    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public JWK Set (RFC 7517 §5): the active key and retired keys still in use."""
        return self._jwks

    def get(self, kid: str) -> SigningKey | None:
        """A published key by kid (for verifying our own tokens)."""
        return self._keys.get(kid)

    async def ensure_active_key(self) -> None:
        """At start-up: create the first key unless some node already did, then load."""
        if not any(record.active for record in await self._store.list_signing_keys()):
            _, record = generate_signing_key(self._alg, self._vault, int(self._clock()))
            if await self._store.add_first_signing_key(record):
                log.info("generated signing key kid=%s alg=%s", record.kid, record.alg)
        try:
            await self.refresh()
        except ValueError as exc:
            raise ConfigError(
                f"cannot read the signing keys in the database ({exc}): every node and command on "
                "one database must use the same --master-key-file"
            ) from None

    async def describe(self) -> list[dict[str, Any]]:
        """Every stored key as `key_information` (what `keys list` shows): the active key first, then
        the newest (keys made within one second are told apart by when they were retired)."""
        records = sorted(
            await self._store.list_signing_keys(),
            key=lambda record: (record.active, record.created_at, record.retired_at or 0),
            reverse=True,
        )
        return [self.information(record) for record in records]

    def information(self, key: SigningKeyRecord | SigningKey) -> dict[str, Any]:
        return key_information(key, now=int(self._clock()), publish_after_retirement=self._grace)

    async def rotate(self) -> SigningKey:
        now = int(self._clock())
        key, record = generate_signing_key(self._alg, self._vault, now)
        await self._store.add_signing_key(record, retire_others_at=now)
        await self.refresh()
        return key

    async def refresh(self) -> None:
        now = int(self._clock())
        records = await self._store.list_signing_keys()
        published: dict[str, SigningKey] = {}
        active: SigningKey | None = None
        for record in records:
            if record.retired_at is not None and record.retired_at + self._grace < now:
                continue
            key = self._keys.get(record.kid)
            if key is None or key.retired_at != record.retired_at:
                key = _load(record, self._vault)
            published[key.kid] = key
            if record.active and (active is None or key.created_at > active.created_at):
                active = key
        if active is None:
            raise RuntimeError("no active signing key in the database")
        if self._active is not None and active.kid != self._active.kid:
            log.info("active signing key is now kid=%s", active.kid)
        self._keys, self._active = published, active
        self._jwks = {"keys": [key.jwk for key in published.values()]}

"""Server-provided DPoP nonces (RFC 9449 §8, SPEC §12 `--dpop-nonce`) that every worker and node
accepts without a shared write per request.

A nonce is its issue time and a MAC of it under a key every node derives from the master key they
share: `base64url(issued_at (8 bytes, big-endian) || HMAC-SHA-256(key, issued_at)[:16])`. Any node
can check one by recomputing the MAC; it is valid for LIFETIME seconds after its issue time, and may
be used by several proofs meanwhile (the proofs' own jtis stop replays). A node whose clock runs
ahead may issue a nonce another node sees as slightly in the future: up to `skew` seconds of that is
accepted.
"""

from __future__ import annotations

import binascii
import enum
import hashlib
import hmac
import struct
import time
from collections.abc import Callable

from certbound.jose import b64url_decode, b64url_encode

__all__ = ["LIFETIME", "NonceCheck", "NonceIssuer"]

#: Seconds a nonce is accepted after it was issued (SPEC §12).
LIFETIME = 300
_TIME = struct.Struct(">Q")
_MAC_BYTES = 16
#: The length of every nonce this module issues: 24 bytes in base64url.
_NONCE_CHARS = 32


class NonceCheck(enum.Enum):
    VALID = "valid"
    #: Not a nonce this server (or a node sharing its master key) issued.
    FORGED = "forged"
    #: Issued more than LIFETIME seconds ago (or, by a node whose clock is far ahead, in the future).
    STALE = "stale"


class NonceIssuer:
    """Issues and checks nonces under `key` (32 bytes, derived from the master key)."""

    def __init__(self, key: bytes, *, skew: int = 60, clock: Callable[[], float] = time.time) -> None:
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._skew = skew
        self._clock = clock

    def _tag(self, issued: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(issued)
        return mac.digest()[:_MAC_BYTES]

    def issue(self) -> str:
        issued = _TIME.pack(int(self._clock()))
        return b64url_encode(issued + self._tag(issued))

    def check(self, nonce: str) -> NonceCheck:
        if len(nonce) != _NONCE_CHARS:
            return NonceCheck.FORGED
        try:
            raw = b64url_decode(nonce)
        except (ValueError, binascii.Error):
            return NonceCheck.FORGED
        issued, tag = raw[: _TIME.size], raw[_TIME.size :]
        if not hmac.compare_digest(tag, self._tag(issued)):
            return NonceCheck.FORGED
        age = self._clock() - _TIME.unpack(issued)[0]
        if age > LIFETIME or age < -self._skew:
            return NonceCheck.STALE
        return NonceCheck.VALID

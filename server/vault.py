"""Secrets at rest: a master key kept outside the database.

Client secrets of `client_secret_basic`/`_post` are stored hashed under a key derived from the
master key. Generated secrets carry 256 bits of entropy, so HMAC-SHA-256 resists offline guessing
without a slow hash on every token request. An administrator's chosen secret may be as short as 8
characters (SPEC §4), so it gets scrypt over that HMAC (issue 9 finding 15): guessing it from a
stolen database needs the master key and then ~0.1 s of CPU and 16 MiB per guess. Its stored form
names its parameters (`$scrypt$ln=14,r=8,p=1$salt$hash`, the PHC string format), so they can change
without a migration; a stored HMAC is 32 raw bytes, as ever. `client_secret_jwt` needs the plain
secret as an HMAC key (RFC 7523 §2.2), so it is stored AES-256-GCM encrypted as well, as are the
server's signing keys. The key file is created on first use with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from certbound.errors import ConfigError
from certbound.privatefiles import ensure_private_directory, warn_if_exposed

__all__ = ["SCRYPT_COST", "ScryptCost", "Vault", "is_slow_hash", "load_or_create_master_key"]

_KEY_BYTES = 32
_NONCE_BYTES = 12
_FORMAT = b"\x01"  # ciphertext format version, so the scheme can change later
_SALT_BYTES = 16


@dataclass(frozen=True, slots=True)
class ScryptCost:
    """scrypt's parameters (RFC 7914 §2): N = 2**log2_n, memory 128 * r * N bytes."""

    log2_n: int
    r: int
    p: int

    @property
    def memory(self) -> int:
        return 128 * self.r * ((1 << self.log2_n) + self.p + 2)

    def affordable(self) -> bool:
        """Whether a stored value may ask for this: a tampered database must not pin a worker."""
        return 1 <= self.log2_n <= 20 and 1 <= self.r <= 32 and 1 <= self.p <= 4 and self.memory <= 2**28


#: New slow hashes: the scrypt paper's interactive setting (~0.1 s on a small server, 16 MiB).
SCRYPT_COST = ScryptCost(log2_n=14, r=8, p=1)
_SCRYPT_PREFIX = b"$scrypt$"
_SCRYPT_FORMAT = re.compile(rb"\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)")


def is_slow_hash(stored: bytes) -> bool:
    """Whether a stored secret hash is scrypt (seconds of work per thousand checks), not an HMAC."""
    return stored.startswith(_SCRYPT_PREFIX)


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)


def load_or_create_master_key(path: Path) -> bytes:
    """Read the master key file, creating it (0600) when it does not exist.

    Several processes may start together on a fresh database: the key is written to a private
    temporary file and then linked into place, so no process ever reads a half-written key and
    exactly one key wins.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        ensure_private_directory(path.parent)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_bytes(_KEY_BYTES).hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process won: use its key
            os.link(temporary, path)
    except OSError as exc:
        raise ConfigError(f"cannot create master key file {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    warn_if_exposed(path, "master key file")
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"cannot read master key file {path}: {exc.strerror}") from None
    if not text:
        raise ConfigError(f"master key file {path} is empty")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"master key file {path} is not hex") from None
    if len(key) != _KEY_BYTES:
        raise ConfigError(f"master key file {path} must hold {_KEY_BYTES} bytes")
    return key


def _derive(master_key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=None, info=purpose).derive(master_key)


class Vault:
    """Keyed hashing and authenticated encryption under subkeys of one master key."""

    __slots__ = ("_aead", "_hmac_keyed", "_master_key")

    def __init__(self, master_key: bytes) -> None:
        self._master_key = master_key
        # Keyed once and copied per use: OpenSSL 3 makes a one-shot HMAC set up its MAC each time.
        self._hmac_keyed = hmac.new(
            _derive(master_key, b"certbound client secret hmac v1"), digestmod="sha256"
        )
        self._aead = AESGCM(_derive(master_key, b"certbound at-rest encryption v1"))

    def subkey(self, purpose: bytes) -> bytes:
        """A 32-byte key for `purpose` (HKDF-SHA-256 of the master key), the same on every node and
        worker sharing the master key (e.g. the DPoP nonce key, certbound.dpop.nonces)."""
        return _derive(self._master_key, purpose)

    def hash_secret(self, secret: str) -> bytes:
        """HMAC-SHA-256: for generated secrets and registration access tokens."""
        mac = self._hmac_keyed.copy()
        # surrogatepass: JSON can carry a lone surrogate ("\ud800"); it hashes (and never matches).
        mac.update(secret.encode("utf-8", "surrogatepass"))
        return mac.digest()

    def verify_secret(self, secret: str, expected_hash: bytes) -> bool:
        """Constant-time comparison of a presented secret with a stored HMAC (a slow hash never
        matches here: see verify_chosen_secret)."""
        return hmac.compare_digest(self.hash_secret(secret), expected_hash)

    def hash_chosen_secret(self, secret: str, cost: ScryptCost = SCRYPT_COST) -> bytes:
        """scrypt of the secret's HMAC (the master key stays necessary), with a random salt; slow:
        run it off the event loop."""
        salt = secrets.token_bytes(_SALT_BYTES)
        derived = self._scrypt(secret, salt, cost)
        parameters = f"ln={cost.log2_n},r={cost.r},p={cost.p}".encode("ascii")
        return b"$".join((_SCRYPT_PREFIX + parameters, _b64(salt), _b64(derived)))

    def verify_chosen_secret(self, secret: str, stored: bytes) -> bool:
        """Constant-time check against a hash_chosen_secret value, with the parameters it names
        (refused beyond ScryptCost.affordable); slow: run it off the event loop."""
        match = _SCRYPT_FORMAT.fullmatch(stored)
        if match is None:
            return False
        cost = ScryptCost(int(match[1]), int(match[2]), int(match[3]))
        try:
            salt, expected = _unb64(match[4]), _unb64(match[5])
        except binascii.Error:
            return False
        if not cost.affordable() or not 16 <= len(expected) <= 64:
            return False
        return hmac.compare_digest(self._scrypt(secret, salt, cost, length=len(expected)), expected)

    def _scrypt(self, secret: str, salt: bytes, cost: ScryptCost, length: int = 32) -> bytes:
        return hashlib.scrypt(
            self.hash_secret(secret),
            salt=salt,
            n=1 << cost.log2_n,
            r=cost.r,
            p=cost.p,
            maxmem=cost.memory + 2**20,
            dklen=length,
        )

    def encrypt(self, plaintext: bytes, *, context: bytes) -> bytes:
        """AES-256-GCM; `context` (e.g. the client_id) is bound as associated data."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _FORMAT + nonce + self._aead.encrypt(nonce, plaintext, context)

    def decrypt(self, blob: bytes, *, context: bytes) -> bytes:
        if blob[:1] != _FORMAT:
            raise ValueError("unknown ciphertext format")
        nonce, ciphertext = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            return self._aead.decrypt(nonce, ciphertext, context)
        except InvalidTag:
            raise ValueError("ciphertext does not decrypt under this master key") from None

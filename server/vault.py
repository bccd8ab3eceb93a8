"""Secrets at rest: a master key kept outside the database.

Client secrets of `client_secret_basic`/`_post` are stored as HMAC-SHA-256 under a key derived from
the master key: generated secrets carry 256 bits of entropy, so a keyed hash resists offline
guessing without a slow password hash on every token request. `client_secret_jwt` needs the plain
secret as an HMAC key (RFC 7523 §2.2), so it is stored AES-256-GCM encrypted instead, as are the
server's signing keys. The key file is created on first use with mode 0600.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from certbound.errors import ConfigError
from certbound.privatefiles import ensure_private_directory, warn_if_exposed

__all__ = ["Vault", "load_or_create_master_key"]

_KEY_BYTES = 32
_NONCE_BYTES = 12
_FORMAT = b"\x01"  # ciphertext format version, so the scheme can change later


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

    __slots__ = ("_aead", "_hmac_keyed")

    def __init__(self, master_key: bytes) -> None:
        # Keyed once and copied per use: OpenSSL 3 makes a one-shot HMAC set up its MAC each time.
        self._hmac_keyed = hmac.new(
            _derive(master_key, b"certbound client secret hmac v1"), digestmod="sha256"
        )
        self._aead = AESGCM(_derive(master_key, b"certbound at-rest encryption v1"))

    def hash_secret(self, secret: str) -> bytes:
        mac = self._hmac_keyed.copy()
        mac.update(secret.encode("utf-8"))
        return mac.digest()

    def verify_secret(self, secret: str, expected_hash: bytes) -> bool:
        """Constant-time comparison of a presented secret with a stored hash."""
        return hmac.compare_digest(self.hash_secret(secret), expected_hash)

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

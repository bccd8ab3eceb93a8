"""Handshake bounds (issue 9, SPEC §8): which client certificate chains the TLS layer will look at.

The TLS layer requests a certificate and accepts any *within policy*: trust is the auth method's
business, but the cost of looking at a chain is ours, and it is paid before anyone is
authenticated. So a chain is refused during the handshake, before OpenSSL verifies a single
signature with one of its keys, when it is longer than any path the application would validate
(`MAX_INTERMEDIATES`), when one of its keys is outside the key policy (certbound.keypolicy, the
same for every key a peer hands us, certificate or JWK), or (right after the handshake) when the
client sent more certificates or bytes than that.

Verdicts are remembered per certificate (its SHA-256): a client reconnecting with the same chain,
the common case on new-connection loads, skips converting each certificate for cryptography and
judging its key again. Measured on b-mtls-nc (profile_token.py): the callback took 9 % of the
server's samples before, 0.5 % after (mostly the digest).
"""

from __future__ import annotations

from cryptography.exceptions import UnsupportedAlgorithm
from OpenSSL import SSL, crypto
from OpenSSL._util import lib as _openssl_lib

from certbound.keypolicy import MAX_INTERMEDIATES, KeyPolicyError, check_public_key
from certbound.lru import LRU

from .peercache import certificate_sha256

__all__ = [
    "MAX_CHAIN_BYTES",
    "MAX_INTERMEDIATES",
    "refusal_reason",
    "verify_within_policy",
]

#: The DER size of everything a client sends (leaf included). Nine certificates with RSA-8192 keys
#: and signatures take about 23 KB; real client chains take 2-6 KB.
MAX_CHAIN_BYTES = 32 * 1024

_CHAIN_TOO_LONG: int = _openssl_lib.X509_V_ERR_CERT_CHAIN_TOO_LONG

#: How many certificates' verdicts are remembered (per process). A verdict is a pure function of
#: the certificate's bytes, so the cache is sound whoever sent them; an attacker sending new
#: certificates only misses it (a 2 µs digest more than before) and cannot grow it.
VERDICT_CACHE_SIZE = 4096


class _Verdicts:
    """Key-policy verdicts by certificate SHA-256: None when within policy, else the violation."""

    def __init__(self, size: int) -> None:
        self._verdicts: LRU[bytes, str | None] = LRU(size)

    def judge(self, cert: crypto.X509) -> str | None:
        digest = certificate_sha256(cert)
        verdicts = self._verdicts
        if digest in verdicts:
            return verdicts[digest]
        verdict = _violation(cert)
        verdicts.put(digest, verdict)
        return verdict

    def __len__(self) -> int:
        return len(self._verdicts)


def _violation(cert: crypto.X509) -> str | None:
    """What puts the certificate's key outside the key policy, or None."""
    try:
        check_public_key(cert.to_cryptography().public_key())
    except KeyPolicyError as exc:
        return str(exc)
    except (ValueError, UnsupportedAlgorithm) as exc:
        # OpenSSL parsed it, cryptography's stricter parser did not; or an algorithm it lacks.
        return f"a key cryptography cannot load ({exc})"
    return None


VERDICTS = _Verdicts(VERDICT_CACHE_SIZE)


def verify_within_policy(conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
    """The server context's verify callback: accept any certificate, trusted or not, within policy.

    OpenSSL builds the chain first (no signatures checked), then calls this for its top certificate
    with the reason it is untrusted (or that the chain is longer than the verify depth), then for each
    certificate below, right after checking that certificate's signature with the key above it. So
    every key is judged here before OpenSSL uses it, and a refusal costs no signature check at all.
    """
    if errno == _CHAIN_TOO_LONG:
        conn.set_app_data(f"more than {MAX_INTERMEDIATES} intermediate certificates")
        return False
    violation = VERDICTS.judge(cert)
    if violation is None:
        return True
    conn.set_app_data(f"the certificate at depth {depth} has {violation}")
    return False


def refusal_reason(conn: SSL.Connection) -> str | None:
    """Why `verify_within_policy` refused the peer's chain on `conn`, or None if it did not."""
    reason = conn.get_app_data()
    return reason if isinstance(reason, str) else None

"""Server ``SSL.Context`` factory: protocol policy, identity and client-certificate requests.

The context *requests* a client certificate but never judges its trust: any certificate
within the handshake bounds of :mod:`certbound.tls.policy` (chain length, key policy)
completes the handshake, and the application decides later what it is worth.

There is no session resumption (issue 9, finding 2). A resumed session must carry the
client's full chain, which stateless tickets do not, and OpenSSL's stateful cache keeps
each session's parsed chain for up to 2 hours and 20,480 sessions; the bindings pyOpenSSL
is built on offer no way to shrink that count, so a handshake flood would grow memory
without bound.  A full handshake costs the server about 0.6 ms of CPU more than a
resumed one (TLS 1.3, P-256; 1.13 vs 0.58 ms), and token clients mostly keep their
connections alive instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from OpenSSL import SSL

from .connection import _describe
from .policy import MAX_INTERMEDIATES, verify_within_policy

__all__ = ["TLSConfigError", "build_server_context"]

_ALPN_HTTP_1_1 = b"http/1.1"

# TLS 1.2 suites: forward-secret key exchange with AEAD only (Mozilla "intermediate").
# TLS 1.3 suites are all AEAD + ephemeral, so OpenSSL's defaults stay in place.
_TLS12_CIPHERS = b":".join(
    [
        b"ECDHE-ECDSA-AES128-GCM-SHA256",
        b"ECDHE-RSA-AES128-GCM-SHA256",
        b"ECDHE-ECDSA-AES256-GCM-SHA384",
        b"ECDHE-RSA-AES256-GCM-SHA384",
        b"ECDHE-ECDSA-CHACHA20-POLY1305",
        b"ECDHE-RSA-CHACHA20-POLY1305",
    ]
)

_OPTIONS = (
    SSL.OP_NO_COMPRESSION
    | SSL.OP_CIPHER_SERVER_PREFERENCE
    # The peer certificates are captured once per connection; renegotiation could
    # swap them underneath the application.
    | SSL.OP_NO_RENEGOTIATION
    # Stateless tickets serialise only the peer's leaf, so a connection resumed from
    # one would lose the client's intermediates.  With the session cache off, the
    # TLS 1.3 tickets OpenSSL still issues name no stored session: a client that
    # offers one gets a full handshake.
    | SSL.OP_NO_TICKET
)

_SigningKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | dsa.DSAPrivateKey
)


class TLSConfigError(Exception):
    """The TLS configuration cannot be used; the message names the offending file."""


def build_server_context(
    cert_file: Path,
    key_file: Path,
    *,
    request_client_certificate: bool = True,
    client_ca_names: Sequence[Path] = (),
) -> SSL.Context:
    """Build the server context (TLS 1.2-1.3, ALPN ``http/1.1``, no session resumption).

    ``cert_file`` is a PEM file with the server certificate first, then its
    intermediates; ``key_file`` a PEM private key, unencrypted.  When
    ``request_client_certificate`` is true the server asks for a client
    certificate but accepts any (or none).  The subjects of the certificates in
    ``client_ca_names`` (PEM bundles) are advertised to clients as acceptable
    issuers, which helps them pick a certificate; it does not restrict anything.

    Raises :class:`TLSConfigError` if a file is missing, unreadable or
    inconsistent (for example a key that does not match the certificate).
    """
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_max_proto_version(SSL.TLS1_3_VERSION)
    ctx.set_options(_OPTIONS)
    ctx.set_cipher_list(_TLS12_CIPHERS)
    ctx.set_alpn_select_callback(_select_alpn)
    _load_identity(ctx, cert_file, key_file)
    if request_client_certificate:
        # VERIFY_PEER without FAIL_IF_NO_PEER_CERT: ask for a certificate, accept
        # none; the callback overrides OpenSSL's verdict so untrusted ones pass too,
        # and refuses out-of-policy keys before OpenSSL checks a signature with them.
        ctx.set_verify(SSL.VERIFY_PEER, verify_within_policy)
        ctx.set_verify_depth(MAX_INTERMEDIATES)
        for ca_file in client_ca_names:
            for ca_cert in _load_certificates(ca_file):
                ctx.add_client_ca(ca_cert)
    else:
        ctx.set_verify(SSL.VERIFY_NONE)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    # An idle connection gives its read and write buffers back: 1,000 idle keep-alive mTLS
    # connections cost a worker 41 MiB instead of 66, for about 1 us more per request.
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
    return ctx


def _load_identity(ctx: SSL.Context, cert_file: Path, key_file: Path) -> None:
    try:
        ctx.use_certificate_chain_file(cert_file)
    except SSL.Error as exc:
        reason = "file not found" if not cert_file.is_file() else _describe(exc)
        raise TLSConfigError(f"cannot load certificate chain {cert_file}: {reason}") from exc
    # The key is parsed by cryptography rather than use_privatekey_file: OpenSSL
    # would prompt for a passphrase on the terminal if the key were encrypted.
    key = _load_private_key(key_file)
    try:
        ctx.use_privatekey(key)
        ctx.check_privatekey()
    except SSL.Error as exc:
        raise TLSConfigError(
            f"private key {key_file} does not match certificate {cert_file}: {_describe(exc)}"
        ) from exc


def _load_private_key(key_file: Path) -> _SigningKey:
    try:
        key = load_pem_private_key(key_file.read_bytes(), password=None)
    except OSError as exc:
        raise TLSConfigError(f"cannot read private key {key_file}: {exc.strerror}") from exc
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # TypeError is what cryptography raises for an encrypted key.
        raise TLSConfigError(f"cannot load private key {key_file}: {exc}") from exc
    if not isinstance(key, _SigningKey):
        raise TLSConfigError(f"private key {key_file} cannot sign: {type(key).__name__}")
    return key


def _load_certificates(pem_file: Path) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem_file.read_bytes())
    except OSError as exc:
        raise TLSConfigError(f"cannot read CA file {pem_file}: {exc.strerror}") from exc
    except ValueError as exc:
        raise TLSConfigError(f"cannot load CA file {pem_file}: {exc}") from exc
    return certs


def _select_alpn(conn: SSL.Connection, offered: list[bytes]) -> bytes | SSL._NoOverlappingProtocols:
    # Only called when the client offers ALPN.  A client offering only other
    # protocols (h2-only, say) still gets a connection, without ALPN: failing the
    # handshake would be less helpful than letting it try HTTP/1.1.
    if _ALPN_HTTP_1_1 in offered:
        return _ALPN_HTTP_1_1
    return SSL.NO_OVERLAPPING_PROTOCOLS

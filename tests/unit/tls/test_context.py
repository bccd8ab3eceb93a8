"""Tests of build_server_context: configuration errors and the protocol policy it sets."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from OpenSSL import SSL

from certbound.tls import TLSConfigError, TLSHandshakeError, build_server_context

from .conftest import ConnectionPair, Pki, client_context


def test_missing_certificate_file_names_the_path(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "server.pem"
    with pytest.raises(TLSConfigError, match=str(missing)):
        build_server_context(missing, pki.server_key_file)


def test_missing_key_file_names_the_path(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "server.key"
    with pytest.raises(TLSConfigError, match=str(missing)):
        build_server_context(pki.server_cert_file, missing)


def test_certificate_file_without_certificate_names_the_path(pki: Pki) -> None:
    # A key where the chain should be.
    with pytest.raises(TLSConfigError, match=str(pki.server_key_file)):
        build_server_context(pki.server_key_file, pki.server_key_file)


def test_key_that_does_not_match_the_certificate(pki: Pki) -> None:
    with pytest.raises(TLSConfigError, match="does not match") as excinfo:
        build_server_context(pki.server_cert_file, pki.direct.key_file)
    assert str(pki.direct.key_file) in str(excinfo.value)
    assert str(pki.server_cert_file) in str(excinfo.value)


def test_encrypted_key_is_an_error_not_a_prompt(pki: Pki, tmp_path: Path) -> None:
    key = serialization.load_pem_private_key(pki.server_key_file.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TLSConfigError, match=str(encrypted)):
        build_server_context(pki.server_cert_file, encrypted)


def test_key_that_cannot_sign_is_refused(pki: Pki, tmp_path: Path) -> None:
    key_file = tmp_path / "x25519.key"
    key_file.write_bytes(
        x25519.X25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(TLSConfigError, match=str(key_file)):
        build_server_context(pki.server_cert_file, key_file)


def test_unreadable_client_ca_file_names_the_path(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "client-ca.pem"
    with pytest.raises(TLSConfigError, match=str(missing)):
        build_server_context(pki.server_cert_file, pki.server_key_file, client_ca_names=[missing])


def test_minimum_version_is_tls_1_2(pki: Pki) -> None:
    server_ctx = build_server_context(pki.server_cert_file, pki.server_key_file)
    # Lower the security level on both sides so that only the configured minimum
    # protocol version can be what refuses TLS 1.1 (modern OpenSSL defaults would
    # refuse it anyway, hiding a missing set_min_proto_version).
    server_ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    client_ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    client_ctx.set_min_proto_version(SSL.TLS1_1_VERSION)
    client_ctx.set_max_proto_version(SSL.TLS1_1_VERSION)
    client_ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    pair = ConnectionPair(server_ctx, client_ctx)
    with pytest.raises(TLSHandshakeError, match=r"(?i)version|protocol"):
        pair.handshake()


@pytest.mark.parametrize(
    ("max_version", "expected"),
    [(SSL.TLS1_2_VERSION, "TLSv1.2"), (SSL.TLS1_3_VERSION, "TLSv1.3")],
)
def test_tls_1_2_and_1_3_are_accepted(
    pki: Pki, server_context: SSL.Context, max_version: int, expected: str
) -> None:
    info = ConnectionPair(server_context, client_context(pki, max_version=max_version)).handshake()
    assert info.version == expected
    # ECDHE + AEAD only.
    if expected == "TLSv1.2":
        assert info.cipher.startswith("ECDHE-")
        assert "GCM" in info.cipher or "CHACHA20" in info.cipher


@pytest.mark.parametrize(
    ("offered", "selected"),
    [
        ([b"h2", b"http/1.1"], "http/1.1"),
        ([b"h2"], None),
        (None, None),
    ],
)
def test_alpn_selects_http_1_1_and_tolerates_others(
    pki: Pki,
    server_context: SSL.Context,
    offered: list[bytes] | None,
    selected: str | None,
) -> None:
    pair = ConnectionPair(server_context, client_context(pki, alpn=offered))
    assert pair.handshake().alpn == selected
    assert pair.client.get_alpn_proto_negotiated() == (selected or "").encode()


def test_client_certificate_is_optional_and_any_is_accepted(pki: Pki, server_context: SSL.Context) -> None:
    assert ConnectionPair(server_context, client_context(pki)).handshake().peer is None
    peer = ConnectionPair(server_context, client_context(pki, pki.self_signed)).handshake().peer
    assert peer is not None


def test_no_client_certificate_requested_when_disabled(pki: Pki) -> None:
    server_ctx = build_server_context(
        pki.server_cert_file, pki.server_key_file, request_client_certificate=False
    )
    assert server_ctx.get_verify_mode() == SSL.VERIFY_NONE
    info = ConnectionPair(server_ctx, client_context(pki, pki.direct)).handshake()
    assert info.peer is None


def test_client_ca_names_are_advertised(pki: Pki, tmp_path: Path) -> None:
    other_ca = trustme.CA(organization_name="another client CA")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pki.client_ca_file.read_bytes() + other_ca.cert_pem.bytes())
    server_ctx = build_server_context(pki.server_cert_file, pki.server_key_file, client_ca_names=[bundle])
    pair = ConnectionPair(server_ctx, client_context(pki, pki.self_signed))
    info = pair.handshake()
    advertised = pair.client.get_client_ca_list(as_cryptography=True)
    other_subject = x509.load_pem_x509_certificate(other_ca.cert_pem.bytes()).subject
    assert advertised == [pki.direct.leaf.issuer, other_subject]
    # Advertising is only a hint: a certificate from elsewhere is still accepted.
    assert info.peer is not None


def test_session_cache_is_off_and_tickets_are_not_stateless(server_context: SSL.Context) -> None:
    # Issue 9, finding 2: no session outlives its connection (see
    # test_an_offered_session_gets_a_full_handshake_with_the_full_chain).
    assert server_context.get_session_cache_mode() == SSL.SESS_CACHE_OFF
    # Stateless tickets would resume without the client's intermediates.
    assert server_context.set_options(0) & SSL.OP_NO_TICKET


def test_idle_connections_release_their_buffers(server_context: SSL.Context) -> None:
    # What one held connection costs (issue 9): OpenSSL frees a connection's read and write
    # buffers when they are empty.
    assert server_context.set_mode(0) & SSL.MODE_RELEASE_BUFFERS

"""Sans-IO tests of TLSConnection: a pyOpenSSL client and the server class, pumped by hand."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from certbound.tls import PeerCertificates, TLSConnection, TLSError, TLSHandshakeError

from .conftest import ConnectionPair, Pki, client_context, drain


def _common_name(name: x509.Name) -> str:
    return str(name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_handshake_without_client_certificate(pki: Pki, server_context: SSL.Context) -> None:
    pair = ConnectionPair(server_context, client_context(pki, alpn=[b"http/1.1"]))
    info = pair.handshake()
    assert info.peer is None
    assert info.version == "TLSv1.3"
    assert info.cipher
    assert info.alpn == "http/1.1"
    assert info.resumed is False


def test_handshake_with_client_certificate(pki: Pki, server_context: SSL.Context) -> None:
    pair = ConnectionPair(server_context, client_context(pki, pki.direct))
    peer = pair.handshake().peer
    assert peer is not None
    assert peer.leaf == pki.direct.leaf
    assert _common_name(peer.leaf.subject) == "direct-client"
    assert peer.chain == ()


def test_client_chain_arrives_intact_without_the_leaf(pki: Pki, server_context: SSL.Context) -> None:
    pair = ConnectionPair(server_context, client_context(pki, pki.chained))
    peer = pair.handshake().peer
    assert peer is not None
    assert peer.leaf == pki.chained.leaf
    assert len(pki.chained.intermediates) == 1
    assert peer.chain == pki.chained.intermediates
    assert peer.leaf not in peer.chain


def test_x5t_s256_is_base64url_sha256_of_leaf_der(pki: Pki, server_context: SSL.Context) -> None:
    pair = ConnectionPair(server_context, client_context(pki, pki.chained))
    peer = pair.handshake().peer
    assert peer is not None
    der = pki.chained.leaf.public_bytes(Encoding.DER)
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    assert peer.leaf_der == der
    assert peer.x5t_s256 == expected
    assert "=" not in peer.x5t_s256


def test_from_certs_drops_a_leaf_repeated_in_the_chain(pki: Pki) -> None:
    leaf = pki.chained.leaf
    peer = PeerCertificates.from_certs(leaf, [leaf, *pki.chained.intermediates])
    assert peer.chain == pki.chained.intermediates


def test_untrusted_self_signed_certificate_is_accepted(pki: Pki, server_context: SSL.Context) -> None:
    pair = ConnectionPair(server_context, client_context(pki, pki.self_signed))
    info = pair.handshake()
    assert info.peer is not None
    assert info.peer.leaf == pki.self_signed.leaf
    assert info.peer.chain == ()


def test_application_data_both_ways(pki: Pki, server_context: SSL.Context) -> None:
    pair = ConnectionPair(server_context, client_context(pki))
    pair.handshake()
    request = b"x" * 300_000  # spans many records and more than one recv chunk
    pair.client.sendall(request)
    completed, plaintext, closed = pair.client_to_server()
    assert (completed, plaintext, closed) == (False, request, False)

    response = bytes(range(256)) * 4000
    pair.server.send(response)
    pair.server.send(b"")
    pair.server_to_client()
    assert pair.client_recv() == response


def test_data_sent_with_the_clients_finished_is_not_lost(pki: Pki, server_context: SSL.Context) -> None:
    pair = ConnectionPair(server_context, client_context(pki))
    for _ in range(5):
        try:
            pair.client.do_handshake()
            break
        except SSL.WantReadError:
            pair.client_to_server()
            pair.server_to_client()
    assert pair.server.info is None
    # The client's Finished and its first request leave in the same flight.
    pair.client.sendall(b"GET / HTTP/1.1\r\n\r\n")
    completed, plaintext, closed = pair.client_to_server()
    assert completed is True
    assert plaintext == b"GET / HTTP/1.1\r\n\r\n"
    assert closed is False


def test_server_close_notify_reaches_the_client(pki: Pki, server_context: SSL.Context) -> None:
    pair = ConnectionPair(server_context, client_context(pki))
    pair.handshake()
    pair.server.start_close()
    pair.server.start_close()  # idempotent
    pair.server_to_client()
    with pytest.raises(SSL.ZeroReturnError):
        pair.client.recv(1024)


def test_client_close_notify_is_reported(pki: Pki, server_context: SSL.Context) -> None:
    pair = ConnectionPair(server_context, client_context(pki))
    pair.handshake()
    pair.client.sendall(b"last words")
    pair.client.shutdown()
    assert pair.client_to_server() == (False, b"last words", True)


def test_garbage_is_a_handshake_error(server_context: SSL.Context) -> None:
    server = TLSConnection(server_context)
    with pytest.raises(TLSHandshakeError):
        server.receive_data(b"\x16\x03\x01\x00\x05garbage-garbage-garbage")
    assert server.info is None


def test_plaintext_http_is_a_handshake_error(server_context: SSL.Context) -> None:
    server = TLSConnection(server_context)
    with pytest.raises(TLSHandshakeError):
        server.receive_data(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")


def test_partial_client_hello_waits_for_more(pki: Pki, server_context: SSL.Context) -> None:
    pair = ConnectionPair(server_context, client_context(pki))
    with pytest.raises(SSL.WantReadError):
        pair.client.do_handshake()
    hello = pair.client.bio_read(65536)
    assert pair.server.receive_data(hello[:20]) == (False, b"", False)
    assert pair.server.data_to_send() == b""
    assert pair.server.receive_data(hello[20:]) == (False, b"", False)
    assert pair.server.data_to_send()  # ServerHello and friends


def test_tls_1_1_client_is_refused(pki: Pki, server_context: SSL.Context) -> None:
    client_ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    client_ctx.set_min_proto_version(SSL.TLS1_1_VERSION)
    client_ctx.set_max_proto_version(SSL.TLS1_1_VERSION)
    # Let the client actually build a TLS 1.1 hello despite modern defaults.
    client_ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    pair = ConnectionPair(server_context, client_ctx)
    with pytest.raises(SSL.WantReadError):
        pair.client.do_handshake()
    with pytest.raises(TLSHandshakeError, match=r"(?i)version|protocol"):
        pair.client_to_server()
    # The server tells the client why before the connection is dropped.
    assert pair.server.data_to_send()


def test_error_after_handshake_is_a_tls_error(pki: Pki, server_context: SSL.Context) -> None:
    pair = ConnectionPair(server_context, client_context(pki))
    pair.handshake()
    pair.client.sendall(b"hello")
    record = bytearray(pair.client.bio_read(65536))
    record[-1] ^= 0xFF  # corrupt the AEAD tag
    with pytest.raises(TLSError) as excinfo:
        pair.server.receive_data(bytes(record))
    assert not isinstance(excinfo.value, TLSHandshakeError)


@pytest.mark.parametrize("version", [SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION], ids=["TLSv1.2", "TLSv1.3"])
def test_an_offered_session_gets_a_full_handshake_with_the_full_chain(
    pki: Pki, server_context: SSL.Context, version: int
) -> None:
    # Issue 9, finding 2: no session cache, so no handshake leaves a session (and its peer
    # chain) behind in the server's memory.
    client_ctx = client_context(pki, pki.chained, max_version=version)
    first = ConnectionPair(server_context, client_ctx)
    first_info = first.handshake()
    assert first_info.resumed is False
    session = first.client.get_session()
    assert session is not None
    first.server.start_close()  # a clean close: OpenSSL would have kept the session cached

    second = ConnectionPair(server_context, client_ctx, session=session)
    info = second.handshake()
    assert info.resumed is False
    assert info.version == ("TLSv1.3" if version == SSL.TLS1_3_VERSION else "TLSv1.2")
    assert info.peer is not None
    assert info.peer.leaf == pki.chained.leaf
    assert info.peer.chain == pki.chained.intermediates


def test_renegotiation_is_a_tls_error_with_the_alert_to_send(pki: Pki, server_context: SSL.Context) -> None:
    # Issue 9, finding 14: OpenSSL refuses with a warning alert and carries on; the server ends
    # the connection instead, after sending that alert.
    pair = ConnectionPair(server_context, client_context(pki, max_version=SSL.TLS1_2_VERSION))
    pair.handshake()
    assert pair.client.renegotiate()
    with pytest.raises(SSL.WantReadError):
        pair.client.do_handshake()
    with pytest.raises(TLSError, match="renegotiate") as excinfo:
        pair.client_to_server()
    assert not isinstance(excinfo.value, TLSHandshakeError)
    pair.server_to_client()
    with pytest.raises(SSL.Error, match="no renegotiation"):
        pair.client.do_handshake()


def test_application_data_after_the_handshake_is_not_mistaken_for_renegotiation(
    pki: Pki, server_context: SSL.Context
) -> None:
    pair = ConnectionPair(server_context, client_context(pki, max_version=SSL.TLS1_2_VERSION))
    pair.handshake()
    record = b"GET / HTTP/1.1\r\n\r\n"
    pair.client.sendall(record)
    sent = drain(pair.client)
    # Split mid-record: the first part decrypts to nothing, and nothing is answered.
    assert pair.server.receive_data(sent[:7]) == (False, b"", False)
    assert pair.server.receive_data(sent[7:]) == (False, record, False)
    assert pair.server.data_to_send() == b""

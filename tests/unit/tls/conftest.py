"""Fixtures for the TLS layer tests: trustme PKI, files on disk and a sans-IO client/server pair."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from certbound.tls import TLSConnection, TLSInfo, build_server_context

__all__ = ["ClientIdentity", "ConnectionPair", "Pki", "client_context", "drain"]


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate on disk: ``chain_file`` holds the leaf then any intermediates."""

    leaf: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]
    chain_file: Path
    key_file: Path


@dataclass(frozen=True)
class Pki:
    server_ca: trustme.CA
    server_ca_file: Path
    server_cert_file: Path
    server_key_file: Path
    client_ca_file: Path
    # Issued directly by the client CA.
    direct: ClientIdentity
    # Issued by an intermediate of the client CA; the client sends leaf + intermediate.
    chained: ClientIdentity
    self_signed: ClientIdentity


def _write_identity(directory: Path, name: str, leaf: trustme.LeafCert) -> ClientIdentity:
    chain_file = directory / f"{name}.chain.pem"
    key_file = directory / f"{name}.key.pem"
    chain_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key_file))
    certs = [x509.load_pem_x509_certificate(blob.bytes()) for blob in leaf.cert_chain_pems]
    return ClientIdentity(certs[0], tuple(certs[1:]), chain_file, key_file)


def _self_signed(directory: Path) -> ClientIdentity:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self-signed-client")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    chain_file = directory / "self-signed.chain.pem"
    key_file = directory / "self-signed.key.pem"
    chain_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ClientIdentity(cert, (), chain_file, key_file)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    server_ca = trustme.CA()
    server_leaf = server_ca.issue_cert("localhost", "127.0.0.1")
    server_ca_file = directory / "server-ca.pem"
    server_ca.cert_pem.write_to_path(str(server_ca_file))
    server = _write_identity(directory, "server", server_leaf)

    client_ca = trustme.CA(organization_name="certbound test clients")
    client_ca_file = directory / "client-ca.pem"
    client_ca.cert_pem.write_to_path(str(client_ca_file))
    intermediate = client_ca.create_child_ca()
    direct = client_ca.issue_cert(common_name="direct-client")
    chained = intermediate.issue_cert(common_name="chained-client")
    return Pki(
        server_ca=server_ca,
        server_ca_file=server_ca_file,
        server_cert_file=server.chain_file,
        server_key_file=server.key_file,
        client_ca_file=client_ca_file,
        direct=_write_identity(directory, "direct", direct),
        chained=_write_identity(directory, "chained", chained),
        self_signed=_self_signed(directory),
    )


@pytest.fixture
def server_context(pki: Pki) -> SSL.Context:
    # A fresh context per test: its session cache must not leak between tests.
    return build_server_context(pki.server_cert_file, pki.server_key_file)


def client_context(
    pki: Pki,
    identity: ClientIdentity | None = None,
    *,
    alpn: list[bytes] | None = None,
    max_version: int = SSL.TLS1_3_VERSION,
) -> SSL.Context:
    """A pyOpenSSL client context that verifies the test server."""
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_max_proto_version(max_version)
    ctx.load_verify_locations(str(pki.server_ca_file))
    ctx.set_verify(SSL.VERIFY_PEER)
    if identity is not None:
        ctx.use_certificate_chain_file(str(identity.chain_file))
        ctx.use_privatekey_file(str(identity.key_file))
    if alpn is not None:
        ctx.set_alpn_protos(alpn)
    return ctx


def drain(conn: SSL.Connection) -> bytes:
    """All the ciphertext a pyOpenSSL endpoint has queued."""
    chunks = []
    while True:
        try:
            chunks.append(conn.bio_read(65536))
        except SSL.WantReadError:
            return b"".join(chunks)


class ConnectionPair:
    """A server :class:`TLSConnection` and a pyOpenSSL client, wired by hand, no sockets."""

    def __init__(
        self,
        server_ctx: SSL.Context,
        client_ctx: SSL.Context,
        *,
        session: SSL.Session | None = None,
    ) -> None:
        self.server = TLSConnection(server_ctx)
        self.client = SSL.Connection(client_ctx, None)
        self.client.set_connect_state()
        self.client.set_tlsext_host_name(b"localhost")
        if session is not None:
            self.client.set_session(session)
        self.client_handshake_done = False

    def client_to_server(self) -> tuple[bool, bytes, bool]:
        """Deliver everything the client has queued; return the server's result."""
        return self.server.receive_data(drain(self.client))

    def server_to_client(self) -> None:
        data = self.server.data_to_send()
        if data:
            self.client.bio_write(data)

    def client_recv(self) -> bytes:
        """Everything the client can decrypt from what it has been given."""
        chunks = []
        while True:
            try:
                chunks.append(self.client.recv(65536))
            except SSL.WantReadError:
                return b"".join(chunks)

    def handshake(self) -> TLSInfo:
        """Run the handshake to completion on both sides; return the server's view."""
        for _ in range(10):
            if not self.client_handshake_done:
                try:
                    self.client.do_handshake()
                    self.client_handshake_done = True
                except SSL.WantReadError:
                    pass
            self.client_to_server()
            self.server_to_client()
            if self.client_handshake_done and self.server.info is not None:
                # TLS 1.3 session tickets arrive after the handshake; let the client
                # process them so get_session() returns a resumable session.
                self.client_recv()
                return self.server.info
        raise AssertionError("handshake did not complete")

"""The one reader of a request's client certificate (certbound.clientcert): certbound's own TLS
transport, a stdlib `ssl` connection, none. (Over real sockets: tests/e2e/test_resource_stacks.py.)"""

from __future__ import annotations

import ssl
from unittest import mock

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL

from certbound.clientcert import connection_certificate
from certbound.errors import InvalidRequestError
from certbound.tls.peer import PeerCertificates

LEAF = x509.load_pem_x509_certificate(trustme.CA().issue_cert("client.example").cert_chain_pems[0].bytes())


def transport(**extra: object) -> mock.Mock:
    fake = mock.Mock()
    fake.get_extra_info.side_effect = lambda key, default=None: extra.get(key, default)
    return fake


def test_certbound_transport_answers_peer_certificates() -> None:
    peer = PeerCertificates.from_certs(LEAF, ())
    ssl_object = mock.Mock(spec=SSL.Connection)
    assert connection_certificate(transport(peer_certificates=peer, ssl_object=ssl_object)) is peer


def test_certbound_transport_without_a_certificate() -> None:
    # Its ssl_object is a pyOpenSSL Connection, which has no getpeercert: never mistaken for the
    # stdlib's SSLObject (calling it on this spec'd mock would raise AttributeError).
    ssl_object = mock.Mock(spec=SSL.Connection)
    assert connection_certificate(transport(peer_certificates=None, ssl_object=ssl_object)) is None


def test_stdlib_ssl_object_gives_the_leaf() -> None:
    ssl_object = mock.Mock(spec=ssl.SSLObject)
    ssl_object.getpeercert.return_value = LEAF.public_bytes(Encoding.DER)
    found = connection_certificate(transport(ssl_object=ssl_object))
    assert found is not None
    assert (found.leaf, found.chain) == (LEAF, ())
    ssl_object.getpeercert.assert_called_once_with(binary_form=True)


def test_stdlib_ssl_object_without_a_certificate() -> None:
    ssl_object = mock.Mock(spec=ssl.SSLObject)
    ssl_object.getpeercert.return_value = None
    assert connection_certificate(transport(ssl_object=ssl_object)) is None


def test_plain_connection_or_none() -> None:
    assert connection_certificate(transport()) is None
    assert connection_certificate(None) is None


def test_a_certificate_cryptography_cannot_parse_is_invalid_request() -> None:
    ssl_object = mock.Mock(spec=ssl.SSLObject)
    ssl_object.getpeercert.return_value = b"\x30\x03\x02\x01\x00"  # DER, but no certificate
    with pytest.raises(InvalidRequestError, match="cannot be parsed"):
        connection_certificate(transport(ssl_object=ssl_object))

"""tls_client_auth and certificate-bound tokens end to end (RFC 8705 §2.1 and §3, SPEC §8): a real
server over TLS, clients presenting trustme (or cryptography-built) certificates through an
intermediate CA, with aiohttp."""

from __future__ import annotations

import base64
import hashlib
import logging
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certbound.pki.trust import TrustStore
from certbound.testing import CertboundTestServer
from certbound.tokens import reference_token_hash
from tests.helpers import access_log, basic_auth, check_refusal, jwt_parts
from tests.unit.pki.builders import DAY, NOW, Issued, ca_name, from_trustme, issue, make_ca, make_crl, name

FORM = {"grant_type": "client_credentials"}


def thumbprint(leaf_pem: bytes) -> str:
    """RFC 8705 §3.1, computed here independently of the server: base64url(SHA-256(DER))."""
    der = x509.load_pem_x509_certificate(leaf_pem).public_bytes(Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


async def token_request(
    http: aiohttp.ClientSession,
    server: CertboundTestServer,
    client_id: str,
    context: ssl.SSLContext,
    *,
    headers: dict[str, str] | None = None,
    url: str | None = None,
    **form: str,
) -> Reply:
    data = {**FORM, "client_id": client_id, **form} if client_id else {**FORM, **form}
    with access_log() as lines:
        async with http.post(
            (url or server.url) + "/token", data=data, ssl=context, headers=headers
        ) as response:
            reply = Reply((response.status, await response.json()))
    (reply.access_line,) = lines
    return reply


class Reply(tuple[int, dict[str, Any]]):
    """(status, body) of a token request, and the access line the server wrote for it."""

    access_line: dict[str, Any]


def assert_refused(result: Reply, text: str = "") -> None:
    """Refused as invalid_client; `text` is in the logged detail (and in the description only
    when its reason is disclosed, which no certificate refusal is)."""
    status, body = result
    assert status == 401, body
    check_refusal(result.access_line, body, text)


def intermediate_leaf(server: CertboundTestServer, *identities: str, **kwargs: Any) -> trustme.LeafCert:
    """A client certificate under an intermediate of the trusted client CA; the client sends both."""
    leaf = server.client_ca.create_child_ca().issue_cert(*identities, **kwargs)
    assert len(leaf.cert_chain_pems) == 2
    return leaf


def present(server: CertboundTestServer, issued: Issued, directory: Path) -> ssl.SSLContext:
    context = server.client_ssl_context()
    issued.configure_cert(context, directory)
    return context


# -- subject DN and SANs ------------------------------------------------------------------------


async def test_subject_dn_spelled_differently_through_an_intermediate(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    leaf = intermediate_leaf(
        server, "billing.example", common_name="billing", organization_name="Example, Inc.",
        organization_unit_name="Clients",
    )  # fmt: skip
    # The certificate's subject is CN=billing,OU=Clients,O=Example\, Inc.
    client = await server.add_client(
        "tls_client_auth", tls_client_auth_subject_dn=r" cn = billing , 2.5.4.11=Clients,o=Example\2C Inc. "
    )
    status, body = await token_request(http, server, client.client_id, server.client_ssl_context(leaf))
    assert status == 200, body
    _, claims = jwt_parts(body["access_token"])
    assert claims["cnf"] == {"x5t#S256": thumbprint(leaf.cert_chain_pems[0].bytes())}
    assert claims["client_id"] == client.client_id


async def test_wrong_subject_dn_is_refused_and_logged(
    server: CertboundTestServer, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    leaf = intermediate_leaf(
        server, common_name="billing", organization_name="Example", organization_unit_name="IT"
    )
    for dn in ("CN=billing2,OU=IT,O=Example", "O=Example,OU=IT,CN=billing", "CN=billing,O=Example"):
        client = await server.add_client("tls_client_auth", tls_client_auth_subject_dn=dn)
        with caplog.at_level(logging.WARNING, logger="certbound.mtls"):
            result = await token_request(http, server, client.client_id, server.client_ssl_context(leaf))
        assert_refused(result, "does not match the registered tls_client_auth_subject_dn")
    # Each refusal is logged with its reason, the certificate's subject and thumbprint; no key.
    refusals = [record.getMessage() for record in caplog.records if record.name == "certbound.mtls"]
    assert len(refusals) == 3
    for message in refusals:
        assert "does not match" in message
        assert "CN=billing,OU=IT,O=Example" in message
        assert thumbprint(leaf.cert_chain_pems[0].bytes()) in message
        assert "PRIVATE KEY" not in message


@pytest.mark.parametrize(
    ("field", "value", "other"),
    [
        ("tls_client_auth_san_dns", "billing.example", "other.example"),
        ("tls_client_auth_san_ip", "192.0.2.10", "192.0.2.11"),
        ("tls_client_auth_san_ip", "2001:db8::a", "2001:db8::b"),
        ("tls_client_auth_san_email", "bot@example.com", "other@example.com"),
    ],
)
async def test_each_san_kind(
    server: CertboundTestServer, http: aiohttp.ClientSession, field: str, value: str, other: str
) -> None:
    leaf = intermediate_leaf(server, "billing.example", "192.0.2.10", "2001:db8::a", "bot@example.com")
    context = server.client_ssl_context(leaf)
    client = await server.add_client("tls_client_auth", **{field: value})
    status, body = await token_request(http, server, client.client_id, context)
    assert status == 200, body
    mismatched = await server.add_client("tls_client_auth", **{field: other})
    assert_refused(await token_request(http, server, mismatched.client_id, context), "does not match")


async def test_san_uri(server: CertboundTestServer, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    # trustme cannot put a URI in a certificate: issue one under the same trusted client CA.
    middle = make_ca(ca_name("URI Issuing CA"), parent=from_trustme(server.client_ca))
    leaf = issue(
        middle,
        name((NameOID.COMMON_NAME, "workload")),
        sans=[x509.UniformResourceIdentifier("spiffe://example.com/ns/billing")],
    )
    context = present(server, leaf, tmp_path)
    client = await server.add_client(
        "tls_client_auth", tls_client_auth_san_uri="spiffe://example.com/ns/billing"
    )
    status, body = await token_request(http, server, client.client_id, context)
    assert status == 200, body
    other = await server.add_client(
        "tls_client_auth", tls_client_auth_san_uri="spiffe://example.com/ns/other"
    )
    assert_refused(await token_request(http, server, other.client_id, context))


# -- refusals -------------------------------------------------------------------------------------


async def test_no_certificate_is_invalid_client(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="billing.example")
    result = await token_request(http, server, client.client_id, server.client_ssl_context())
    assert_refused(result, "no client certificate")


async def test_untrusted_ca_is_refused(server: CertboundTestServer, http: aiohttp.ClientSession) -> None:
    stranger = trustme.CA().create_child_ca().issue_cert("billing.example")
    client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="billing.example")
    assert_refused(await token_request(http, server, client.client_id, server.client_ssl_context(stranger)))
    # Twin: the same identity from the trusted CA.
    trusted = intermediate_leaf(server, "billing.example")
    status, _ = await token_request(http, server, client.client_id, server.client_ssl_context(trusted))
    assert status == 200


async def test_expired_certificate_is_refused(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    expired = intermediate_leaf(server, "billing.example", not_before=NOW - 10 * DAY, not_after=NOW - DAY)
    client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="billing.example")
    result = await token_request(http, server, client.client_id, server.client_ssl_context(expired))
    assert_refused(result, "not valid at validation time")


@pytest.mark.parametrize(
    ("eku", "accepted"),
    [([ExtendedKeyUsageOID.SERVER_AUTH], False), (None, True), ([ExtendedKeyUsageOID.CLIENT_AUTH], True)],
    ids=["serverAuth-only", "no-eku", "clientAuth"],
)
async def test_extended_key_usage(
    server: CertboundTestServer,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    eku: list[x509.ObjectIdentifier] | None,
    accepted: bool,
) -> None:
    leaf = issue(from_trustme(server.client_ca), name((NameOID.COMMON_NAME, "eku")), eku=eku)
    client = await server.add_client("tls_client_auth", tls_client_auth_subject_dn="CN=eku")
    result = await token_request(http, server, client.client_id, present(server, leaf, tmp_path))
    if accepted:
        assert result[0] == 200, result
    else:
        assert_refused(result, "clientAuth")


async def test_bare_client_id_with_a_secret_client_certificate_still_needs_the_method(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    # An mTLS client that sends a secret instead: the wrong mechanism, even with a good certificate.
    leaf = intermediate_leaf(server, "billing.example")
    client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="billing.example")
    result = await token_request(
        http, server, client.client_id, server.client_ssl_context(leaf), client_secret="whatever-secret"
    )
    assert_refused(result)


# -- revocation -----------------------------------------------------------------------------------


@pytest.fixture
def revocation(tmp_path: Path) -> tuple[CertboundTestServer, Issued, Issued]:
    """A server (not started) with the CRL of an intermediate CA, a certificate that CRL lists and
    one it does not."""
    crl_file = tmp_path / "client.crl"
    server = CertboundTestServer(client_crl=(crl_file,))
    middle = make_ca(ca_name("Revoking CA"), parent=from_trustme(server.client_ca))
    revoked = issue(middle, name((NameOID.COMMON_NAME, "revoked")))
    kept = issue(middle, name((NameOID.COMMON_NAME, "kept")))
    crl_file.write_bytes(make_crl(middle, [revoked.cert.serial_number]).public_bytes(Encoding.PEM))
    return server, revoked, kept


async def test_revoked_certificate_is_refused(
    revocation: tuple[CertboundTestServer, Issued, Issued], http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    server, revoked, kept = revocation
    async with server:
        client = await server.add_client("tls_client_auth", tls_client_auth_subject_dn="CN=revoked")
        result = await token_request(http, server, client.client_id, present(server, revoked, tmp_path))
        assert_refused(result, "revoked")
        # Twin: a sibling from the same CA that the CRL does not list.
        client = await server.add_client("tls_client_auth", tls_client_auth_subject_dn="CN=kept")
        result = await token_request(http, server, client.client_id, present(server, kept, tmp_path))
        assert result[0] == 200, result


# -- CA pinning -----------------------------------------------------------------------------------


async def test_client_pinned_to_a_ca_is_refused_by_a_same_named_ca(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    ca_a, ca_b = make_ca(ca_name("Twin CA")), make_ca(ca_name("Twin CA"))
    assert ca_a.cert.subject == ca_b.cert.subject
    bundle = tmp_path / "twins.pem"
    bundle.write_bytes(ca_a.pem() + ca_b.pem())
    subject = name((NameOID.ORGANIZATION_NAME, "Example"), (NameOID.COMMON_NAME, "payments"))
    from_a, from_b = issue(ca_a, subject), issue(ca_b, subject)
    pin_a = hashlib.sha256(ca_a.cert.public_bytes(Encoding.DER)).hexdigest()
    async with CertboundTestServer(client_ca=(bundle,)) as server:
        pinned = await server.add_client(
            "tls_client_auth",
            tls_client_auth_subject_dn="CN=payments,O=Example",
            tls_client_auth_ca_sha256=pin_a,
        )
        unpinned = await server.add_client(
            "tls_client_auth", tls_client_auth_subject_dn="CN=payments,O=Example"
        )
        context_a, context_b = present(server, from_a, tmp_path), present(server, from_b, tmp_path)
        assert (await token_request(http, server, pinned.client_id, context_a))[0] == 200
        assert_refused(
            await token_request(http, server, pinned.client_id, context_b), "tls_client_auth_ca_sha256"
        )
        # Twin: without the pin both CAs are trusted for that subject.
        assert (await token_request(http, server, unpinned.client_id, context_b))[0] == 200


# -- registration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"tls_client_auth_subject_dn": "CN=a", "tls_client_auth_san_dns": "a.example"},
        {"tls_client_auth_subject_dn": "CN=a,,O=b"},
        {"tls_client_auth_san_ip": "not-an-ip"},
        {"tls_client_auth_san_dns": "a.example", "tls_client_auth_ca_sha256": "abc"},
    ],
    ids=["no-subject", "two-subjects", "malformed-dn", "bad-ip", "bad-pin"],
)
async def test_registration_refuses_bad_subject_fields(
    server: CertboundTestServer, http: aiohttp.ClientSession, metadata: dict[str, str]
) -> None:
    async with http.post(
        server.url + "/register",
        json={"token_endpoint_auth_method": "tls_client_auth", **metadata},
        ssl=server.client_ssl_context(),
    ) as response:
        body = await response.json()
    assert (response.status, body["error"]) == (400, "invalid_client_metadata"), body


async def test_registration_with_one_subject_field(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        server.url + "/register",
        json={"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_ip": "2001:db8::1"},
        ssl=server.client_ssl_context(),
    ) as response:
        body = await response.json()
    assert response.status == 201, body
    assert body["tls_client_certificate_bound_access_tokens"] is True
    assert "client_secret" not in body


# -- binding --------------------------------------------------------------------------------------


async def test_bound_secret_client_without_certificate_is_invalid_request(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await server.add_client("client_secret_basic", tls_client_certificate_bound_access_tokens=True)
    assert client.secret is not None
    auth = {"Authorization": basic_auth(client.client_id, client.secret)}
    status, body = await token_request(http, server, "", server.client_ssl_context(), headers=auth)
    assert (status, body["error"]) == (400, "invalid_request"), body
    # Twin: with a certificate (any: for a secret client it is only bound, not authenticated).
    leaf = trustme.CA().issue_cert("anything.example")
    status, body = await token_request(http, server, "", server.client_ssl_context(leaf), headers=auth)
    assert status == 200, body
    assert jwt_parts(body["access_token"])[1]["cnf"] == {
        "x5t#S256": thumbprint(leaf.cert_chain_pems[0].bytes())
    }


async def test_unbound_client_gets_no_cnf_even_with_a_certificate(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await server.add_client("client_secret_basic")
    assert client.secret is not None
    auth = {"Authorization": basic_auth(client.client_id, client.secret)}
    leaf = intermediate_leaf(server, "anything.example")
    status, body = await token_request(http, server, "", server.client_ssl_context(leaf), headers=auth)
    assert status == 200, body
    assert "cnf" not in jwt_parts(body["access_token"])[1]


async def test_mtls_client_may_opt_out_of_binding(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    leaf = intermediate_leaf(server, "billing.example")
    client = await server.add_client(
        "tls_client_auth",
        tls_client_auth_san_dns="billing.example",
        tls_client_certificate_bound_access_tokens=False,
    )
    status, body = await token_request(http, server, client.client_id, server.client_ssl_context(leaf))
    assert status == 200, body
    assert "cnf" not in jwt_parts(body["access_token"])[1]


async def test_reference_token_keeps_the_thumbprint(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    leaf = intermediate_leaf(server, "billing.example")
    client = await server.add_client(
        "tls_client_auth", tls_client_auth_san_dns="billing.example", access_token_as_jwt=False
    )
    context = server.client_ssl_context(leaf)
    status, body = await token_request(http, server, client.client_id, context)
    assert status == 200, body
    expected = thumbprint(leaf.cert_chain_pems[0].bytes())
    stored = await server.running.context.store.get_reference_token(
        reference_token_hash(body["access_token"])
    )
    assert stored is not None
    assert stored.cnf_x5t_s256 == expected
    # Introspection authenticates the mTLS client the same way and returns the same cnf.
    form = {"token": body["access_token"], "client_id": client.client_id}
    async with http.post(server.url + "/introspect", data=form, ssl=context) as response:
        introspected = await response.json()
    assert response.status == 200, introspected
    assert introspected["active"] is True
    assert introspected["cnf"] == {"x5t#S256": expected}
    # Twin: without its certificate the caller is not authenticated.
    async with http.post(server.url + "/introspect", data=form, ssl=server.client_ssl_context()) as response:
        assert response.status == 401


# -- discovery and the validation cache ------------------------------------------------------------


async def test_discovery_lists_the_mtls_methods(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        server.url + "/.well-known/oauth-authorization-server", ssl=server.client_ssl_context()
    ) as response:
        metadata = await response.json()
    for key in ("token_endpoint_auth_methods_supported", "introspection_endpoint_auth_methods_supported"):
        assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(metadata[key])
    assert metadata["tls_client_certificate_bound_access_tokens"] is True
    assert "mtls_endpoint_aliases" not in metadata  # no separate mTLS listener here


async def test_keep_alive_requests_do_not_rebuild_the_path(
    server: CertboundTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaf = intermediate_leaf(server, "billing.example")
    client = await server.add_client("tls_client_auth", tls_client_auth_san_dns="billing.example")
    validations = 0
    original = TrustStore._validate

    def counting(self: TrustStore, *args: Any) -> Any:
        nonlocal validations
        validations += 1
        return original(self, *args)

    monkeypatch.setattr(TrustStore, "_validate", counting)
    connections = 0

    async def on_connection(*_: object) -> None:
        nonlocal connections
        connections += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_connection)
    context = server.client_ssl_context(leaf)
    async with aiohttp.ClientSession(trace_configs=[trace]) as http:
        for _ in range(3):
            status, _body = await token_request(http, server, client.client_id, context)
            assert status == 200
    assert connections == 1  # one TLS connection, kept alive
    assert validations == 1  # path building ran once for it

"""SPIFFE end to end (SPEC §13): JWT-SVIDs (spiffe_jwt) and X.509-SVIDs over mTLS (tls_client_auth
with spiffe_id), verified against a trust domain's bundle fetched over real HTTPS from a test issuer
(or read from a file); a stale bundle fails closed. `--client-ca` certificates never satisfy a
spiffe_id client, and bundle authorities never satisfy a DN/SAN client."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from certbound.authmethods import JWT_BEARER
from certbound.errors import InvalidClientMetadataError
from certbound.reasons import Reason
from certbound.testing import CertboundTestServer, TestClient
from tests.assertion_kit import generate_key, hmac_compact
from tests.federation_kit import TestIssuer, expect_refusal, svid_form
from tests.helpers import post_token
from tests.unit.pki.builders import Issued, from_trustme, issue, key_usage, make_ca, name

WORKLOAD = "spiffe://example.org/ns/prod/sa/api"


@pytest.fixture
async def server(issuer: TestIssuer, tmp_path: Path) -> AsyncIterator[CertboundTestServer]:
    federation = issuer.federation_file(tmp_path, spiffe={"max_lifetime": 600})
    async with CertboundTestServer(federation=federation, **issuer.server_options()) as running:
        yield running


def _presenting(server: CertboundTestServer, certificate: Issued) -> ssl.SSLContext:
    context = server.client_ssl_context()
    certificate.configure_cert(context, server.directory)
    return context


# --- JWT-SVIDs --------------------------------------------------------------------------------------


async def test_a_jwt_svid_authenticates_its_workload_and_may_be_presented_again(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await server.add_client("spiffe_jwt", spiffe_id=WORKLOAD)
    svid = issuer.mint_svid(WORKLOAD, server.issuer)  # no iss, no jti: both optional
    for _ in range(2):
        status, body = await post_token(http, server, svid_form(client.client_id, svid))
        assert status == 200, body
    assert issuer.requests["/bundle"] == 1


@pytest.mark.parametrize(
    ("claims", "detail", "reason"),
    [
        (
            {"sub": "spiffe://example.org/ns/prod/sa/other"},
            "sub is not the client's spiffe_id",
            Reason.SUB_MISMATCH,
        ),
        ({"aud": "https://other.example"}, "aud must be this server's issuer", Reason.AUD_NOT_ISSUER),
        (
            {"aud": ["{issuer}", "https://other.example"]},
            "aud must be this server's issuer",
            Reason.AUD_NOT_ISSUER,
        ),
        ({"exp": 900}, "more than the 600 s trust domain example.org allows", Reason.EXP_TOO_FAR),
        ({"exp": -120}, "has expired", Reason.EXPIRED),
        ({"exp": None}, "has no exp", Reason.EXP_MISSING),
        ({"nbf": 120}, "nbf is in the future", Reason.NOT_YET_VALID),
    ],
)
async def test_jwt_svid_claims_are_checked(
    issuer: TestIssuer,
    server: CertboundTestServer,
    http: aiohttp.ClientSession,
    claims: dict[str, Any],
    detail: str,
    reason: Reason,
) -> None:
    client = await server.add_client("spiffe_jwt", spiffe_id=WORKLOAD)
    now = issuer.claims()["iat"]
    values: dict[str, Any] = {}
    for claim, value in claims.items():
        if claim in ("exp", "nbf") and value is not None:
            value = now + value
        elif isinstance(value, list):
            value = [server.issuer if item == "{issuer}" else item for item in value]
        values[claim] = value
    values.setdefault("aud", server.issuer)
    sub = values.pop("sub", WORKLOAD)
    svid = issuer.mint_svid(sub, values.pop("aud"), **values)
    await expect_refusal(http, server, svid_form(client.client_id, svid), detail, reason)


async def test_jwt_svid_claims_within_the_limits_are_accepted(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await server.add_client("spiffe_jwt", spiffe_id=WORKLOAD)
    now = issuer.claims()["iat"]
    for svid in (
        issuer.mint_svid(WORKLOAD, [server.issuer], exp=now + 600, iss="spiffe://example.org"),
        issuer.mint_svid(WORKLOAD, server.issuer, nbf=now + 30, exp=now - 30, jti="once"),
    ):
        status, body = await post_token(http, server, svid_form(client.client_id, svid))
        assert status == 200, body


async def test_a_jwt_svid_signed_by_an_unknown_key_refetches_the_bundle_once(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await server.add_client("spiffe_jwt", spiffe_id=WORKLOAD)
    assert (
        await post_token(http, server, svid_form(client.client_id, issuer.mint_svid(WORKLOAD, server.issuer)))
    )[0] == 200
    rotated = generate_key("ES256", kid="svid-2")
    issuer.svid_keys.append(rotated)
    svid = issuer.mint_svid(WORKLOAD, server.issuer, key=rotated)
    assert (await post_token(http, server, svid_form(client.client_id, svid)))[0] == 200
    assert issuer.requests["/bundle"] == 2
    stranger = issuer.mint_svid(WORKLOAD, server.issuer, key=generate_key("ES256", kid="svid-x"))
    await expect_refusal(
        http,
        server,
        svid_form(client.client_id, stranger),
        "matches none of the jwt-svid keys of trust domain example.org",
        Reason.KID_UNKNOWN,
    )
    assert issuer.requests["/bundle"] == 2  # within the cooldown


async def test_hmac_and_a_jwt_bearer_assertion_type_are_refused(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await server.add_client("spiffe_jwt", spiffe_id=WORKLOAD)
    claims = {"sub": WORKLOAD, "aud": server.issuer, "exp": issuer.claims()["exp"]}
    mac = hmac_compact(b"public knowledge", "HS256", claims)
    await expect_refusal(
        http, server, svid_form(client.client_id, mac), "alg HS256 is not allowed", Reason.ALG_NOT_ALLOWED
    )
    svid = issuer.mint_svid(WORKLOAD, server.issuer)
    form = {**svid_form(client.client_id, svid), "client_assertion_type": JWT_BEARER}
    await expect_refusal(
        http, server, form, "registered for spiffe_jwt", Reason.METHOD_MISMATCH, disclosed=False
    )


async def test_a_bundle_never_fetched_is_stale_and_fails_closed(
    issuer: TestIssuer,
    server: CertboundTestServer,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await server.add_client("spiffe_jwt", spiffe_id=WORKLOAD)
    svid_client = await server.add_client("tls_client_auth", spiffe_id=WORKLOAD)
    issuer.status = 500
    for _ in range(2):
        await expect_refusal(
            http,
            server,
            svid_form(client.client_id, issuer.mint_svid(WORKLOAD, server.issuer)),
            "the bundle of trust domain example.org is stale: it was never fetched",
            Reason.BUNDLE_STALE,
        )
    # X.509-SVIDs of that trust domain fail closed too.
    await expect_refusal(
        http,
        server,
        {"grant_type": "client_credentials", "client_id": svid_client.client_id},
        "is stale",
        Reason.BUNDLE_STALE,
        context=_presenting(server, issuer.issue_svid(WORKLOAD)),
    )
    stale_lines = [r for r in caplog.records if "its SVIDs are refused" in r.getMessage()]
    assert len(stale_lines) == 1  # logged when it turns stale, not per request
    async with http.get(server.url + "/metrics", ssl=server.client_ssl_context()) as response:
        metrics = await response.text()
    assert 'certbound_spiffe_bundle_stale_refusals_total{trust_domain="example.org"} 3.0' in metrics


async def test_a_bundle_file_needs_no_fetch(
    issuer: TestIssuer, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    bundle = issuer.write_bundle(tmp_path / "bundle.json")
    federation = issuer.federation_file(tmp_path, spiffe={"bundle_file": bundle.name})
    async with CertboundTestServer(federation=federation) as server:
        client = await server.add_client("spiffe_jwt", spiffe_id=WORKLOAD)
        status, body = await post_token(
            http, server, svid_form(client.client_id, issuer.mint_svid(WORKLOAD, server.issuer))
        )
        assert status == 200, body
    assert issuer.requests == {}


async def test_spiffe_ids_must_be_in_a_configured_trust_domain(server: CertboundTestServer) -> None:
    for method in ("spiffe_jwt", "tls_client_auth"):
        with pytest.raises(InvalidClientMetadataError, match=r"'elsewhere\.org' is not a trust domain"):
            await server.add_client(method, spiffe_id="spiffe://elsewhere.org/app")
    with pytest.raises(InvalidClientMetadataError, match="has a path"):
        await server.add_client("spiffe_jwt", spiffe_id="spiffe://example.org")


# --- X.509-SVIDs ------------------------------------------------------------------------------------


def _mtls_form(client: TestClient) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": client.client_id}


async def test_an_x509_svid_authenticates_a_spiffe_id_client(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await server.add_client("tls_client_auth", spiffe_id=WORKLOAD)
    svid = issuer.issue_svid(WORKLOAD)
    status, body = await post_token(http, server, _mtls_form(client), _presenting(server, svid))
    assert status == 200, body
    # Through an intermediate the workload sends along, too.
    intermediate = make_ca(name((NameOID.COMMON_NAME, "example.org intermediate")), parent=issuer.svid_ca)
    leaf = issuer.issue_svid(WORKLOAD, ca=intermediate)
    status, body = await post_token(http, server, _mtls_form(client), _presenting(server, leaf))
    assert status == 200, body


@pytest.mark.parametrize(
    ("make", "detail", "reason"),
    [
        (
            lambda issuer: issuer.issue_svid(WORKLOAD, "spiffe://example.org/ns/prod/sa/other"),
            "exactly one URI subjectAltName (this one holds 2)",
            Reason.SVID_INVALID,
        ),
        (
            lambda issuer: issuer.issue_svid("spiffe://example.org/ns/prod/sa/other"),
            "SPIFFE ID is not the client's spiffe_id",
            Reason.SPIFFE_ID_MISMATCH,
        ),
        (
            lambda issuer: issuer.issue_svid(WORKLOAD, usage=key_usage(key_encipherment=True)),
            "allows digitalSignature",
            Reason.SVID_INVALID,
        ),
        (
            lambda issuer: issuer.issue_svid(WORKLOAD, usage=None),
            "allows digitalSignature",
            Reason.SVID_INVALID,
        ),
        (
            lambda issuer: issuer.issue_svid(WORKLOAD, ca=make_ca(name((NameOID.COMMON_NAME, "rogue")))),
            "trust domain example.org",
            Reason.CHAIN_UNTRUSTED,
        ),
    ],
)
async def test_an_x509_svid_is_refused(
    issuer: TestIssuer,
    server: CertboundTestServer,
    http: aiohttp.ClientSession,
    make: Any,
    detail: str,
    reason: Reason,
) -> None:
    client = await server.add_client("tls_client_auth", spiffe_id=WORKLOAD)
    context = _presenting(server, make(issuer))
    await expect_refusal(http, server, _mtls_form(client), detail, reason, context=context)


async def test_a_client_ca_certificate_never_satisfies_a_spiffe_id_client(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    """Same URI, same leaf rules, but issued by --client-ca: not an SVID of the trust domain."""
    client = await server.add_client("tls_client_auth", spiffe_id=WORKLOAD)
    impostor = _client_ca_cert(server, WORKLOAD)
    await expect_refusal(
        http, server, _mtls_form(client), "trust domain example.org", Reason.CHAIN_UNTRUSTED,
        context=_presenting(server, impostor),
    )  # fmt: skip


async def test_bundle_authorities_never_satisfy_a_san_client(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    """The other way round: a SAN client (the same URI as tls_client_auth_san_uri) is judged
    against --client-ca only: the SVID is refused, the client CA's certificate works."""
    client = await server.add_client("tls_client_auth", tls_client_auth_san_uri=WORKLOAD)
    await expect_refusal(
        http, server, _mtls_form(client), "", Reason.CHAIN_UNTRUSTED,
        context=_presenting(server, issuer.issue_svid(WORKLOAD)), disclosed=False,
    )  # fmt: skip
    status, body = await post_token(
        http, server, _mtls_form(client), _presenting(server, _client_ca_cert(server, WORKLOAD))
    )
    assert status == 200, body


def _client_ca_cert(server: CertboundTestServer, uri: str) -> Issued:
    return issue(
        from_trustme(server.client_ca),
        name((NameOID.COMMON_NAME, "workload")),
        sans=[x509.UniformResourceIdentifier(uri)],
        usage=key_usage(digital_signature=True),
    )


async def test_the_metrics_and_logs_never_carry_the_svid(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await server.add_client("spiffe_jwt", spiffe_id=WORKLOAD)
    svid = issuer.mint_svid("spiffe://example.org/ns/prod/sa/other", server.issuer)
    body = await expect_refusal(
        http,
        server,
        svid_form(client.client_id, svid),
        "sub is not the client's spiffe_id",
        Reason.SUB_MISMATCH,
    )
    assert svid not in json.dumps(body)

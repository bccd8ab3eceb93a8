"""DPoP at the token endpoint (SPEC §12, RFC 9449 §5, §8) over real TLS: DPoP-bound tokens (JWT and
opaque), every refusal of a proof with its reason on the access line and its twin, replay state
shared by nodes, server nonces, `dpop_bound_access_tokens`, certificate binding and DPoP together,
the mTLS alias."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from joserfc.jwk import ECKey

from certbound.app import DPOP_NONCE_KEY
from certbound.dpop import NonceIssuer
from certbound.reasons import ProofReason
from certbound.testing import CertboundTestServer, ReadyClient
from tests.dpop_kit import ProofKey, accepted_variants, refusals
from tests.helpers import access_log, jwt_parts

FORM = {"grant_type": "client_credentials"}


async def token_request(
    client: ReadyClient, *proofs: str, form: dict[str, str] | None = None
) -> tuple[int, Any, Mapping[str, str]]:
    """POST /token authenticated as `client`, with one `DPoP` header per proof."""
    headers, credentials = client.authentication()
    pairs = [*headers.items(), *(("DPoP", proof) for proof in proofs)]
    async with (
        client.session() as http,
        http.post(
            client.base_url + "/token", data={**(form or FORM), **credentials}, headers=pairs
        ) as response,
    ):
        return response.status, await response.json(), response.headers


def assert_bound(body: dict[str, Any], jkt: str, x5t: str | None = None) -> None:
    assert body["token_type"] == "DPoP", body
    expected = {"jkt": jkt} if x5t is None else {"x5t#S256": x5t, "jkt": jkt}
    assert jwt_parts(body["access_token"])[1]["cnf"] == expected


@pytest.mark.parametrize("as_jwt", [True, False], ids=["jwt", "opaque"])
async def test_a_proof_binds_the_token_and_introspection_says_so(server: CertboundTestServer, as_jwt) -> None:
    client = await server.new_client(access_token_as_jwt=as_jwt)
    token = await client.fetch_token(dpop=True)
    status, answer = await client.post("/introspect", {"token": token})
    assert status == 200
    assert (answer["token_type"], answer["cnf"]) == ("DPoP", {"jkt": client.dpop_key.jkt})
    if as_jwt:
        assert jwt_parts(token)[1]["cnf"] == {"jkt": client.dpop_key.jkt}
    # The twin: without a proof the token is an unbound bearer token.
    plain = await client.fetch_token()
    status, answer = await client.post("/introspect", {"token": plain})
    assert (answer["token_type"], "cnf" in answer) == ("Bearer", False)


async def test_every_bad_proof_is_invalid_dpop_proof_with_its_reason(server: CertboundTestServer) -> None:
    client = await server.new_client()
    key = ProofKey()
    jkt = ECKey.import_key(key.public).thumbprint()
    wrong: list[str] = []
    with access_log() as lines:
        for case in refusals(key, "POST", client.token_endpoint):
            status, body, _ = await token_request(client, *case.headers)
            line = lines[-1]
            if (status, body.get("error"), line.get("reason")) != (400, "invalid_dpop_proof", case.reason):
                wrong.append(f"{case.name}: {status} {body} reason={line.get('reason')}")
            elif case.says not in body["error_description"]:
                wrong.append(f"{case.name}: description {body['error_description']!r}")
        for name, make in accepted_variants(key, "POST", client.token_endpoint).items():
            status, body, _ = await token_request(client, make())
            if status != 200 or body["token_type"] != "DPoP":
                wrong.append(f"twin {name}: {status} {body}")
            else:
                assert_bound(body, jkt)
    assert wrong == []


async def test_a_proof_is_accepted_once_whoever_sends_it(server: CertboundTestServer) -> None:
    client, other = await server.new_client(), await server.new_client()
    key = ProofKey()
    proof = key.proof("POST", client.token_endpoint)
    status, body, _ = await token_request(client, proof)
    assert status == 200, body
    with access_log() as lines:
        for sender in (client, other):
            status, body, _ = await token_request(sender, proof)
            assert (status, body["error"]) == (400, "invalid_dpop_proof")
            assert "already been used" in body["error_description"]
            assert lines[-1]["reason"] == ProofReason.JTI_REPLAYED
    # Twin: a fresh proof of the same key is fine.
    status, body, _ = await token_request(client, key.proof("POST", client.token_endpoint))
    assert status == 200, body


async def test_a_proof_is_checked_only_for_an_authenticated_client(server: CertboundTestServer) -> None:
    client = await server.new_client()
    headers = {"DPoP": "garbage", "Authorization": "Basic Ym9ndXM6Ym9ndXM="}
    async with (
        client.session() as http,
        http.post(server.url + "/token", data=FORM, headers=headers) as response,
    ):
        assert (response.status, (await response.json())["error"]) == (401, "invalid_client")


async def test_a_costly_key_is_verified_too(server: CertboundTestServer) -> None:
    # A P-384 key is verified on the CPU pool (certbound.keypolicy.costly_to_verify), P-256 in place.
    client = await server.new_client()
    for curve, alg in (("P-384", "ES384"), ("P-256", "ES256")):
        key = ProofKey(ECKey.generate_key(curve), alg)
        status, body, _ = await token_request(client, key.proof("POST", client.token_endpoint))
        assert status == 200, body
        assert_bound(body, key.key.thumbprint())
        forged = key.proof("POST", client.token_endpoint, signer=ECKey.generate_key(curve))
        status, body, _ = await token_request(client, forged)
        assert (status, body["error"]) == (400, "invalid_dpop_proof")


async def test_a_dpop_bound_client_must_send_a_proof(server: CertboundTestServer) -> None:
    client = await server.new_client(dpop_bound_access_tokens=True)
    status, body, _ = await token_request(client)
    assert (status, body["error"]) == (400, "invalid_request")
    assert "dpop_bound_access_tokens" in body["error_description"]
    status, body, _ = await token_request(client, client.dpop_key.proof("POST", client.token_endpoint))
    assert status == 200, body
    assert_bound(body, client.dpop_key.jkt)


async def test_certificate_binding_and_dpop_together(server: CertboundTestServer) -> None:
    mtls = await server.new_client("tls_client_auth")
    assert mtls.certificate is not None
    token = await mtls.fetch_token(dpop=True)
    claims = jwt_parts(token)[1]
    assert set(claims["cnf"]) == {"x5t#S256", "jkt"}
    assert claims["cnf"]["jkt"] == mtls.dpop_key.jkt
    # A certificate-bound client without its certificate is refused, proof or not (SPEC §8).
    bound = await server.new_client(tls_client_certificate_bound_access_tokens=True, certificate=False)
    status, body, _ = await token_request(bound, bound.dpop_key.proof("POST", bound.token_endpoint))
    assert (status, body["error"]) == (400, "invalid_request")
    assert "certificate-bound" in body["error_description"]


async def test_at_the_mtls_alias_the_proof_names_the_alias() -> None:
    async with CertboundTestServer(mtls_port=0) as server:
        client = await server.new_client("tls_client_auth")
        assert client.token_endpoint == server.settings.mtls_base_url + "/token"
        status, body, _ = await token_request(client, client.dpop_key.proof("POST", client.token_endpoint))
        assert status == 200, body
        with access_log() as lines:
            wrong_listener = client.dpop_key.proof("POST", server.settings.token_endpoint)
            status, body, _ = await token_request(client, wrong_listener)
            assert (status, body["error"], lines[-1]["reason"]) == (
                400,
                "invalid_dpop_proof",
                ProofReason.HTU_MISMATCH,
            )


@pytest.mark.parametrize("path", ["/introspect", "/revoke"])
async def test_a_dpop_header_elsewhere_is_ignored(server: CertboundTestServer, path: str) -> None:
    client = await server.new_client()
    token = await client.fetch_token()
    status, _ = await client.post(path, {"token": token}, headers={"DPoP": "garbage"})
    assert status == 200


async def test_discovery_lists_the_dpop_algorithms(server: CertboundTestServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            server.url + "/.well-known/oauth-authorization-server", ssl=server.client_ssl_context()
        ) as reply,
    ):
        metadata = await reply.json()
    algs = metadata["dpop_signing_alg_values_supported"]
    assert "ES256" in algs
    assert not {"none", "HS256", "HS384", "HS512"} & set(algs)


# server nonces (--dpop-nonce)
async def test_without_a_nonce_the_answer_is_use_dpop_nonce_with_one() -> None:
    async with CertboundTestServer(dpop_nonce=True) as server:
        client = await server.new_client()
        with access_log() as lines:
            status, body, headers = await token_request(
                client, client.dpop_key.proof("POST", client.token_endpoint)
            )
            assert (status, body["error"], lines[-1]["reason"]) == (
                400,
                "use_dpop_nonce",
                ProofReason.NONCE_MISSING,
            )
        nonce = headers["DPoP-Nonce"]
        # The twin: with the nonce it is accepted, and the answer offers the next one.
        proof = client.dpop_key.proof("POST", client.token_endpoint, nonce=nonce)
        status, body, headers = await token_request(client, proof)
        assert status == 200, body
        assert "DPoP-Nonce" in headers
        # A nonce serves several proofs within its lifetime.
        proof = client.dpop_key.proof("POST", client.token_endpoint, nonce=nonce)
        assert (await token_request(client, proof))[0] == 200
        # The harness retries with the nonce by itself.
        assert jwt_parts(await client.fetch_token(dpop=True))[1]["cnf"] == {"jkt": client.dpop_key.jkt}


async def test_a_forged_or_stale_nonce_is_answered_with_a_fresh_one() -> None:
    async with CertboundTestServer(dpop_nonce=True) as server:
        client = await server.new_client()
        key = server.running.context.vault.subkey(DPOP_NONCE_KEY)
        forged = NonceIssuer(bytes(32)).issue()
        stale = NonceIssuer(key, clock=lambda: time.time() - 301).issue()
        for nonce, reason in ((forged, ProofReason.NONCE_INVALID), (stale, ProofReason.NONCE_EXPIRED)):
            with access_log() as lines:
                proof = client.dpop_key.proof("POST", client.token_endpoint, nonce=nonce)
                status, body, headers = await token_request(client, proof)
            assert (status, body["error"], lines[-1]["reason"]) == (400, "use_dpop_nonce", reason)
            assert headers["DPoP-Nonce"] not in (forged, stale)


async def test_nodes_sharing_the_database_accept_each_others_nonces_and_replays(tmp_path: Path) -> None:
    # Two nodes of one deployment: one database, one master key, one issuer.
    options = {
        "db": f"sqlite:///{tmp_path}/shared.db",
        "master_key_file": tmp_path / "master.key",
        "issuer": "https://certbound.test",
        "dpop_nonce": True,
    }
    async with CertboundTestServer(**options) as first, CertboundTestServer(**options) as second:
        at_first = await first.new_client()
        at_second = dataclasses.replace(
            at_first, base_url=second.url, ssl_context=second.client_ssl_context()
        )
        _, _, headers = await token_request(
            at_first, at_first.dpop_key.proof("POST", at_first.token_endpoint)
        )
        nonce = headers["DPoP-Nonce"]
        proof = at_first.dpop_key.proof("POST", at_first.token_endpoint, nonce=nonce)
        status, body, _ = await token_request(at_second, proof)
        assert status == 200, body
        status, body, _ = await token_request(at_first, proof)
        assert (status, body["error"]) == (400, "invalid_dpop_proof")
        assert "already been used" in body["error_description"]

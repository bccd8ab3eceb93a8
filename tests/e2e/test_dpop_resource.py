"""DPoP at a resource (SPEC §12, RFC 9449 §7) built with certbound.resource (the demo API), in front
of a real certbound, both over real TLS, in JWT and introspection modes: a DPoP-bound token with its
proof is accepted; every bad proof, a replayed one, another key, a bound token sent as Bearer, an
unbound one sent as DPoP, and a token bound to a certificate and a key without one of them are 401
with a DPoP challenge."""

from __future__ import annotations

import ast
import asyncio
import os
import sys
from asyncio.subprocess import PIPE
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from certbound.dpop import DPOP_SIGNING_ALGS, DPoPKey
from certbound.resource import certificate_thumbprint
from certbound.testing import CertboundTestServer, ReadyClient
from tests.dpop_kit import ProofKey, accepted_variants, refusals
from tests.e2e.test_resource_server import resource_server
from tests.helpers import access_log
from tests.readme import readme_code_blocks

ALGS = " ".join(DPOP_SIGNING_ALGS)
README_SECTION = "## DPoP: sender-constrained tokens without a client certificate (RFC 9449)"


async def call(
    url: str, client: ReadyClient, headers: dict[str, str] | list[tuple[str, str]]
) -> tuple[int, Any, str]:
    async with client.session() as http, http.get(url, headers=headers) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body, response.headers.get("WWW-Authenticate", "")


def assert_dpop_refusal(result: tuple[int, Any, str], error: str, says: str) -> None:
    status, body, challenge = result
    assert (status, body["error"]) == (401, error), body
    assert says in body["error_description"], body
    assert challenge.startswith(f'DPoP error="{error}", error_description="'), challenge
    assert challenge.endswith(f'algs="{ALGS}"'), challenge


@pytest.fixture(params=["jwt", "introspection"])
async def api(
    request: pytest.FixtureRequest, server: CertboundTestServer, tmp_path: Path
) -> AsyncIterator[str]:
    """GET /resource of the demo API, verifying JWTs or introspecting."""
    options: dict[str, Any] = {}
    if request.param == "introspection":
        introspector = await server.new_client()
        options = {
            "introspection_client_id": introspector.client_id,
            "introspection_client_secret": introspector.secret,
        }
    async with resource_server(server, tmp_path, **options) as url:
        yield url + "/resource"


async def test_a_dpop_bound_token_with_its_proof_is_accepted(server, api) -> None:
    client = await server.new_client()
    token = await client.fetch_token(dpop=True, scope="read")
    status, body, _ = await call(api, client, client.dpop_headers("GET", api, token))
    assert status == 200, body
    assert body == {"client_id": client.client_id, "scope": "read", "cnf": {"jkt": client.dpop_key.jkt}}


async def test_every_bad_proof_is_refused_and_every_twin_accepted(server, api) -> None:
    client = await server.new_client()
    key = ProofKey()
    token = await client.fetch_token(dpop=True)
    # Bound to the kit's key rather than the harness's: re-request with the kit's proof.
    status, answer = await client.post(
        "/token",
        {"grant_type": "client_credentials"},
        headers={"DPoP": key.proof("POST", client.token_endpoint)},
    )
    assert status == 200, answer
    token = answer["access_token"]
    authorization = {"Authorization": f"DPoP {token}"}
    wrong: list[str] = []
    for case in refusals(key, "GET", api, access_token=token):
        status, body, challenge = await call(
            api, client, [*authorization.items(), *(("DPoP", h) for h in case.headers)]
        )
        if (status, (body or {}).get("error")) != (401, "invalid_dpop_proof") or case.says not in body[
            "error_description"
        ]:
            wrong.append(f"{case.name}: {status} {body}")
        elif not challenge.startswith('DPoP error="invalid_dpop_proof"') or f'algs="{ALGS}"' not in challenge:
            wrong.append(f"{case.name}: challenge {challenge}")
    for name, make in accepted_variants(key, "GET", api).items():
        status, body, _ = await call(api, client, {**authorization, "DPoP": make(access_token=token)})
        if status != 200:
            wrong.append(f"twin {name}: {status} {body}")
    assert wrong == []


async def test_no_proof_with_the_dpop_scheme_is_refused(server, api) -> None:
    client = await server.new_client()
    token = await client.fetch_token(dpop=True)
    assert_dpop_refusal(
        await call(api, client, {"Authorization": f"DPoP {token}"}), "invalid_dpop_proof", "no DPoP header"
    )


async def test_a_replayed_proof_is_refused(server, api) -> None:
    client = await server.new_client()
    token = await client.fetch_token(dpop=True)
    headers = client.dpop_headers("GET", api, token)
    assert (await call(api, client, headers))[0] == 200
    assert_dpop_refusal(await call(api, client, headers), "invalid_dpop_proof", "already been used")
    assert (await call(api, client, client.dpop_headers("GET", api, token)))[0] == 200


async def test_a_proof_of_another_key_is_refused(server, api) -> None:
    client = await server.new_client()
    token = await client.fetch_token(dpop=True)
    thief = DPoPKey()
    headers = {"Authorization": f"DPoP {token}", "DPoP": thief.proof("GET", api, access_token=token)}
    assert_dpop_refusal(
        await call(api, client, headers), "invalid_token", "not the one the token is bound to"
    )


async def test_a_dpop_bound_token_sent_as_bearer_is_refused(server, api) -> None:
    client = await server.new_client()
    token = await client.fetch_token(dpop=True)
    headers = {
        "Authorization": f"Bearer {token}",
        "DPoP": client.dpop_key.proof("GET", api, access_token=token),
    }
    assert_dpop_refusal(await call(api, client, headers), "invalid_token", "send it with the DPoP scheme")


async def test_an_unbound_token_sent_as_dpop_is_refused(server, api) -> None:
    client = await server.new_client()
    token = await client.fetch_token()
    assert_dpop_refusal(
        await call(api, client, client.dpop_headers("GET", api, token)), "invalid_token", "not DPoP-bound"
    )
    # Twin: as Bearer it passes.
    assert (await call(api, client, {"Authorization": f"Bearer {token}"}))[0] == 200


async def test_a_token_bound_to_a_certificate_and_a_key_needs_both(server, api) -> None:
    both = await server.new_client("tls_client_auth")
    assert both.certificate is not None
    token = await both.fetch_token(dpop=True)
    status, body, _ = await call(api, both, both.dpop_headers("GET", api, token))
    assert status == 200, body
    assert body["cnf"] == {"x5t#S256": certificate_thumbprint(both.certificate), "jkt": both.dpop_key.jkt}
    without_certificate = await server.new_client()
    status, body, challenge = await call(api, without_certificate, both.dpop_headers("GET", api, token))
    assert (status, body["error"]) == (401, "invalid_token")
    assert "present it over mutual TLS" in body["error_description"]
    assert challenge.startswith("DPoP ")
    headers = {"Authorization": f"Bearer {token}"}
    assert_dpop_refusal(await call(api, both, headers), "invalid_token", "send it with the DPoP scheme")


async def test_the_readme_recipe_works_as_written(tmp_path: Path) -> None:
    """README's DPoP section: its Python client, against a server requiring nonces and the demo API."""
    (recipe,) = readme_code_blocks(README_SECTION, "python")
    async with CertboundTestServer(dpop_nonce=True) as server, resource_server(server, tmp_path) as api:
        client = await server.new_client("client_secret_basic")
        environment = {
            **os.environ,
            "ISSUER": server.issuer,
            "RESOURCE": api + "/resource",
            "CLIENT_ID": client.client_id,
            "CLIENT_SECRET": client.secret or "",
            "CA": str(server.server_ca_file),
        }
        with access_log() as lines:
            python = await asyncio.create_subprocess_exec(
                sys.executable, "-c", recipe, env=environment, stdout=PIPE, stderr=PIPE
            )
            stdout, stderr = await asyncio.wait_for(python.communicate(), timeout=60)
    assert python.returncode == 0, stderr.decode()
    answer = ast.literal_eval(stdout.decode())
    assert answer["client_id"] == client.client_id
    assert set(answer["cnf"]) == {"jkt"}
    # It met the nonce requirement (RFC 9449 §8) and retried with the nonce.
    assert [line["error"] for line in lines if line["path"] == "/token"] == ["use_dpop_nonce", None]

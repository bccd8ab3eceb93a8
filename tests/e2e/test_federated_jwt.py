"""federated_jwt end to end (SPEC §13): platform tokens minted by a test issuer served over real
HTTPS (OpenID discovery + JWKS, trustme), a real certbound and a real HTTPS client. Every rule and
refusal of §13 with its success twin; refusals name their check without echoing the token."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from certbound.authmethods import JWT_SPIFFE
from certbound.errors import InvalidClientMetadataError
from certbound.reasons import Reason
from certbound.testing import CertboundTestServer, TestClient
from tests.assertion_kit import compact, generate_key, hmac_compact
from tests.federation_kit import TestIssuer, expect_refusal, token_form
from tests.helpers import post_token

RULES = {"repository_id": "123", "ref": ["refs/heads/main", "refs/heads/release"], "workflow": "deploy-*"}
MATCHING = {"sub": "repo:org/app:ref:refs/heads/main", "repository_id": "123", "ref": "refs/heads/main"}


@pytest.fixture
async def server(issuer: TestIssuer, tmp_path: Path) -> AsyncIterator[CertboundTestServer]:
    federation = issuer.federation_file(tmp_path, issuer={"max_lifetime": 600})
    async with CertboundTestServer(federation=federation, **issuer.server_options()) as running:
        yield running


async def _client(
    server: CertboundTestServer, rules: dict[str, Any] | None = None, **extra: Any
) -> TestClient:
    return await server.add_client(
        "federated_jwt", federated_issuer="ci", federated_claims=rules or RULES, **extra
    )


def _claims(issuer: TestIssuer, server: CertboundTestServer, **claims: Any) -> dict[str, Any]:
    return issuer.claims(**{"aud": server.issuer, "workflow": "deploy-prod", **MATCHING, **claims})


async def _accepted(
    http: aiohttp.ClientSession, server: CertboundTestServer, client: TestClient, token: str
) -> dict[str, Any]:
    status, body = await post_token(http, server, token_form(client.client_id, token))
    assert status == 200, body
    return body


# --- claim rules --------------------------------------------------------------------------------


async def test_every_rule_matching_gets_a_token_for_that_client(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await _client(server)
    body = await _accepted(http, server, client, issuer.mint(_claims(issuer, server)))
    async with http.post(
        server.url + "/introspect",
        data={
            "token": body["access_token"],
            **token_form(client.client_id, issuer.mint(_claims(issuer, server))),
        },
        ssl=server.client_ssl_context(),
    ) as response:
        introspected = await response.json()
    assert introspected["active"] is True
    assert introspected["client_id"] == client.client_id


@pytest.mark.parametrize(
    ("claims", "claim"),
    [
        ({"repository_id": "1234"}, "repository_id"),  # exact: not a prefix match
        ({"repository_id": 123}, "repository_id"),  # a rule only matches a string claim
        ({"repository_id": None}, "repository_id"),  # missing
        ({"ref": "refs/heads/feature"}, "ref"),  # none of the list
        ({"ref": ["refs/heads/main"]}, "ref"),  # a list claim is no string
        ({"workflow": "build-prod"}, "workflow"),  # prefix
        ({"workflow": "deploy"}, "workflow"),  # the prefix must be followed... or be it, without '-'
    ],
)
async def test_a_rule_that_does_not_match_is_named_never_its_value(
    issuer: TestIssuer,
    server: CertboundTestServer,
    http: aiohttp.ClientSession,
    claims: dict[str, Any],
    claim: str,
) -> None:
    client = await _client(server)
    token = issuer.mint(_claims(issuer, server, **claims))
    body = await expect_refusal(
        http,
        server,
        token_form(client.client_id, token),
        f"claim {claim!r} did not match",
        Reason.CLAIM_MISMATCH,
    )
    for value in ("123", "refs/heads/main", "deploy-"):
        assert value not in body["error_description"]


@pytest.mark.parametrize(
    "claims", [{"ref": "refs/heads/release"}, {"workflow": "deploy-"}, {"workflow": "deploy-staging"}]
)
async def test_any_of_and_prefix_rules_match(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession, claims: dict[str, Any]
) -> None:
    client = await _client(server)
    await _accepted(http, server, client, issuer.mint(_claims(issuer, server, **claims)))


async def test_only_the_named_clients_rules_apply(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    """A token that satisfies client A's rules does not authenticate client B, whose rules it does
    not satisfy, even though both trust the same issuer."""
    app = await _client(server)
    other = await _client(server, {"repository_id": "999"})
    token = issuer.mint(_claims(issuer, server))
    await expect_refusal(
        http,
        server,
        token_form(other.client_id, token),
        "claim 'repository_id' did not match",
        Reason.CLAIM_MISMATCH,
    )
    await _accepted(http, server, app, token)


async def test_the_request_must_name_its_client(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    """The token's sub names the workload, not the client: without client_id, no client."""
    client = await _client(server, {"repository_id": "123"})
    token = issuer.mint(_claims(issuer, server, sub=client.client_id))
    form = token_form(client.client_id, token)
    del form["client_id"]
    await expect_refusal(
        http, server, form, "did not send client_id", Reason.METHOD_MISMATCH, disclosed=False
    )
    await _accepted(http, server, client, issuer.mint(_claims(issuer, server, sub=client.client_id)))


async def test_a_jwt_svid_assertion_type_is_another_method(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await _client(server)
    form = token_form(
        client.client_id, issuer.mint(_claims(issuer, server)), client_assertion_type=JWT_SPIFFE
    )
    # Not a workload refusal: the method is not established, so nothing is disclosed (no oracle).
    await expect_refusal(
        http, server, form, "registered for federated_jwt", Reason.METHOD_MISMATCH, disclosed=False
    )


# --- iss, aud, time -----------------------------------------------------------------------------


async def test_iss_must_be_the_configured_issuer(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await _client(server)
    token = issuer.mint(_claims(issuer, server, iss="https://token.actions.githubusercontent.com"))
    await expect_refusal(
        http, server, token_form(client.client_id, token), "not the issuer of ci", Reason.ISS_MISMATCH
    )


@pytest.mark.parametrize("aud", ["{issuer}", ["{issuer}"]])
async def test_aud_may_be_a_string_or_a_one_element_array(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession, aud: Any
) -> None:
    client = await _client(server)
    value = [server.issuer] if isinstance(aud, list) else server.issuer
    await _accepted(http, server, client, issuer.mint(_claims(issuer, server, aud=value)))


@pytest.mark.parametrize("aud", [["{issuer}", "https://other.example"], "https://other.example", [], None, 7])
async def test_aud_with_two_values_or_another_value_is_refused(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession, aud: Any
) -> None:
    client = await _client(server)
    if isinstance(aud, list):
        aud = [server.issuer if value == "{issuer}" else value for value in aud]
    token = issuer.mint(_claims(issuer, server, aud=aud))
    await expect_refusal(
        http,
        server,
        token_form(client.client_id, token),
        "aud must be the audience of issuer ci",
        Reason.AUD_MISMATCH,
    )


@pytest.mark.parametrize(
    ("times", "refusal"),
    [
        ({"exp": -120}, ("has expired", Reason.EXPIRED)),
        ({"exp": None}, ("has no exp", Reason.EXP_MISSING)),
        ({"iat": -100, "exp": 501}, ("lives longer than the 600 s", Reason.EXP_TOO_FAR)),
        ({"iat": None, "exp": 700}, ("lives longer than the 600 s", Reason.EXP_TOO_FAR)),
        ({"nbf": 120}, ("nbf is in the future", Reason.NOT_YET_VALID)),
        ({"iat": 120, "exp": 300}, ("iat is in the future", Reason.NOT_YET_VALID)),
        ({"iat": -100, "exp": 500}, None),  # exp - iat = 600: the limit itself
        ({"iat": None, "exp": 590}, None),  # without iat, counted from now
        ({"nbf": 30, "iat": 30, "exp": 300}, None),  # in the future within the 60 s skew
        ({"exp": -30}, None),  # expired within the skew
    ],
)
async def test_time_claims(
    issuer: TestIssuer,
    server: CertboundTestServer,
    http: aiohttp.ClientSession,
    times: dict[str, int | None],
    refusal: tuple[str, Reason] | None,
) -> None:
    """Times are offsets from now; None removes the claim. `refusal`: None when accepted."""
    client = await _client(server)
    now = issuer.claims()["iat"]
    claims = {name: None if offset is None else now + offset for name, offset in times.items()}
    token = issuer.mint(_claims(issuer, server, **claims))
    if refusal is None:
        await _accepted(http, server, client, token)
    else:
        await expect_refusal(http, server, token_form(client.client_id, token), *refusal)


# --- algorithms and keys --------------------------------------------------------------------------


async def test_alg_none_and_hmac_are_refused(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await _client(server)
    claims = _claims(issuer, server)
    unsigned = compact({"alg": "none"}, claims, b"")
    await expect_refusal(http, server, token_form(client.client_id, unsigned), "alg none", Reason.ALG_NONE)
    # An HMAC keyed by something public (the issuer's own public key) must not pass as its signature.
    secret = json.dumps(issuer.keys[0].as_dict(private=False)).encode()
    mac = hmac_compact(secret, "HS256", claims, kid=issuer.keys[0].kid)
    await expect_refusal(
        http, server, token_form(client.client_id, mac), "alg HS256 is not allowed", Reason.ALG_NOT_ALLOWED
    )


async def test_a_token_signed_by_another_key_is_refused(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await _client(server)
    forged = generate_key("ES256", kid=issuer.keys[0].kid)
    token = issuer.mint(_claims(issuer, server), key=forged)
    await expect_refusal(
        http, server, token_form(client.client_id, token), "signature is invalid", Reason.BAD_SIGNATURE
    )


async def test_an_unknown_kid_refetches_the_keys_once(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await _client(server)
    await _accepted(http, server, client, issuer.mint(_claims(issuer, server)))
    assert (issuer.requests["/.well-known/openid-configuration"], issuer.requests["/jwks"]) == (1, 1)
    # The issuer rotates: the first token with the new kid makes one refetch, and is accepted.
    rotated = issuer.rotate()
    await _accepted(http, server, client, issuer.mint(_claims(issuer, server), key=rotated))
    assert issuer.requests["/jwks"] == 2
    # A kid nobody publishes: refused; within the cooldown it costs no further fetch.
    stranger = generate_key("ES256", kid="never-published")
    for _ in range(3):
        token = issuer.mint(_claims(issuer, server), key=stranger)
        await expect_refusal(
            http,
            server,
            token_form(client.client_id, token),
            "matches none of the keys of issuer ci",
            Reason.KID_UNKNOWN,
        )
    assert issuer.requests["/jwks"] == 2
    assert issuer.requests["/.well-known/openid-configuration"] == 1


async def test_keys_that_cannot_be_fetched_are_refused_in_plain_words(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await _client(server)
    issuer.status = 503
    token = issuer.mint(_claims(issuer, server))
    await expect_refusal(
        http,
        server,
        token_form(client.client_id, token),
        "of issuer ci could not be fetched",
        Reason.ISSUER_KEYS_UNAVAILABLE,
    )


async def test_a_discovery_document_of_another_issuer_is_refused(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await _client(server)
    issuer.discovery_issuer = "https://attacker.example"
    token = issuer.mint(_claims(issuer, server))
    await expect_refusal(
        http,
        server,
        token_form(client.client_id, token),
        "names another issuer",
        Reason.ISSUER_KEYS_UNAVAILABLE,
    )
    assert "/jwks" not in issuer.requests


async def test_a_static_jwks_file_needs_no_fetch(
    issuer: TestIssuer, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """The air-gapped Kubernetes case: the cluster's keys copied into a file."""
    keys = issuer.write_jwks(tmp_path / "cluster-keys.json")
    federation = issuer.federation_file(tmp_path, issuer={"jwks_file": keys.name})
    async with CertboundTestServer(federation=federation) as server:  # no --allow-private-fetch
        client = await _client(server)
        await _accepted(http, server, client, issuer.mint(_claims(issuer, server)))
    assert issuer.requests == {}


# --- replay ---------------------------------------------------------------------------------------


async def test_a_jti_is_used_once_per_issuer(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    first, second = await _client(server), await _client(server)
    token = issuer.mint(_claims(issuer, server))
    await _accepted(http, server, first, token)
    await expect_refusal(
        http, server, token_form(first.client_id, token), "already been used", Reason.JTI_REPLAYED
    )
    # The same token for another client of that issuer is a replay too.
    await expect_refusal(
        http, server, token_form(second.client_id, token), "already been used", Reason.JTI_REPLAYED
    )
    await _accepted(http, server, second, issuer.mint(_claims(issuer, server)))


async def test_a_token_without_jti_is_refused_unless_reuse_is_allowed(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await _client(server)
    token = issuer.mint(_claims(issuer, server, jti=None))
    await expect_refusal(http, server, token_form(client.client_id, token), "has no jti", Reason.JTI_MISSING)


async def test_allow_reuse_accepts_the_same_token_until_it_expires(
    issuer: TestIssuer, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    """A Kubernetes projected token is presented again and again until the kubelet rotates it."""
    federation = issuer.federation_file(tmp_path, issuer={"allow_reuse": True})
    async with CertboundTestServer(federation=federation, **issuer.server_options()) as server:
        client = await _client(server)
        token = issuer.mint(_claims(issuer, server, jti=None))
        for _ in range(3):
            await _accepted(http, server, client, token)
        expired = issuer.mint(_claims(issuer, server, jti=None, exp=issuer.claims()["iat"] - 120))
        await expect_refusal(
            http, server, token_form(client.client_id, expired), "has expired", Reason.EXPIRED
        )


# --- configuration: registration, discovery, reload ----------------------------------------------


async def test_discovery_lists_the_methods_only_with_a_federation(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    async def methods(target: CertboundTestServer) -> dict[str, list[str]]:
        url = target.url + "/.well-known/oauth-authorization-server"
        async with http.get(url, ssl=target.client_ssl_context()) as response:
            metadata = await response.json()
        return {
            name: metadata[f"{name}_endpoint_auth_methods_supported"]
            for name in ("token", "introspection", "revocation")
        }

    for listed in (await methods(server)).values():
        assert {"federated_jwt", "spiffe_jwt"} <= set(listed)
    async with CertboundTestServer() as plain:
        for listed in (await methods(plain)).values():
            assert not {"federated_jwt", "spiffe_jwt"} & set(listed)


@pytest.mark.parametrize(
    "metadata",
    [
        {"token_endpoint_auth_method": "federated_jwt", "federated_issuer": "ci", "federated_claims": RULES},
        {"token_endpoint_auth_method": "spiffe_jwt", "spiffe_id": "spiffe://example.org/app"},
    ],
)
async def test_dynamic_registration_refuses_the_workload_methods(
    server: CertboundTestServer, http: aiohttp.ClientSession, metadata: dict[str, Any]
) -> None:
    async with http.post(
        server.url + "/register", json=metadata, ssl=server.client_ssl_context()
    ) as response:
        assert response.status == 400
        body = await response.json()
    assert body["error"] == "invalid_client_metadata"
    assert "registered by an administrator only" in body["error_description"]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"federated_issuer": "github", "federated_claims": RULES}, "'github' is not an issuer"),
        ({"federated_issuer": "ci"}, "federated_claims must be a JSON object"),
        ({"federated_issuer": "ci", "federated_claims": {"sub": "*"}}, "must not be '*' alone"),
        ({"federated_issuer": "ci", "federated_claims": {"sub": []}}, "must list 1 to"),
        ({"federated_issuer": "ci", "federated_claims": {"sub": ""}}, "non-empty string"),
        ({"federated_claims": RULES}, "federated_issuer must name an issuer"),
    ],
)
async def test_the_admin_registration_checks_the_metadata(
    server: CertboundTestServer, metadata: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidClientMetadataError, match=re.escape(message)):
        await server.add_client("federated_jwt", **metadata)


async def test_a_reload_takes_a_new_federation_file_all_or_nothing(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """SIGHUP's handler: a broken file changes nothing; a good one replaces the issuers."""
    client = await _client(server)
    federation = tmp_path / "federation.toml"
    good = federation.read_text()
    federation.write_text(good + "unknown_key = 1\n")
    assert server.running.reload() is False
    used = issuer.mint(_claims(issuer, server))
    await _accepted(http, server, client, used)

    federation.write_text(good.replace('name = "ci"', 'name = "renamed"'))
    assert server.running.reload() is True
    await expect_refusal(
        http,
        server,
        token_form(client.client_id, issuer.mint(_claims(issuer, server))),
        "federated_issuer 'ci' is not an issuer of the federation file",
        Reason.ISSUER_UNKNOWN,
    )
    renamed = await server.add_client("federated_jwt", federated_issuer="renamed", federated_claims=RULES)
    await _accepted(http, server, renamed, issuer.mint(_claims(issuer, server)))
    # Once per issuer, whatever its name: a token used before the rename stays used.
    await expect_refusal(
        http, server, token_form(renamed.client_id, used), "already been used", Reason.JTI_REPLAYED
    )


async def test_concurrent_requests_share_one_fetch(
    issuer: TestIssuer, server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    client = await _client(server)
    tokens = [issuer.mint(_claims(issuer, server)) for _ in range(8)]
    results = await asyncio.gather(
        *(post_token(http, server, token_form(client.client_id, t)) for t in tokens)
    )
    assert [status for status, _ in results] == [200] * 8
    assert issuer.requests["/jwks"] == 1

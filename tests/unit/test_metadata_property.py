"""Property test: the JSON bodies of /register, /register/{id} and /admin/clients are untrusted.
Whatever the bytes, parsing and validation (certbound.endpoints.http, ClientManager, every method's
metadata hook) store a client or raise the project's own error (an OAuthError), nothing else."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certbound.clientmeta import KNOWN_AUTH_METHODS
from certbound.config import Settings
from certbound.endpoints.http import parse_json_object
from certbound.errors import InvalidClientMetadataError, OAuthError
from certbound.management import ClientManager
from certbound.store.sqlite import SQLiteStore
from certbound.vault import Vault

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=20)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=10,
)
MEMBERS = st.sampled_from(
    [
        "token_endpoint_auth_method",
        "grant_types",
        "response_types",
        "scope",
        "redirect_uris",
        "jwks",
        "jwks_uri",
        "client_name",
        "client_name#fr",
        "client_uri",
        "contacts",
        "tls_client_auth_subject_dn",
        "tls_client_auth_san_dns",
        "tls_client_auth_san_ip",
        "token_endpoint_auth_signing_alg",
        "access_token_as_jwt",
        "tls_client_certificate_bound_access_tokens",
        "client_id",
        "software_statement",
    ]
)
VALUES = JSON_VALUES | st.sampled_from(sorted(KNOWN_AUTH_METHODS)) | st.sampled_from(["read", "read write"])
METADATA = st.dictionaries(MEMBERS | ANY_TEXT, VALUES, max_size=6)
BODIES = METADATA.map(lambda metadata: json.dumps(metadata).encode()) | st.binary(max_size=200)


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[asyncio.Runner, ClientManager]]:
    """One loop and store for all examples (hypothesis runs the test body many times)."""
    with asyncio.Runner() as runner:
        store = SQLiteStore(":memory:")
        runner.run(store.open())
        settings = Settings(scopes=("read", "write", "admin"), registration_scopes=("read", "write"))
        yield runner, ClientManager(store, Vault(bytes(32)), settings)
        runner.run(store.close())


async def _create_and_replace(manager: ClientManager, metadata: dict[str, Any], dynamic: bool) -> None:
    created = await manager.create(metadata, dynamic=dynamic)
    replaced = await manager.replace(created.client, metadata, dynamic=dynamic)
    assert replaced is not None
    assert replaced.client.metadata == created.client.metadata


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(BODIES, st.booleans())
def test_any_body_registers_or_is_an_oauth_error(
    running: tuple[asyncio.Runner, ClientManager], body: bytes, dynamic: bool
) -> None:
    runner, manager = running
    try:
        metadata = parse_json_object(body, error=InvalidClientMetadataError)
        runner.run(_create_and_replace(manager, metadata, dynamic))
    except OAuthError:
        return

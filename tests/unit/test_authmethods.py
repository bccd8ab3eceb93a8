"""The method facts registry (certbound.authmethods): one entry per implemented method, and every
other list (discovery, CLI choices, registration, TUI) derived from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from certbound.authmethods import (
    JWT_BEARER,
    JWT_SPIFFE,
    METHODS,
    MTLS_METHODS,
    SECRET_METHODS,
    Mechanism,
    advertised_methods,
)
from certbound.clientauth import AUTH_METHODS
from certbound.clientmeta import KNOWN_AUTH_METHODS, normalize_metadata
from certbound.config import Settings
from certbound.endpoints.metadata import build_metadata
from certbound.errors import InvalidClientMetadataError
from certbound.tui.fields import METHOD_FIELDS, offered_methods


def test_every_method_has_facts_and_an_implementation() -> None:
    assert list(AUTH_METHODS) == list(METHODS)
    for name, method in AUTH_METHODS.items():
        assert method.name == name == METHODS[name].name


def test_the_facts_of_each_method() -> None:
    assert {"client_secret_basic", "client_secret_post", "client_secret_jwt"} == SECRET_METHODS
    assert {"tls_client_auth", "self_signed_tls_client_auth"} == MTLS_METHODS
    assertions = {name: facts.assertion_type for name, facts in METHODS.items() if facts.assertion_type}
    assert assertions == {
        "client_secret_jwt": JWT_BEARER,
        "private_key_jwt": JWT_BEARER,
        "federated_jwt": JWT_BEARER,
        "spiffe_jwt": JWT_SPIFFE,
    }
    for name, facts in METHODS.items():
        assert (facts.assertion_type is not None) == (facts.mechanism is Mechanism.ASSERTION), name
        assert facts.federated == (not facts.self_registrable) == facts.needs_client_id, name
    own = [name for name, facts in METHODS.items() if facts.signs_own_assertions]
    assert own == ["client_secret_jwt", "private_key_jwt"]


def test_lists_derive_from_the_registry() -> None:
    assert set(METHODS) == KNOWN_AUTH_METHODS
    assert offered_methods() == list(METHODS)
    assert set(METHOD_FIELDS) == set(METHODS)
    assert set(advertised_methods(federation=True)) == set(METHODS)
    assert set(advertised_methods(federation=False)) == set(METHODS) - {"federated_jwt", "spiffe_jwt"}


@pytest.mark.parametrize("federation", [False, True])
def test_discovery_lists(federation: bool, tmp_path: Path) -> None:
    settings = Settings(federation=tmp_path / "federation.toml" if federation else None)
    metadata = build_metadata(settings)
    token = metadata["token_endpoint_auth_methods_supported"]
    assert token == sorted(advertised_methods(federation=federation))
    for endpoint in ("introspection", "revocation"):
        assert metadata[f"{endpoint}_endpoint_auth_methods_supported"] == [m for m in token if m != "none"]


@pytest.mark.parametrize(
    "metadata",
    [
        {
            "token_endpoint_auth_method": "federated_jwt",
            "federated_issuer": "ci",
            "federated_claims": {"a": "b"},
        },
        {"token_endpoint_auth_method": "spiffe_jwt", "spiffe_id": "spiffe://example.org/app"},
    ],
)
def test_only_an_administrator_registers_a_workload_method(metadata: dict[str, object]) -> None:
    settings = Settings()
    assert (
        normalize_metadata(metadata, settings)["token_endpoint_auth_method"]
        == metadata["token_endpoint_auth_method"]
    )
    with pytest.raises(InvalidClientMetadataError, match="registered by an administrator only"):
        normalize_metadata(metadata, settings, dynamic=True)

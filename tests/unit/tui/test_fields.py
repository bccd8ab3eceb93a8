"""The form's table of fields per method, and what each field turns typed text into."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from certbound.clientmeta import KNOWN_AUTH_METHODS
from certbound.jose import public_jwk
from certbound.pki.subject import SUBJECT_FIELDS
from certbound.tui.fields import (
    METHOD_FIELDS,
    FieldError,
    Kind,
    fields_for,
    offered_methods,
    subject_contribution,
    subject_of,
)


def field(member: str, method: str = "client_secret_basic"):  # type: ignore[no-untyped-def]
    return next(f for f in fields_for(method) if f.member == member)


def test_every_known_method_has_a_table_and_is_offered() -> None:
    assert set(offered_methods()) == KNOWN_AUTH_METHODS
    assert set(METHOD_FIELDS) >= KNOWN_AUTH_METHODS


def test_fields_follow_the_method() -> None:
    def members(method: str) -> set[str]:
        return {f.member for f in fields_for(method)}

    assert "client_secret" in members("client_secret_basic")
    assert "client_secret" not in members("none")
    assert {"jwks", "jwks_uri", "token_endpoint_auth_signing_alg"} <= members("private_key_jwt")
    assert {"jwks", "jwks_uri"} <= members("self_signed_tls_client_auth")
    assert "token_endpoint_auth_signing_alg" not in members("self_signed_tls_client_auth")
    assert "tls_client_auth_subject" in members("tls_client_auth")
    assert "jwks" not in members("tls_client_auth")
    assert {"federated_issuer", "federated_claims"} <= members("federated_jwt")
    assert "spiffe_id" in members("spiffe_jwt")
    for method in METHOD_FIELDS:
        assert "dpop_bound_access_tokens" in members(method)
    hmac = field("token_endpoint_auth_signing_alg", "client_secret_jwt").choices
    assert hmac == ("HS256", "HS384", "HS512")
    assert "HS256" not in field("token_endpoint_auth_signing_alg", "private_key_jwt").choices


def test_subject_field_shows_every_subject_members_errors() -> None:
    assert field("tls_client_auth_subject", "tls_client_auth").members == SUBJECT_FIELDS


@pytest.mark.parametrize(
    ("member", "raw", "expected"),
    [
        ("client_name", "  Billing ", {"client_name": "Billing"}),
        ("client_name", "", {"client_name": None}),
        ("client_secret", " spaced secret ", {"client_secret": " spaced secret "}),
        ("client_secret", "", {"client_secret": None}),
        (
            "grant_types",
            "client_credentials  refresh_token",
            {"grant_types": ["client_credentials", "refresh_token"]},
        ),
        ("grant_types", " ", {"grant_types": None}),
        ("access_token_as_jwt", "no", {"access_token_as_jwt": False}),
        ("access_token_as_jwt", "yes", {"access_token_as_jwt": True}),
        ("access_token_as_jwt", "", {"access_token_as_jwt": None}),
    ],
)
def test_contribution(member: str, raw: str, expected: dict[str, object]) -> None:
    assert field(member).contribution(raw) == expected


def test_key_sources_exclude_each_other(tmp_path: Path) -> None:
    jwks = {"keys": [public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    assert field("jwks", "private_key_jwt").contribution(str(path)) == {"jwks": jwks, "jwks_uri": None}
    assert field("jwks", "private_key_jwt").contribution("") == {}
    uri = field("jwks_uri", "private_key_jwt")
    assert uri.contribution("https://a.example/jwks") == {"jwks_uri": "https://a.example/jwks", "jwks": None}
    assert uri.contribution("") == {"jwks_uri": None}
    with pytest.raises(FieldError, match="cannot read"):
        field("jwks", "private_key_jwt").contribution(str(tmp_path / "missing.json"))


def test_json_field() -> None:
    claims = field("federated_claims", "federated_jwt")
    assert claims.kind is Kind.JSON
    assert claims.contribution('{"sub": "repo:org/*"}') == {"federated_claims": {"sub": "repo:org/*"}}
    with pytest.raises(FieldError, match="not JSON"):
        claims.contribution("{sub")
    assert claims.initial({"federated_claims": {"sub": ["a", "b"]}}) == '{"sub":["a","b"]}'


def test_initial_text_is_printable() -> None:
    view = {
        "client_name": "\x1b]0;x\x07",
        "grant_types": ["client_credentials"],
        "access_token_as_jwt": False,
        "client_secret": "never shown",
    }
    assert field("client_name").initial(view) == "\\x1b]0;x\\x07"
    assert field("grant_types").initial(view) == "client_credentials"
    assert field("access_token_as_jwt").initial(view) == "no"
    assert field("tls_client_certificate_bound_access_tokens").initial(view) == ""
    assert field("client_secret").initial(view) == ""


def test_subject_of_and_contribution() -> None:
    assert subject_of({}) == ("tls_client_auth_subject_dn", "")
    assert subject_of({"tls_client_auth_san_dns": "a.example"}) == ("tls_client_auth_san_dns", "a.example")
    assert subject_contribution("tls_client_auth_san_uri", " spiffe://x/y ") == {
        "tls_client_auth_subject_dn": None,
        "tls_client_auth_san_dns": None,
        "tls_client_auth_san_uri": "spiffe://x/y",
        "tls_client_auth_san_ip": None,
        "tls_client_auth_san_email": None,
        "spiffe_id": None,
    }

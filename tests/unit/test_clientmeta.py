"""normalize_metadata / merge_metadata: RFC 7591 §2 general rules, defaults, unknown members."""

from __future__ import annotations

from typing import Any

import pytest

from certbound.clientmeta import CLIENT_SIGNING_ALGS, merge_metadata, normalize_metadata
from certbound.config import Settings
from certbound.errors import InvalidClientMetadataError, InvalidRedirectUriError

SETTINGS = Settings(scopes=("read", "write", "admin"))


def normalize(**metadata: Any) -> dict[str, Any]:
    return normalize_metadata(metadata, SETTINGS)


def refused(error: type[Exception], field: str, **metadata: Any) -> None:
    with pytest.raises(error) as caught:
        normalize(**metadata)
    assert field in str(caught.value)


def test_defaults_filled() -> None:
    assert normalize() == {
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["client_credentials"],
        "scope": "read write admin",
        "access_token_as_jwt": True,
        "tls_client_certificate_bound_access_tokens": False,
    }


def test_none_client_defaults_to_no_grant() -> None:
    assert normalize(token_endpoint_auth_method="none")["grant_types"] == []


def test_none_client_with_client_credentials_is_refused() -> None:
    refused(
        InvalidClientMetadataError,
        "grant_types",
        token_endpoint_auth_method="none",
        grant_types=["client_credentials"],
    )


def test_unknown_members_kept_and_server_assigned_dropped() -> None:
    result = normalize(
        software_id="x",
        extension={"nested": [1, 2]},
        client_id="chosen",
        client_secret="s" * 40,
        registration_access_token="t",
        registration_client_uri="https://elsewhere",
        client_id_issued_at=1,
        client_secret_expires_at=2,
    )
    assert result["extension"] == {"nested": [1, 2]}
    assert result["software_id"] == "x"
    for name in ("client_id", "client_secret", "registration_access_token", "client_id_issued_at"):
        assert name not in result


def test_software_statement_is_ignored() -> None:
    assert "software_statement" not in normalize(software_statement="eyJhbGciOiJub25lIn0.e30.")


def test_null_members_are_omitted() -> None:
    result = normalize(client_name=None, jwks=None, scope=None)
    assert "client_name" not in result
    assert "jwks" not in result
    assert result["scope"] == "read write admin"


@pytest.mark.parametrize("method", ["private_key_bogus", "", 3])
def test_unknown_method_refused(method: object) -> None:
    refused(InvalidClientMetadataError, "token_endpoint_auth_method", token_endpoint_auth_method=method)


def test_scope_subset_deduplicated() -> None:
    assert normalize(scope="write read write")["scope"] == "write read"


@pytest.mark.parametrize("scope", ["read delete", ["read"], 5])
def test_scope_outside_server_or_wrong_type_refused(scope: object) -> None:
    refused(InvalidClientMetadataError, "scope", scope=scope)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("grant_types", "client_credentials"),
        ("grant_types", ["password"]),
        ("grant_types", [""]),
        ("response_types", ["code"]),
        ("response_types", ["id_token"]),
        ("contacts", "admin@example.com"),
        ("contacts", [1]),
        ("client_name", 5),
        ("client_name", ""),
        ("client_name#fr", 5),
        ("client_uri", "ftp://example.com/"),
        ("logo_uri", "not a url"),
        ("tos_uri#de", "https://example.com/#frag"),
        ("policy_uri", ["https://example.com/"]),
        ("software_version", 2),
        ("access_token_as_jwt", "false"),
        ("tls_client_certificate_bound_access_tokens", 1),
        ("dpop_bound_access_tokens", "true"),
        ("dpop_bound_access_tokens", 1),
    ],
)
def test_member_types(name: str, value: object) -> None:
    refused(InvalidClientMetadataError, name, **{name: value})


def test_language_tagged_and_descriptive_members_accepted() -> None:
    result = normalize(
        client_name="Example",
        **{"client_name#ja-Jpan-JP": "クライアント名", "logo_uri#fr": "https://example.com/fr.png"},
        client_uri="https://example.com/",
        contacts=["ops@example.com"],
    )
    assert result["client_name#ja-Jpan-JP"] == "クライアント名"
    assert result["contacts"] == ["ops@example.com"]


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.com/cb",
        "http://127.0.0.1:8080/cb",
        "http://[::1]/cb",
        "http://localhost/cb",
        "com.example.app:/oauth2redirect",
    ],
)
def test_redirect_uris_accepted(uri: str) -> None:
    assert normalize(redirect_uris=[uri, uri])["redirect_uris"] == [uri]


@pytest.mark.parametrize(
    "value",
    [
        "https://app.example.com/cb",
        ["/relative/cb"],
        ["https://app.example.com/cb#fragment"],
        ["http://app.example.com/cb"],
        ["https:///no-host"],
        ["https://app.example.com/a b"],
        [""],
        [7],
    ],
)
def test_redirect_uris_refused(value: object) -> None:
    refused(InvalidRedirectUriError, "redirect_uris", redirect_uris=value)


def test_jwks_and_jwks_uri_together_refused() -> None:
    refused(
        InvalidClientMetadataError,
        "jwks",
        jwks={"keys": []},
        jwks_uri="https://client.example.com/jwks",
    )


@pytest.mark.parametrize("jwks", [[], {"keys": {}}, {"kty": "EC"}, "keys"])
def test_jwks_must_be_a_jwk_set(jwks: object) -> None:
    refused(InvalidClientMetadataError, "jwks", jwks=jwks)


@pytest.mark.parametrize(
    "jwks",
    [
        {"keys": [{"kty": "EC", "crv": "P-256"}]},
        {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
        {"keys": ["not a key"]},
        {"keys": []},
    ],
    ids=["truncated-ec", "symmetric", "not-an-object", "empty"],
)
def test_keys_must_parse_for_any_method(jwks: object) -> None:
    refused(InvalidClientMetadataError, "jwks", jwks=jwks)


def test_parsable_public_keys_accepted() -> None:
    jwk = {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    }
    assert normalize(jwks={"keys": [jwk]})["jwks"] == {"keys": [jwk]}


@pytest.mark.parametrize("uri", ["http://client.example.com/jwks", "jwks.json", 5, "https://10.0.0.1/jwks"])
def test_jwks_uri_must_be_https(uri: object) -> None:
    refused(InvalidClientMetadataError, "jwks_uri", jwks_uri=uri)


@pytest.mark.parametrize("alg", ["none", "HS1", "RS128", "es256", 256])
def test_unsupported_signing_alg_refused(alg: object) -> None:
    refused(
        InvalidClientMetadataError, "token_endpoint_auth_signing_alg", token_endpoint_auth_signing_alg=alg
    )


def test_supported_signing_algs_listed_without_none() -> None:
    assert "none" not in CLIENT_SIGNING_ALGS
    assert {"HS256", "RS256", "PS256", "ES256", "EdDSA"} <= set(CLIENT_SIGNING_ALGS)


def test_binding_flag_kept_when_given() -> None:
    assert normalize(tls_client_certificate_bound_access_tokens=True)[
        "tls_client_certificate_bound_access_tokens"
    ]


def test_dpop_binding_flag_kept_when_given_and_omitted_otherwise() -> None:
    # RFC 9449 §5.2: omitted means false; the member stays omitted rather than filled.
    assert normalize(dpop_bound_access_tokens=True)["dpop_bound_access_tokens"] is True
    assert normalize(dpop_bound_access_tokens=False)["dpop_bound_access_tokens"] is False
    assert "dpop_bound_access_tokens" not in normalize()


def test_merge_patch_replaces_deletes_and_merges_objects() -> None:
    current = {"client_name": "a", "scope": "read", "extension": {"x": 1, "y": 2}}
    merged = merge_metadata(current, {"client_name": None, "scope": "write", "extension": {"y": None}})
    assert merged == {"scope": "write", "extension": {"x": 1}}
    assert current["extension"] == {"x": 1, "y": 2}


def test_merge_that_changes_the_method_recomputes_method_defaults() -> None:
    stored = normalize()
    merged = normalize_metadata(merge_metadata(stored, {"token_endpoint_auth_method": "none"}), SETTINGS)
    assert merged["grant_types"] == []
    assert merged["scope"] == stored["scope"]


def test_merge_keeps_method_defaults_when_the_method_stays() -> None:
    stored = normalize(grant_types=["client_credentials"], tls_client_certificate_bound_access_tokens=True)
    merged = merge_metadata(stored, {"client_name": "renamed"})
    assert merged["tls_client_certificate_bound_access_tokens"] is True


# Issue 9 finding 10: displayed members hold nothing that acts on a terminal or reorders text
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_name", "evil\x1b]0;owned\x07"),
        ("client_name", "\x9b31mred"),  # C1 CSI
        ("client_name", "line\nbreak"),
        ("client_name", "Bank \u202ecilbup"),  # right-to-left override
        ("client_name#fr", "isolé\u2066x\u2069"),
        ("client_name", "para\u2029graph"),
        ("client_name", "lone \ud800 surrogate"),
        ("software_id", "id\x00"),
        ("software_version", "1.0\x7f"),
        ("client_uri", "https://app.example/\x1b[2J"),
        ("contacts", ["ops@example.com", "x\x1b[8m@example.com"]),
    ],
)
def test_displayed_members_refuse_control_and_bidi_characters(field: str, value: Any) -> None:
    with pytest.raises(InvalidClientMetadataError, match=r"must not contain control .*\(U\+[0-9A-F]{4}\)"):
        normalize_metadata({field: value}, SETTINGS)


@pytest.mark.parametrize(
    "name",
    [
        "Billing \U0001f468\u200d\U0001f4bb",  # an emoji ZWJ sequence
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian with ZWNJ
        "ACME \u200f\u05e9\u05dc\u05d5\u05dd\u200e",  # right-to-left and left-to-right marks
        "Café\u00a0Zürich",
    ],
)
def test_displayed_members_keep_real_world_text(name: str) -> None:
    assert normalize(client_name=name)["client_name"] == name


def test_redirect_uris_refuse_invisible_characters() -> None:
    for uri in ("https://app.example/cb\x1b", "https://app.example/\u202ecb", "https://app.example/\u00a0"):
        refused(InvalidRedirectUriError, "redirect_uris", redirect_uris=[uri])


def test_unknown_members_are_kept_as_sent() -> None:
    # RFC 7591 §2: not ours to judge; every output escapes them (certbound.cli.terminal).
    assert normalize(x_note="\x1b[31m")["x_note"] == "\x1b[31m"

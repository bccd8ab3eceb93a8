"""The --federation file (SPEC §13): defaults, relative paths, and every bad value refused with a
ConfigError that names the file and the entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from certbound.errors import ConfigError
from certbound.federation import FederationConfig, load_federation
from certbound.federation.config import DEFAULT_MAX_LIFETIME, DEFAULT_MAX_STALENESS
from tests.assertion_kit import generate_key, public_jwks

AUDIENCE = "https://as.example"


def _load(tmp_path: Path, text: str, *, allow_private: bool = False) -> FederationConfig:
    path = tmp_path / "federation.toml"
    path.write_text(text)
    return load_federation(path, audience=AUDIENCE, allow_private=allow_private)


def _bundle(directory: Path) -> Path:
    key = generate_key("ES256", kid="svid-1")
    path = directory / "bundle.json"
    path.write_text(json.dumps({"keys": [{**key.as_dict(private=False), "use": "jwt-svid"}]}))
    return path


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    keys = tmp_path / "keys" / "cluster.json"
    keys.parent.mkdir()
    keys.write_text(json.dumps(public_jwks(generate_key("ES256", kid="k"))))
    _bundle(tmp_path)
    config = _load(
        tmp_path,
        """
        [[issuer]]
        name = "github"
        issuer = "https://token.actions.githubusercontent.com"

        [[issuer]]
        name = "cluster"
        issuer = "https://kubernetes.default.svc"
        jwks_file = "keys/cluster.json"
        audience = "https://certbound.example"
        max_lifetime = 7200
        allow_reuse = true

        [[spiffe]]
        trust_domain = "example.org"
        bundle_file = "bundle.json"
        """,
    )
    github = config.issuers["github"]
    assert github.audience == AUDIENCE
    assert (github.max_lifetime, github.allow_reuse, github.jwks, github.jwks_uri) == (
        DEFAULT_MAX_LIFETIME,
        False,
        None,
        None,
    )
    assert (
        github.discovery_uri == "https://token.actions.githubusercontent.com/.well-known/openid-configuration"
    )
    cluster = config.issuers["cluster"]
    assert (cluster.audience, cluster.max_lifetime, cluster.allow_reuse) == (
        "https://certbound.example",
        7200,
        True,
    )
    assert cluster.jwks is not None
    assert [key.kid for key in cluster.jwks] == ["k"]
    domain = config.trust_domains["example.org"]
    assert (domain.max_staleness, domain.max_lifetime) == (DEFAULT_MAX_STALENESS, DEFAULT_MAX_LIFETIME)
    assert domain.bundle is not None
    assert [key.kid for key in domain.bundle.jwt_keys] == ["svid-1"]


def test_an_empty_file_trusts_nothing(tmp_path: Path) -> None:
    config = _load(tmp_path, "")
    assert (dict(config.issuers), dict(config.trust_domains)) == ({}, {})


ISSUER = '[[issuer]]\nname = "ci"\nissuer = "https://ci.example"\n'
SPIFFE = '[[spiffe]]\ntrust_domain = "example.org"\nbundle_url = "https://spire.example/bundle"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 1\n", "unknown key colour"),
        ("issuer = 1\n", "issuer must be an array of tables"),
        (ISSUER + "colour = 1\n", "[[issuer]] 1: unknown key colour"),
        ('[[issuer]]\nissuer = "https://ci.example"\n', "name must be a non-empty string"),
        ('[[issuer]]\nname = "c i"\nissuer = "https://ci.example"\n', "name must be 1 to 64"),
        ('[[issuer]]\nname = "ci"\n', "issuer must be a non-empty string"),
        ('[[issuer]]\nname = "ci"\nissuer = "http://ci.example"\n', "issuer must be an https URL"),
        (
            '[[issuer]]\nname = "ci"\nissuer = "https://10.0.0.1"\n',
            "issuer host 10.0.0.1 is not a public address",
        ),
        (ISSUER + 'jwks_uri = "http://ci.example/keys"\n', "jwks_uri must be an https URL"),
        (ISSUER + 'jwks_uri = "https://ci.example/k"\njwks_file = "k.json"\n', "not both"),
        (ISSUER + 'jwks_file = "missing.json"\n', "cannot read jwks_file"),
        (ISSUER + "max_lifetime = 0\n", "max_lifetime must be a whole number of seconds >= 1"),
        (ISSUER + 'max_lifetime = "1h"\n', "max_lifetime must be a whole number"),
        (ISSUER + "allow_reuse = 1\n", "allow_reuse must be true or false"),
        (ISSUER + 'audience = ""\n', "audience must be a non-empty string"),
        (ISSUER + ISSUER, "two entries for issuer 'https://ci.example'"),
        (ISSUER + ISSUER.replace('"ci"', '"other"', 1), "two entries for issuer"),
        (ISSUER + ISSUER.replace("ci.example", "cd.example"), "two entries for name 'ci'"),
        (SPIFFE + "colour = 1\n", "[[spiffe]] 1: unknown key colour"),
        ('[[spiffe]]\ntrust_domain = "Example.org"\nbundle_url = "https://x.example/b"\n', "trust_domain:"),
        ('[[spiffe]]\ntrust_domain = "example.org"\n', "exactly one of bundle_file and bundle_url"),
        (SPIFFE + 'bundle_file = "b.json"\n', "exactly one of bundle_file and bundle_url"),
        (SPIFFE.replace("https://spire", "http://spire"), "bundle_url must be an https URL"),
        (SPIFFE + "max_staleness = -5\n", "max_staleness must be a whole number"),
        (SPIFFE + SPIFFE, "two entries for trust_domain 'example.org'"),
        ("[[issuer\n", "cannot read federation file"),
    ],
)
def test_bad_configuration_names_the_file_and_entry(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, text)
    assert message in str(refused.value)
    assert "federation.toml" in str(refused.value)


def test_private_addresses_need_allow_private_fetch(tmp_path: Path) -> None:
    text = '[[issuer]]\nname = "ci"\nissuer = "https://127.0.0.1:8443"\n'
    with pytest.raises(ConfigError, match="not a public address"):
        _load(tmp_path, text)
    assert _load(tmp_path, text, allow_private=True).issuers["ci"].issuer == "https://127.0.0.1:8443"


def test_a_non_url_issuer_is_fine_with_static_keys(tmp_path: Path) -> None:
    """Kubernetes' legacy issuer is not a URL; with a jwks_file nothing is fetched from it."""
    (tmp_path / "k.json").write_text(json.dumps(public_jwks(generate_key("ES256", kid="k"))))
    config = _load(
        tmp_path, '[[issuer]]\nname = "k8s"\nissuer = "kubernetes/serviceaccount"\njwks_file = "k.json"\n'
    )
    assert config.issuers["k8s"].issuer == "kubernetes/serviceaccount"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"keys": []}', "holds no keys"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "private or symmetric"),
    ],
)
def test_a_bad_jwks_file_is_bad_configuration(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "k.json").write_text(content)
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, ISSUER + 'jwks_file = "k.json"\n')


def test_a_bad_bundle_file_is_bad_configuration(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text('{"keys": "none"}')
    with pytest.raises(ConfigError, match="a SPIFFE bundle is a JWK Set"):
        _load(tmp_path, '[[spiffe]]\ntrust_domain = "example.org"\nbundle_file = "b.json"\n')


def test_a_missing_file_is_bad_configuration(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="federation file not found"):
        load_federation(tmp_path / "nope.toml", audience=AUDIENCE, allow_private=False)

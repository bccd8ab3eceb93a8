from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from certbound.config import load_settings
from certbound.errors import ConfigError


def test_defaults() -> None:
    settings = load_settings({}, {})
    assert settings.port == 8443
    assert settings.issuer == "https://localhost:8443"
    assert settings.assertion_audience == "strict"
    assert settings.token_lifetime == 600
    assert settings.sqlite_path == "data/certbound.db"


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('port = 1111\nclock_skew = 5\ntoken_lifetime = 42\nclient_ca = ["a.pem", "b.pem"]\n')
    env = {"CERTBOUND_PORT": "2222", "CERTBOUND_CLOCK_SKEW": "7"}
    settings = load_settings({"port": "3333"}, env, config)
    assert settings.port == 3333
    assert settings.clock_skew == 7
    assert settings.token_lifetime == 42
    assert settings.client_ca == (Path("a.pem"), Path("b.pem"))


def test_env_lists_and_booleans() -> None:
    env = {
        "CERTBOUND_TRUSTED_PROXY": "10.0.0.0/8:192.168.1.1/32",
        "CERTBOUND_ALLOW_PRIVATE_FETCH": "true",
    }
    settings = load_settings({}, env)
    assert settings.trusted_proxy == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.1/32"),
    )
    assert settings.allow_private_fetch is True
    assert load_settings({}, {"CERTBOUND_ALLOW_PRIVATE_FETCH": "0"}).allow_private_fetch is False


def test_config_file_named_by_env(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('scopes = "a b c"\n')
    assert load_settings({}, {"CERTBOUND_CONFIG": str(config)}).scopes == ("a", "b", "c")


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"assertion_audience": "loose"}, {}, "--assertion-audience"),
        ({"trusted_proxy": ["not-a-cidr"]}, {}, "--trusted-proxy"),
        ({"port": "70000"}, {}, "--port"),
        ({}, {"CERTBOUND_TOKEN_LIFETIME": "0"}, "CERTBOUND_TOKEN_LIFETIME"),
        ({"issuer": "http://localhost"}, {}, "--issuer"),
        ({"registration": "token"}, {}, "--registration-token"),
        ({"tls_cert": "a.pem"}, {}, "--tls-key"),
        ({}, {"CERTBOUND_ALLOW_PRIVATE_FETCH": "maybe"}, "CERTBOUND_ALLOW_PRIVATE_FETCH"),
    ],
)
def test_bad_values_are_config_errors(flags: dict[str, object], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(flags, env)


def test_unknown_toml_key(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match=r"unknown option.*prot"):
        load_settings({}, {}, config)


def test_missing_and_broken_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings({}, {}, tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("port = = 1")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({}, {}, broken)


def test_mtls_base_url() -> None:
    settings = load_settings({"mtls_port": "9444", "issuer": "https://as.example.com:8443/tenant"}, {})
    assert settings.mtls_base_url == "https://as.example.com:9444/tenant"
    assert load_settings({}, {}).mtls_base_url is None


def test_connection_bounds_defaults_and_overrides() -> None:
    defaults = load_settings({}, {})
    assert (defaults.request_timeout, defaults.max_connections) == (30, 1024)
    assert (defaults.max_connections_per_ip, defaults.max_handshakes_per_ip) == (256, 64)
    # Issue 15's 1,000 idle keep-alive connections from one load generator.
    raised = load_settings({"max_connections_per_ip": "1000"}, {"CERTBOUND_MAX_CONNECTIONS": "2000"})
    assert (raised.max_connections_per_ip, raised.max_connections) == (1000, 2000)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"max_connections": "0"}, "--max-connections"),
        ({"max_connections_per_ip": "-1"}, "--max-connections-per-ip"),
        ({"max_handshakes_per_ip": "many"}, "--max-handshakes-per-ip"),
        ({"request_timeout": "0"}, "--request-timeout"),
    ],
)
def test_connection_bounds_must_be_positive(flags: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(flags, {})

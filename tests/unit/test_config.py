from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from certbound.config import (
    OPTIONS,
    AdminTarget,
    Settings,
    build_settings,
    load_admin_target,
    load_settings,
    parse_options,
)
from certbound.errors import ConfigError


def test_defaults() -> None:
    settings = load_settings({}, {})
    assert settings.port == 8443
    assert settings.issuer == "https://localhost:8443"
    assert settings.assertion_audience == "strict"
    assert settings.token_lifetime == 600
    assert settings.sqlite_path == "data/certbound.db"
    # SPEC §3, secure by default: nobody registers a client the operator did not allow.
    assert settings.registration == "closed"
    assert Settings().registration == "closed"
    assert settings.dynamic_client_scopes == settings.scopes


def test_registration_scopes_bound_dynamic_clients_within_scopes(tmp_path: Path) -> None:
    settings = load_settings({"scopes": "read write admin", "registration_scopes": "read"}, {})
    assert settings.dynamic_client_scopes == ("read",)
    config = tmp_path / "c.toml"
    config.write_text('scopes = "a b"\nregistration_scopes = "b"\n')
    assert load_settings({}, {}, config).dynamic_client_scopes == ("b",)
    assert load_settings({}, {"CERTBOUND_REGISTRATION_SCOPES": "write"}).dynamic_client_scopes == ("write",)
    with pytest.raises(ConfigError, match="--registration-scopes names scopes not in --scopes: admin"):
        load_settings({"registration_scopes": "read admin"}, {})
    with pytest.raises(ConfigError, match="--registration-scopes"):
        load_settings({"registration_scopes": " "}, {})


def test_tokens_from_files_keep_them_off_the_command_line(tmp_path: Path) -> None:
    admin, registration = tmp_path / "admin.token", tmp_path / "registration.token"
    admin.write_text("admin-token-from-a-file-0123456789abcdef\n")
    registration.write_text("registration token\r\n")
    settings = load_settings(
        {"admin_token_file": str(admin), "registration": "token"},
        {"CERTBOUND_REGISTRATION_TOKEN_FILE": str(registration)},
    )
    assert settings.admin_token == "admin-token-from-a-file-0123456789abcdef"
    assert settings.registration_token == "registration token"
    env = {"CERTBOUND_ADMIN_TOKEN": "from-the-environment"}
    assert load_settings({}, env).admin_token == "from-the-environment"


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read --admin-token file"), ("\n", "is empty"), (b"\xff\xfe", "not UTF-8")],
)
def test_unusable_token_files(tmp_path: Path, content: str | bytes | None, message: str) -> None:
    path = tmp_path / "admin.token"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_settings({"admin_token_file": str(path)}, {})


def test_a_token_and_its_file_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    path.write_text("x" * 40)
    with pytest.raises(ConfigError, match="give --admin-token or --admin-token-file, not both"):
        load_settings({"admin_token_file": str(path)}, {"CERTBOUND_ADMIN_TOKEN": "y" * 40})


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


PIN_A, PIN_B = "ab" * 32, "CD" * 32


def test_proxy_certificate_pins_from_flags_env_and_file(tmp_path: Path) -> None:
    colons = ":".join([PIN_B[i : i + 2] for i in range(0, 64, 2)])
    flags = {"trusted_proxy": ["10.0.0.5"], "trusted_proxy_cert_sha256": [PIN_A, colons]}
    assert load_settings(flags, {}).trusted_proxy_cert_sha256 == (bytes.fromhex(PIN_A), bytes.fromhex(PIN_B))
    env = {"CERTBOUND_TRUSTED_PROXY": "10.0.0.5", "CERTBOUND_TRUSTED_PROXY_CERT_SHA256": f"{PIN_A}:{PIN_B}"}
    assert len(load_settings({}, env).trusted_proxy_cert_sha256) == 2
    config = tmp_path / "c.toml"
    config.write_text(f'trusted_proxy = ["10.0.0.5"]\ntrusted_proxy_cert_sha256 = ["{colons}"]\n')
    assert load_settings({}, {}, config).trusted_proxy_cert_sha256 == (bytes.fromhex(PIN_B),)


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"trusted_proxy": ["10.0.0.5"], "trusted_proxy_cert_sha256": ["abcd"]}, {}, "64 hex digits"),
        # In CERTBOUND_* a colon separates repeated values: a colon-separated fingerprint is refused.
        ({}, {"CERTBOUND_TRUSTED_PROXY_CERT_SHA256": "AB:CD"}, "CERTBOUND_TRUSTED_PROXY_CERT_SHA256"),
        ({"trusted_proxy_cert_sha256": [PIN_A]}, {}, "needs --trusted-proxy"),
    ],
)
def test_bad_proxy_certificate_pins(flags: dict[str, object], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(flags, env)


def test_option_choices_come_from_the_parser() -> None:
    by_name = {option.name: option for option in OPTIONS}
    assert by_name["registration"].choices == ("open", "token", "closed")
    assert by_name["port"].choices is None


def test_parse_options_takes_flag_text_or_parsed_values() -> None:
    values = parse_options(
        {
            "port": "0",
            "token_lifetime": 30,
            "scopes": ["read", "admin"],
            "client_ca": Path("ca.pem"),
            "trusted_proxy": (ipaddress.ip_network("10.0.0.0/8"), "192.168.0.0/16"),
            "allow_private_fetch": "true",
        },
        source="options",
    )
    assert values == {
        "port": 0,
        "token_lifetime": 30,
        "scopes": ("read", "admin"),
        "client_ca": (Path("ca.pem"),),
        "trusted_proxy": (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.168.0.0/16")),
        "allow_private_fetch": True,
    }
    settings = build_settings(values)
    assert (settings.port, settings.issuer, settings.scopes) == (0, "https://localhost:0", ("read", "admin"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"tokn_lifetime": 1},
            r"^options: unknown option 'tokn_lifetime' \(did you mean 'token_lifetime'\?\)$",
        ),
        ({"colour": 1}, r"^options: unknown option 'colour'$"),
        ({"token_lifetime": True}, r"^invalid value for options\['token_lifetime'\]: expected an integer$"),
        ({"scopes": ["read write"]}, r"options\['scopes'\]: invalid scope token 'read write'"),
        ({"issuer": "http://as.example"}, r"options\['issuer'\]: must be an https URL"),
        ({"client_ca": 3}, r"options\['client_ca'\]: expected a string"),
    ],
)
def test_parse_options_refuses_by_name(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_options(options, source="options")


def test_build_settings_checks_options_together() -> None:
    with pytest.raises(ConfigError, match="--registration-token"):
        build_settings({"registration": "token"})
    with pytest.raises(ConfigError, match="go together"):
        build_settings({"tls_cert": Path("a.pem")})


def test_the_admin_api_target_comes_from_flags_or_the_environment() -> None:
    settings = load_settings({"admin_token": "T"}, {})
    assert load_admin_target(settings, environ={}) is None
    from_env = load_admin_target(
        settings, environ={"CERTBOUND_URL": "https://as.example", "CERTBOUND_CACERT": "ca.pem"}
    )
    assert from_env == AdminTarget("https://as.example", "T", Path("ca.pem"))
    from_flags = load_admin_target(
        settings,
        url="https://flag.example",
        cacert=Path("flag-ca.pem"),
        environ={"CERTBOUND_URL": "https://as.example", "CERTBOUND_CACERT": "ca.pem"},
    )
    assert from_flags == AdminTarget("https://flag.example", "T", Path("flag-ca.pem"))


def test_an_admin_api_url_needs_a_token() -> None:
    with pytest.raises(ConfigError, match=r"needs --admin-token \(or CERTBOUND_ADMIN_TOKEN\)"):
        load_admin_target(load_settings({}, {}), environ={"CERTBOUND_URL": "https://as.example"})


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

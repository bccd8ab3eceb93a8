"""Advice on valid but doubtful registrations (certbound.clientadvice): secrets that Authlib and
requests mangle in HTTP Basic, short chosen secrets, subject DNs pasted in ASN.1 order."""

from __future__ import annotations

import logging

import pytest

from certbound.clientadvice import client_warnings, log_client_warnings

BASIC = {"token_endpoint_auth_method": "client_secret_basic"}
LONG_SAFE = "safe-secret_0123456789.abcdefghijkl~"


def test_nothing_to_say_about_a_long_url_safe_secret_or_a_generated_one() -> None:
    assert client_warnings(BASIC, LONG_SAFE) == []
    assert client_warnings(BASIC, None) == []


@pytest.mark.parametrize(
    ("secret", "named"),
    [
        (LONG_SAFE + "+", "'+'"),
        (LONG_SAFE + "%", "'%'"),
        (LONG_SAFE + ":", "':'"),
        (LONG_SAFE + " ", "space"),
        (LONG_SAFE + "é", "'é'"),
        (LONG_SAFE + ": +", "space '+' ':'"),
    ],
)
def test_a_basic_secret_with_characters_sent_unencoded_is_named(secret: str, named: str) -> None:
    (warning,) = client_warnings(BASIC, secret)
    assert warning.startswith(f"the chosen client_secret contains {named}: Authlib and requests")


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_jwt"])
def test_other_secret_methods_do_not_send_it_in_basic(method: str) -> None:
    assert client_warnings({"token_endpoint_auth_method": method}, LONG_SAFE + ": +%é") == []


def test_a_short_chosen_secret() -> None:
    assert client_warnings(BASIC, "12345678") == ["the chosen client_secret has fewer than 32 characters"]


def test_a_reversed_subject_dn_and_its_twin() -> None:
    (warning,) = client_warnings({"tls_client_auth_subject_dn": "C=US,O=Acme,CN=svc"}, None)
    assert "openssl x509 -noout -subject -nameopt RFC2253" in warning
    assert client_warnings({"tls_client_auth_subject_dn": "CN=svc,O=Acme,C=US"}, None) == []


def test_each_warning_is_one_log_line_naming_the_client(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="certbound.clients"):
        log_client_warnings("svc", {**BASIC, "tls_client_auth_subject_dn": "DC=com,CN=svc"}, "short+12")
    assert [record.getMessage().split(":")[0] for record in caplog.records] == ["client svc"] * 3

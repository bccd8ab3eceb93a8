"""certbound.dpop.urls: the htu comparison of RFC 9449 §4.3 (RFC 3986 §6.2.2 and §6.2.3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certbound.dpop.urls import normalized_htu, strip_query

BASE = "https://as.example:8443/token"


@pytest.mark.parametrize(
    "same",
    [
        "https://as.example:8443/token",
        "HTTPS://AS.Example:8443/token",
        "https://as.example:8443/token?x=1#frag",
        "https://as.example:8443/a/../token",
        "https://as.example:8443/./token",
        "https://as.example:8443/%74oken",  # an unreserved character, percent-encoded
    ],
)
def test_spellings_of_the_same_url_compare_equal(same: str) -> None:
    assert normalized_htu(same) == normalized_htu(BASE) == BASE


@pytest.mark.parametrize(
    "other",
    [
        "https://as.example:8443/Token",  # the path is case-sensitive
        "https://as.example:8443/token/",
        "https://as.example:8444/token",
        "https://as.example/token",
        "http://as.example:8443/token",
        "https://other.example:8443/token",
        "https://as.example:8443/tok%65n%2F",  # an encoded "/" is not a "/"
    ],
)
def test_other_urls_differ(other: str) -> None:
    assert normalized_htu(other) != normalized_htu(BASE)


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://h.example:443/x", "https://h.example/x"),
        ("http://h.example:80/x", "http://h.example/x"),
        ("https://h.example", "https://h.example/"),
        ("https://[::1]:8443/t", "https://[::1]:8443/t"),
        ("https://h.example/a%2fb", "https://h.example/a%2Fb"),
        ("https://h.example/a/b/..", "https://h.example/a/"),
        ("https://h.example/..", "https://h.example/"),
    ],
)
def test_normal_forms(url: str, normal: str) -> None:
    assert normalized_htu(url) == normal


@pytest.mark.parametrize(
    "bad",
    [
        "token",
        "/token",
        "ftp://h.example/x",
        "https://user@h.example/x",
        "https://h:99999/x",
        "https://[::1/x",
    ],
)
def test_what_is_no_request_url(bad: str) -> None:
    assert normalized_htu(bad) is None


def test_strip_query() -> None:
    assert strip_query("https://h.example/x?y=1#z") == "https://h.example/x"
    assert strip_query("https://h.example/x#z?y") == "https://h.example/x"


@settings(max_examples=200)
@given(st.text(max_size=60))
def test_any_text_is_a_normal_form_or_none_and_normalising_is_idempotent(text: str) -> None:
    normal = normalized_htu(text)
    if normal is not None:
        assert normalized_htu(normal) == normal

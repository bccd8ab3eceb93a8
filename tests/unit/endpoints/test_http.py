from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certbound.endpoints.http import parse_form
from certbound.errors import InvalidRequestError


def test_decodes_only_what_is_encoded() -> None:
    assert parse_form(b"grant_type=client_credentials&scope=api%3Aread+write") == {
        "grant_type": "client_credentials",
        "scope": "api:read write",
    }


def test_empty_values_are_omitted() -> None:
    assert parse_form(b"a=&b&&c=1") == {"c": "1"}


def test_repeated_parameter_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="scope"):
        parse_form(b"scope=a&scope=b")
    with pytest.raises(InvalidRequestError, match="scope"):
        parse_form(b"scope=a&sc%6Fpe=b")


@pytest.mark.parametrize("body", [b"a=%ff", b"\xff=1", b"a%fe=1"])
def test_bad_utf8_is_invalid_request(body: bytes) -> None:
    with pytest.raises(InvalidRequestError, match="UTF-8"):
        parse_form(body)


@given(st.dictionaries(st.text(min_size=1), st.text(min_size=1), max_size=6))
def test_agrees_with_the_standard_library(params: dict[str, str]) -> None:
    body = urlencode(params).encode()
    assert parse_form(body) == dict(parse_qsl(body.decode()))

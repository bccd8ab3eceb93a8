from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certbound.endpoints.http import JSON_MAX_DEPTH, parse_form, parse_json_object
from certbound.errors import InvalidClientMetadataError, InvalidRequestError


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


# JSON bodies (registration, admin): issue 9 finding 9
def _nested(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"[1]" + b"}" * (depth - 1)


def test_json_nesting_is_bounded_before_parsing() -> None:
    assert parse_json_object(_nested(JSON_MAX_DEPTH), error=InvalidClientMetadataError)
    for body in (_nested(JSON_MAX_DEPTH + 1), b"[" * 300_000, b"{" * 300_000, b'{"a":' + b"[{" * 40):
        with pytest.raises(InvalidClientMetadataError, match="nests deeper than 16"):
            parse_json_object(body, error=InvalidClientMetadataError)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "' + b"[" * 1000 + b'"}',  # brackets inside strings are text
        b'{"a": "\\"[[[[[[[[[[[[[[[[[[[[[[\\\\"}',
        b'{"a\\\\": "\\\\\\"]]]]]]]]]]]]]]]]]]]]]]"}',
        b'{"a": [{"b": [{"c": [{"d": [{"e": [{"f": [{"g": [1]}]}]}]}]}]}]}',  # 15 levels
    ],
)
def test_what_only_looks_deep_is_accepted(body: bytes) -> None:
    assert parse_json_object(body, error=InvalidClientMetadataError) == json.loads(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"a": NaN}', "not JSON"),
        (b'{"a": -Infinity}', "not JSON"),
        (b'{"a": 1e400}', "not JSON"),
        (b'{"a": ' + b"9" * 5000 + b"}", "not JSON"),
        (b"\xef\xbb\xbf{}", "not JSON"),
        (b'"\xff"', "not UTF-8"),
        (b"[]", "must be a JSON object"),
        (b'{"a": [}', "not JSON"),
        (b'{"a": "unterminated', "not JSON"),
    ],
)
def test_json_that_is_not_a_finite_object_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(InvalidClientMetadataError, match=message):
        parse_json_object(body, error=InvalidClientMetadataError)

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given, settings
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


# Property tests: request bodies are untrusted bytes (issue 9)
ANY_BYTES = st.binary(max_size=512) | st.text(st.characters(exclude_categories=())).map(
    lambda text: text.encode("utf-8", "surrogatepass")
)


@settings(max_examples=300, deadline=None)
@given(ANY_BYTES)
def test_any_form_body_gives_parameters_or_invalid_request(body: bytes) -> None:
    try:
        form = parse_form(body)
    except InvalidRequestError:
        return
    assert all(isinstance(name, str) and isinstance(value, str) and value for name, value in form.items())


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(ANY_BYTES | JSON_VALUES.map(lambda value: json.dumps({"v": value}).encode()))
def test_any_json_body_gives_an_object_or_invalid_client_metadata(body: bytes) -> None:
    try:
        value = parse_json_object(body, error=InvalidClientMetadataError)
    except InvalidClientMetadataError:
        return
    assert isinstance(value, dict)
    json.dumps(value, allow_nan=False)  # it can be stored and answered as JSON again


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.sampled_from([b"[", b'{"a":', b'[{"b":']))
def test_nesting_is_refused_exactly_beyond_the_bound(depth: int, opener: bytes) -> None:
    closers = {b"[": b"]", b'{"a":': b"}", b'[{"b":': b"}]"}
    levels = depth * (2 if opener == b'[{"b":' else 1)
    body = b'{"x":' + opener * depth + b"1" + closers[opener] * depth + b"}"
    if levels + 1 <= JSON_MAX_DEPTH:
        assert parse_json_object(body, error=InvalidClientMetadataError)
    else:
        with pytest.raises(InvalidClientMetadataError, match="nests deeper"):
            parse_json_object(body, error=InvalidClientMetadataError)

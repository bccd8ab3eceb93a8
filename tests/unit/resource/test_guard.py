"""Reading the access token of a request (RFC 6750 §2.1): the one place that knows token schemes."""

from __future__ import annotations

import pytest

from certbound.errors import InvalidRequestError, InvalidTokenError
from certbound.resource.guard import PresentedToken, presented_token


@pytest.mark.parametrize(
    ("values", "token"),
    [
        (["Bearer abc.DEF-_~+/=="], PresentedToken("abc.DEF-_~+/==", dpop=False)),
        (["bearer  abc "], PresentedToken("abc", dpop=False)),
        (["BEARER abc"], PresentedToken("abc", dpop=False)),
        (["DPoP abc.DEF"], PresentedToken("abc.DEF", dpop=True)),
        (["dpop abc"], PresentedToken("abc", dpop=True)),
        ([], None),
        (["Bearer"], None),
        (["Bearer   "], None),
        (["DPoP"], None),
        (["Basic dXNlcjpwYXNz"], None),
        (["MAC abc"], None),
    ],
)
def test_presented_token(values: list[str], token: PresentedToken | None) -> None:
    assert presented_token(values) == token


@pytest.mark.parametrize(
    "value", ["Bearer a b", "Bearer a\tb", "Bearer é", "Bearer =abc", "Bearer a=b", "DPoP a b", "DPoP é"]
)
def test_malformed_token_is_invalid_token(value: str) -> None:
    with pytest.raises(InvalidTokenError, match="malformed"):
        presented_token([value])


def test_two_authorization_headers_are_invalid_request() -> None:
    with pytest.raises(InvalidRequestError, match="more than one Authorization header"):
        presented_token(["Bearer abc", "Bearer abc"])

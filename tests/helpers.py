"""Small helpers shared by tests."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

import aiohttp

from certbound.jose import b64url_decode, json_compact
from certbound.reasons import DISCLOSED, GENERIC_REFUSAL, Reason
from certbound.testing import CertboundTestServer

if TYPE_CHECKING:
    from certbound.keys import SigningKey

#: The admin token of the e2e fixture `admin_server_ca`.
ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef"


def basic_auth(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: form-urlencode both parts, then base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (header, claims) of a compact JWS, unverified."""
    header, payload, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


class _AccessLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(dict(getattr(record, "fields", {})))


@contextlib.contextmanager
def access_log() -> Iterator[list[dict[str, Any]]]:
    """The fields of every access line written meanwhile by an in-process server."""
    logger = logging.getLogger("certbound.access")
    handler, level = _AccessLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def check_refusal(line: dict[str, Any], body: dict[str, Any], detail: str) -> Reason:
    """An invalid_client answer and its access line: the line carries a reason code and `detail`;
    the client reads that detail only when the reason is disclosed (certbound.reasons)."""
    assert body["error"] == "invalid_client", body
    assert line["error"] == "invalid_client"
    assert detail in line["detail"], line
    reason = Reason(line["reason"])
    expected = line["detail"] if reason in DISCLOSED else GENERIC_REFUSAL
    assert body["error_description"] == expected, (reason, body)
    return reason


def sign_jwt(key: SigningKey, typ: str, claims: dict[str, Any]) -> str:
    """A compact JWS signed by a server signing key, as the token issuer signs access tokens."""
    return key.encode_jws(key.header_b64(typ), json_compact(claims))


class FakeClock:
    """A clock tests move by hand (`clock.now += 30`), for code that takes `clock=`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def post_token(
    http: aiohttp.ClientSession,
    server: CertboundTestServer,
    form: dict[str, str],
    context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST `form` to the server's token endpoint (trusting its CA, presenting what `context` holds)."""
    ssl_context = context or server.client_ssl_context()
    async with http.post(server.url + "/token", data=form, ssl=ssl_context) as response:
        return response.status, await response.json()


async def token_status(server: CertboundTestServer, client_id: str, secret: str) -> int:
    """The status of a client_credentials request with client_secret_basic."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            server.url + "/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic_auth(client_id, secret)},
            ssl=server.client_ssl_context(),
        ) as response,
    ):
        return response.status

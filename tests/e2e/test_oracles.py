"""No oracles at /token (issue 9 finding 12), no forged log lines (finding 8), request ids.

Until a request proves possession of its client's credential, the answer must not depend on the
client's registration: an unknown client, a wrong secret, a client registered for another method
and a key the client never registered all read alike; the reason code goes to the log only.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from certbound.logformat import JsonFormatter, TextFormatter
from certbound.reasons import GENERIC_REFUSAL
from certbound.testing import CertboundTestServer
from tests.assertion_kit import assertion_form, claims_for, compact, generate_key, public_jwks, sign
from tests.helpers import access_log, basic_auth

GRANT = {"grant_type": "client_credentials"}


async def _post(
    http: aiohttp.ClientSession,
    server: CertboundTestServer,
    form: dict[str, str] | str,
    headers: Any = None,
) -> tuple[int, dict[str, Any], str | None, str]:
    """(status, body, WWW-Authenticate, X-Request-Id) of one token request."""
    async with http.post(
        server.url + "/token",
        data=form,
        headers=headers,
        ssl=server.client_ssl_context(),
    ) as response:
        return (
            response.status,
            json.loads(await response.read()),
            response.headers.get("WWW-Authenticate"),
            response.headers["X-Request-Id"],
        )


async def _answers_and_reasons(
    http: aiohttp.ClientSession, server: CertboundTestServer, requests: list[tuple[dict[str, str], Any]]
) -> tuple[set[str], list[str]]:
    answers, reasons = set(), []
    for form, headers in requests:
        with access_log() as lines:
            status, body, challenge, _ = await _post(http, server, form, headers)
        answers.add(json.dumps([status, body, challenge]))
        (line,) = lines
        reasons.append(line["reason"])
    return answers, reasons


async def test_basic_attempts_read_alike_whatever_the_client(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    basic = await server.add_client("client_secret_basic")
    post = await server.add_client("client_secret_post")
    jwt = await server.add_client("private_key_jwt", jwks=public_jwks(generate_key("ES256")))
    mtls = await server.new_client("tls_client_auth")
    attempts = [
        ("nobody", "any-secret-0123456789"),
        (basic.client_id, "not-the-secret-0123456789"),
        (post.client_id, post.secret),  # right secret, wrong method
        (jwt.client_id, "any-secret-0123456789"),
        (mtls.client_id, "any-secret-0123456789"),
    ]
    answers, reasons = await _answers_and_reasons(
        http, server, [(GRANT, {"Authorization": basic_auth(*attempt)}) for attempt in attempts]
    )
    assert len(answers) == 1, answers
    status, body, challenge = json.loads(answers.pop())
    assert (status, body) == (401, {"error": "invalid_client", "error_description": GENERIC_REFUSAL})
    assert challenge is not None
    assert challenge.startswith("Basic ")
    assert reasons == [
        "unknown_client",
        "bad_secret",
        "method_mismatch",
        "method_mismatch",
        "method_mismatch",
    ]
    # The twin: the right secret still works.
    status, body, _, _ = await _post(
        http, server, GRANT, {"Authorization": basic_auth(basic.client_id, basic.secret)}
    )
    assert status == 200, body


async def test_client_id_alone_and_assertions_read_alike_whatever_the_client(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    mtls = await server.new_client("tls_client_auth")
    self_signed = await server.new_client("self_signed_tls_client_auth")
    secret_jwt = await server.add_client("client_secret_jwt")
    registered_key, stranger_key = generate_key("ES256", kid="k1"), generate_key("ES256", kid="k1")
    key_jwt = await server.add_client("private_key_jwt", jwks=public_jwks(registered_key))
    # No certificate on these connections: tls_client_auth clients look like unknown ones.
    answers, reasons = await _answers_and_reasons(
        http,
        server,
        [
            ({**GRANT, "client_id": client_id}, None)
            for client_id in ("nobody", mtls.client_id, self_signed.client_id)
        ],
    )
    assert len(answers) == 1, answers
    assert reasons == ["unknown_client", "no_certificate", "no_certificate"]

    def signed(client_id: str, key: Any = stranger_key) -> dict[str, str]:
        return assertion_form(sign(key, "ES256", claims_for(client_id, server.issuer)))

    answers, reasons = await _answers_and_reasons(
        http,
        server,
        [
            (signed("nobody"), None),
            (signed(key_jwt.client_id), None),  # a key the client never registered
            (signed(key_jwt.client_id, generate_key("ES256", kid="other")), None),
            (signed(secret_jwt.client_id), None),  # an asymmetric alg for an HMAC client
        ],
    )
    assert len(answers) == 1, answers
    assert json.loads(answers.pop())[1]["error_description"] == GENERIC_REFUSAL
    assert reasons == ["unknown_client", "bad_signature", "kid_unknown", "alg_not_allowed"]
    # The twin: the registered key is accepted.
    status, body, _, _ = await _post(http, server, signed(key_jwt.client_id, registered_key))
    assert status == 200, body


@pytest.mark.parametrize("name", ["Authorization", "Content-Type"])
async def test_a_repeated_security_header_is_refused(
    server: CertboundTestServer, http: aiohttp.ClientSession, name: str
) -> None:
    client = await server.add_client("client_secret_basic")
    good = basic_auth(client.client_id, client.secret)
    headers = CIMultiDict([("Authorization", good), ("Content-Type", "application/x-www-form-urlencoded")])
    status, body, _, _ = await _post(http, server, "grant_type=client_credentials", headers)
    assert status == 200, body
    headers.add(name, good if name == "Authorization" else headers["Content-Type"])
    async with http.post(
        server.url + "/token",
        data="grant_type=client_credentials",
        headers=headers,
        ssl=server.client_ssl_context(),
    ) as response:
        assert response.status == 400
        if name == "Authorization":  # ours; the HTTP parser refuses the others before the app
            body = json.loads(await response.read())
            assert body["error"] == "invalid_request"
            assert name in body["error_description"]


@pytest.fixture(params=["text", "json"])
def server_log(request: pytest.FixtureRequest) -> Iterator[tuple[str, io.StringIO]]:
    """Everything the server logs, through the formatter `serve --log-format` would use."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if request.param == "json" else TextFormatter())
    logger = logging.getLogger("certbound")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield request.param, stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


FORGED = "\r\n2026-01-01 00:00:00,000 INFO certbound.access: POST /admin/clients 201 forged=1"


async def test_crlf_in_a_parameter_name_or_a_jwt_header_forges_no_line(
    server: CertboundTestServer, http: aiohttp.ClientSession, server_log: tuple[str, io.StringIO]
) -> None:
    log_format, stream = server_log
    key = generate_key("ES256", kid="k1")
    client = await server.add_client("private_key_jwt", jwks=public_jwks(key))
    evil_name = "x" + FORGED.replace("\r", "%0D").replace("\n", "%0A").replace(" ", "+")
    # A repeated parameter is refused with its name in the description (and so in the log).
    status, _, _, _ = await _post(
        http,
        server,
        f"grant_type=client_credentials&{evil_name}=1&{evil_name}=2",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 400
    # A JWT header value, written into the log by the alg check.
    forged_alg = compact({"alg": "ES256" + FORGED}, claims_for(client.client_id, server.issuer), b"sig")
    status, _, _, _ = await _post(http, server, assertion_form(forged_alg))
    assert status == 401
    # A client_id, written into the access line.
    status, _, _, _ = await _post(http, server, {**GRANT, "client_id": "c" + FORGED})
    assert status == 401

    lines = stream.getvalue().splitlines()
    assert len(lines) == 3  # one access line per request, nothing else
    assert not any(line.startswith("2026-01-01") or "\r" in line for line in lines)
    if log_format == "json":
        parsed = [json.loads(line) for line in lines]
        assert "2026-01-01" in parsed[0]["detail"]
        assert "\\r\\n2026-01-01" in parsed[1]["detail"]
        assert parsed[2]["client_id"].startswith("c\\r\\n2026-01-01")
        assert not any("\n" in str(value) or "\r" in str(value) for line in parsed for value in line.values())
    else:
        assert all(line[:4].isdigit() for line in lines)
        assert "\\\\r\\\\n2026-01-01" in lines[1]  # escaped, then quoted


async def test_every_response_carries_a_request_id(
    server: CertboundTestServer, http: aiohttp.ClientSession
) -> None:
    given = "proxy-1234.abcd:5678"
    for path, sent, expect_given in [
        ("/healthz", given, True),
        ("/no-such-path", given, True),
        ("/healthz", "has space", False),
        ("/healthz", "x" * 65, False),
        ("/healthz", None, False),
    ]:
        headers = {"X-Request-Id": sent} if sent is not None else {}
        with access_log() as lines:
            async with http.get(
                server.url + path, headers=headers, ssl=server.client_ssl_context()
            ) as response:
                request_id = response.headers["X-Request-Id"]
        assert (request_id == given) is expect_given
        if not expect_given:
            assert len(request_id) == 16
            assert int(request_id, 16) >= 0
        (line,) = lines
        assert line["request_id"] == request_id
        assert line["path"] == path

"""Operations (SPEC §3) seen from outside: `certbound serve` subprocesses, their JSON logs, /metrics
across workers, and the refusal of a port another server already serves."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from prometheus_client.parser import text_string_to_metric_families

from certbound.devpki import write_dev_pki
from tests.assertion_kit import assertion_form, claims_for, generate_key, public_jwks, sign
from tests.e2e.processes import ServerProcess, free_port, run_cli
from tests.helpers import basic_auth

# Recognisable values that must never reach a log line.
ADMIN_TOKEN = "ADMIN-canary-7f3a9c1e5b2d4f6a8c0e"
SECRET = "SECRET-canary-1b3d5f7a9c2e4f6b8d0a"
WRONG_SECRET = "WRONG-canary-9e8d7c6b5a4f3e2d1c0b"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    return write_dev_pki(tmp_path / "pki").directory


def _tls_args(pki: Path) -> list[str]:
    return ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key")]


def _request(
    url: str,
    pki: Path,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    client_cert: str | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One HTTPS request on a new connection: (status, headers, parsed JSON or text)."""
    context = ssl.create_default_context(cafile=str(pki / "server-ca.pem"))
    if client_cert is not None:
        context.load_cert_chain(pki / f"{client_cert}.pem", pki / f"{client_cert}.key")
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            status, reply_headers, body = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, reply_headers, body = exc.code, dict(exc.headers), exc.read()
    if reply_headers.get("Content-Type", "").startswith("application/json"):
        return status, reply_headers, json.loads(body)
    return status, reply_headers, body.decode()


def _post_form(url: str, pki: Path, form: dict[str, str], **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": FORM, **kwargs.pop("headers", {})}
    return _request(url, pki, data=urllib.parse.urlencode(form).encode(), headers=headers, **kwargs)


def _admin_create(server: ServerProcess, pki: Path, metadata: dict[str, Any]) -> None:
    status, _, body = _request(
        server.url + "/admin/clients",
        pki,
        data=json.dumps(metadata).encode(),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    assert status == 201, body


def _x5t_s256(pem_file: Path) -> str:
    der = x509.load_pem_x509_certificate(pem_file.read_bytes()).public_bytes(Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def test_json_log_has_one_access_line_per_request_and_no_secret(pki: Path, tmp_path: Path) -> None:
    args = ["--port", str(free_port()), "--db", f"sqlite:///{tmp_path}/db.sqlite", *_tls_args(pki)]
    args += ["--client-ca", str(pki / "client-ca.pem"), "--admin-token", ADMIN_TOKEN, "--log-format", "json"]
    key = generate_key("ES256", kid="canary-key")
    with ServerProcess(*args) as server:
        _admin_create(
            server,
            pki,
            {
                "client_id": "canary-basic",
                "client_secret": SECRET,
                "token_endpoint_auth_method": "client_secret_basic",
            },
        )
        _admin_create(
            server,
            pki,
            {
                "client_id": "canary-jwt",
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": public_jwks(key),
            },
        )
        token_url = server.url + "/token"
        grant = {"grant_type": "client_credentials"}
        # 1. A token, with a client certificate on the connection and the caller's request id.
        status, headers, body = _post_form(
            token_url,
            pki,
            grant,
            headers={"Authorization": basic_auth("canary-basic", SECRET), "X-Request-Id": "caller-id-0001"},
            client_cert="client1",
        )
        assert status == 200, body
        assert headers["X-Request-Id"] == "caller-id-0001"
        basic_token = body["access_token"]
        # 2. A wrong secret.
        status, headers, _ = _post_form(
            token_url, pki, grant, headers={"Authorization": basic_auth("canary-basic", WRONG_SECRET)}
        )
        assert status == 401
        wrong_secret_id = headers["X-Request-Id"]
        # 3. A token by assertion, then 4. the same assertion again.
        assertion = sign(key, "ES256", claims_for("canary-jwt", server.url.replace("127.0.0.1", "localhost")))
        status, _, body = _post_form(token_url, pki, assertion_form(assertion))
        assert status == 200, body
        jwt_token = body["access_token"]
        status, headers, body = _post_form(token_url, pki, assertion_form(assertion))
        assert (status, body["error"]) == (401, "invalid_client")
        assert "already been used" in body["error_description"]  # after the signature: disclosed
        replay_id = headers["X-Request-Id"]
        # 5. Introspection of a token, which travels in the body.
        status, _, body = _post_form(
            server.url + "/introspect",
            pki,
            {"token": jwt_token},
            headers={"Authorization": basic_auth("canary-basic", SECRET)},
        )
        assert (status, body["active"]) == (200, True)
        code, stderr = server.stop()
    assert code == 0, stderr

    lines = [json.loads(line) for line in stderr.splitlines()]  # every line is one JSON object
    assert all(
        isinstance(line, dict) and {"time", "level", "logger", "message"} <= set(line) for line in lines
    )
    access = [line for line in lines if line["logger"] == "certbound.access"]
    assert len(access) == 7  # 2 admin creations, 4 token requests, 1 introspection
    by_id = {line["request_id"]: line for line in access}
    first = by_id["caller-id-0001"]
    assert first["method"] == "POST"
    assert first["path"] == "/token"
    assert first["status"] == 200
    assert (first["client_id"], first["auth_method"]) == ("canary-basic", "client_secret_basic")
    assert first["grant_type"] == "client_credentials"
    assert first["x5t#S256"] == _x5t_s256(pki / "client1.pem")
    assert isinstance(first["duration_ms"], float)
    assert (by_id[wrong_secret_id]["status"], by_id[wrong_secret_id]["reason"]) == (401, "bad_secret")
    assert (by_id[replay_id]["client_id"], by_id[replay_id]["reason"]) == ("canary-jwt", "jti_replayed")
    created = [line for line in access if line["path"] == "/admin/clients"]
    assert {line["registered_client_id"] for line in created} == {"canary-basic", "canary-jwt"}

    client_cert_body = "".join((pki / "client1.pem").read_text().splitlines()[1:4])
    for canary in (
        ADMIN_TOKEN,
        SECRET,
        WRONG_SECRET,
        assertion,
        assertion.rsplit(".", 1)[1],
        basic_token,
        basic_token.rsplit(".", 1)[1],
        jwt_token.rsplit(".", 1)[1],
        client_cert_body,
    ):
        assert canary not in stderr


def _scrape(url: str, pki: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, headers, text = _request(url + "/metrics", pki)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_every_scrape_shows_the_totals_of_all_workers(pki: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/db.sqlite"
    added = run_cli("clients", "add", "--db", db, "--client-id", "svc", "--secret", SECRET)
    assert added.returncode == 0, added.stderr
    args = ["--workers", "2", "--port", str(free_port()), "--db", db, *_tls_args(pki)]
    with ServerProcess(*args) as server:
        grant = {"grant_type": "client_credentials"}
        for _ in range(10):  # each on a new connection: the kernel spreads them over both workers
            status, _, _ = _post_form(
                server.url + "/token", pki, grant, headers={"Authorization": basic_auth("svc", SECRET)}
            )
            assert status == 200
        for _ in range(3):
            status, _, _ = _post_form(
                server.url + "/token", pki, grant, headers={"Authorization": basic_auth("svc", WRONG_SECRET)}
            )
            assert status == 401
        scrapes = [_scrape(server.url, pki) for _ in range(8)]
        code, stderr = server.stop()
    assert code == 0, stderr
    tokens = (
        "certbound_tokens_issued_total",
        (("auth_method", "client_secret_basic"), ("grant_type", "client_credentials")),
    )
    refusals = ("certbound_client_auth_refusals_total", (("reason", "bad_secret"),))
    token_latency = ("certbound_request_duration_seconds_count", (("route", "/token"),))
    for scrape in scrapes:
        assert (scrape[tokens], scrape[refusals], scrape[token_latency]) == (10, 3, 13)


def test_workers_refuse_a_port_another_server_already_serves(pki: Path, tmp_path: Path) -> None:
    port = str(free_port())
    first_db, second_db = f"sqlite:///{tmp_path}/first.sqlite", f"sqlite:///{tmp_path}/second.sqlite"
    added = run_cli("clients", "add", "--db", first_db, "--client-id", "svc", "--secret", SECRET)
    assert added.returncode == 0, added.stderr
    with ServerProcess("--workers", "2", "--port", port, "--db", first_db, *_tls_args(pki)) as server:
        for workers in ("2", "1"):
            second = run_cli(
                "serve", "--workers", workers, "--port", port, "--db", second_db, *_tls_args(pki)
            )
            assert second.returncode == 2
            assert second.stdout == ""
            assert len(second.stderr.splitlines()) == 1
            assert second.stderr.startswith("certbound: error: ")
            assert port in second.stderr
        assert not (tmp_path / "second.sqlite").exists()  # refused before opening its database
        kids = set()
        for _ in range(6):  # the first server still answers alone, with its one signing key
            status, _, body = _post_form(
                server.url + "/token",
                pki,
                {"grant_type": "client_credentials"},
                headers={"Authorization": basic_auth("svc", SECRET)},
            )
            assert status == 200, body
            kids.add(body["access_token"].split(".")[0])
        assert len(kids) == 1
        code, stderr = server.stop()
    assert code == 0, stderr

"""The --federation file with a real `certbound serve` (SPEC §3, §13): bad configuration exits 2
with one line; SIGHUP reloads it all or nothing while the server keeps serving."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import time
from pathlib import Path

import aiohttp
import pytest
import trustme

from certbound.authmethods import JWT_BEARER
from tests.assertion_kit import generate_key, public_jwks, sign
from tests.e2e.processes import ServerProcess, free_port, run_cli

KEY = generate_key("ES256", kid="cluster-1")
ISSUERS = {"ci": "https://ci.example", "cd": "https://cd.example"}


def _tls_files(directory: Path) -> tuple[list[str], ssl.SSLContext]:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    (directory / "server.pem").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    (directory / "server.key").write_bytes(leaf.private_key_pem.bytes())
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return ["--tls-cert", str(directory / "server.pem"), "--tls-key", str(directory / "server.key")], context


def _federation(path: Path, *names: str, extra: str = "") -> Path:
    entries = [
        f'[[issuer]]\nname = "{name}"\nissuer = "{ISSUERS[name]}"\n'
        'jwks_file = "keys.json"\nallow_reuse = true\n'
        for name in names
    ]
    path.write_text("\n".join(entries) + extra)
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "federation file not found"),
        (
            '[[issuer]]\nname = "ci"\nissuer = "https://ci.example"\njwks_file = "absent.json"\n',
            "cannot read jwks_file",
        ),
    ],
)
def test_a_bad_federation_file_exits_2_with_one_line(
    tmp_path: Path, content: str | None, message: str
) -> None:
    tls, _ = _tls_files(tmp_path)
    federation = tmp_path / "federation.toml"
    if content is not None:
        federation.write_text(content)
    result = run_cli(
        "serve", "--port", "0", "--db", "sqlite://:memory:", *tls, "--federation", str(federation)
    )
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("certbound: error: ")
    assert message in line


async def test_sighup_reloads_the_federation_all_or_nothing(tmp_path: Path) -> None:
    tls, context = _tls_files(tmp_path)
    (tmp_path / "keys.json").write_text(json.dumps(public_jwks(KEY)))
    federation = _federation(tmp_path / "federation.toml", "ci")
    db = f"sqlite:///{tmp_path}/certbound.db"
    clients = {}
    for name in ISSUERS:
        added = run_cli(
            "clients", "add", "--db", db, "--method", "federated_jwt", "--federated-issuer", name,
            "--federated-claims", '{"sub": "system:serviceaccount:prod:*"}',
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        clients[name] = added.stdout.split("client_id: ", 1)[1].split()[0]
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    issuer = f"https://localhost:{port}"

    async def status(http: aiohttp.ClientSession, name: str) -> int:
        now = int(time.time())
        claims = {
            "iss": ISSUERS[name],
            "sub": "system:serviceaccount:prod:api",
            "aud": issuer,
            "iat": now,
            "exp": now + 600,
        }
        form = {
            "grant_type": "client_credentials",
            "client_id": clients[name],
            "client_assertion_type": JWT_BEARER,
            "client_assertion": sign(KEY, "ES256", claims),
        }
        async with http.post(url + "/token", data=form, ssl=context) as response:
            return response.status

    async def until(http: aiohttp.ClientSession, name: str, expected: int) -> None:
        for _ in range(100):
            if await status(http, name) == expected:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{name} never answered {expected}")

    with ServerProcess(
        "--port", str(port), "--issuer", issuer, *tls, "--db", db, "--federation", str(federation)
    ) as process:  # fmt: skip
        async with aiohttp.ClientSession() as http:
            assert (await status(http, "ci"), await status(http, "cd")) == (200, 401)
            # A broken file: the whole running configuration stays.
            _federation(federation, "ci", "cd", extra="colour = 1\n")
            process.process.send_signal(signal.SIGHUP)
            for _ in range(100):
                if "reload failed" in process.stderr_so_far():
                    break
                await asyncio.sleep(0.1)
            assert "unknown key colour" in process.stderr_so_far()
            assert (await status(http, "ci"), await status(http, "cd")) == (200, 401)
            # A good one replaces it: cd is trusted, ci no longer.
            _federation(federation, "cd")
            process.process.send_signal(signal.SIGHUP)
            await until(http, "cd", 200)
            assert await status(http, "ci") == 401
        returncode, stderr = process.stop()
    assert returncode == 0, stderr
    assert "1 federated issuers" in stderr

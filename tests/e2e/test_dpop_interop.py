"""Interoperability with a DPoP client that is not ours (issue 13): panva's openid-client from npm
(scripts/dpop_interop.mjs) gets a DPoP-bound token from certbound, which requires server nonces,
and calls a certbound.resource API with it.

openid-client is installed once into run/interop/ (git-ignored). Without node or npm, or when npm
cannot install it, the test is skipped and says why."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from joserfc.jwk import ECKey

from certbound.testing import CertboundTestServer
from tests.e2e.test_resource_server import resource_server
from tests.helpers import access_log, jwt_parts

ROOT = Path(__file__).resolve().parents[2]
INTEROP = ROOT / "run" / "interop"
SCRIPT = ROOT / "scripts" / "dpop_interop.mjs"
#: openid-client's major version: the API the script uses (discovery, getDPoPHandle, ...).
OPENID_CLIENT = "openid-client@6"


def openid_client_dir() -> Path:
    """The directory with openid-client installed and the script copied in; skips when it cannot be."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: the interop test needs Node.js and npm")
    package = INTEROP / "node_modules" / "openid-client" / "package.json"
    if not package.is_file() or not json.loads(package.read_text())["version"].startswith("6."):
        INTEROP.mkdir(parents=True, exist_ok=True)
        (INTEROP / "package.json").write_text('{"private": true}\n')
        installed = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", OPENID_CLIENT],
            cwd=INTEROP,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if installed.returncode != 0:
            pytest.skip(f"npm could not install {OPENID_CLIENT}: {installed.stderr.strip()[-300:]}")
    shutil.copy(SCRIPT, INTEROP / SCRIPT.name)
    return INTEROP


async def test_openid_client_gets_a_dpop_bound_token_and_uses_it(tmp_path: Path) -> None:
    directory = openid_client_dir()
    async with (
        CertboundTestServer(dpop_nonce=True) as server,
        resource_server(server, tmp_path) as api,
    ):
        client = await server.new_client("client_secret_basic")
        environment = {
            **os.environ,
            "ISSUER": server.issuer,
            "CLIENT_ID": client.client_id,
            "CLIENT_SECRET": client.secret or "",
            "RESOURCE": api + "/resource",
            "NODE_EXTRA_CA_CERTS": str(server.server_ca_file),
        }
        with access_log() as lines:
            node = await asyncio.create_subprocess_exec(
                "node",
                SCRIPT.name,
                cwd=directory,
                env=environment,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            stdout, stderr = await asyncio.wait_for(node.communicate(), timeout=60)
    assert node.returncode == 0, stderr.decode()
    # The library retried with the server's nonce by itself (RFC 9449 §8).
    token_requests = [(line["status"], line["error"]) for line in lines if line["path"] == "/token"]
    assert token_requests == [(400, "use_dpop_nonce"), (200, None)]
    result = json.loads(stdout)
    jkt = ECKey.import_key(result["jwk"]).thumbprint()
    assert result["token_type"] == "dpop"  # as openid-client reports it: lower-cased
    assert jwt_parts(result["access_token"])[1]["cnf"] == {"jkt": jkt}
    assert (result["resource_status"], result["resource_body"]) == (
        200,
        {"client_id": client.client_id, "scope": "read", "cnf": {"jkt": jkt}},
    )

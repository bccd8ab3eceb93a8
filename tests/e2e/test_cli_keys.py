"""`certbound keys list|rotate` through a running server's admin API (--url, or CERTBOUND_URL and
CERTBOUND_ADMIN_TOKEN), and on the database (--db), as subprocesses."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiohttp

from certbound.testing import CertboundTestServer
from tests.e2e.processes import run_cli
from tests.helpers import ADMIN_TOKEN


async def keys(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a thread: the server it talks to runs on this event loop."""
    return await asyncio.to_thread(run_cli, "keys", *args, env=env)


async def published_kids(server: CertboundTestServer) -> set[str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.url + "/jwks", ssl=server.client_ssl_context()) as response,
    ):
        return {key["kid"] for key in (await response.json())["keys"]}


async def test_list_and_rotate_through_the_admin_api(
    admin_server_ca: tuple[CertboundTestServer, Path],
) -> None:
    server, cacert = admin_server_ca
    target = ("--url", server.url, "--admin-token", ADMIN_TOKEN, "--cacert", str(cacert))
    [old_kid] = await published_kids(server)
    listed = await keys("list", *target)
    assert listed.returncode == 0, listed.stderr
    [line] = listed.stdout.splitlines()
    assert line.startswith(f"{old_kid}  ES256  created ")
    assert line.endswith("  active")

    rotated = await keys("rotate", *target)
    assert rotated.returncode == 0, rotated.stderr
    new_kid = rotated.stdout.strip()
    assert new_kid not in ("", old_kid)
    assert await published_kids(server) == {old_kid, new_kid}

    # The environment names the server and the token as well as the flags do.
    env = {"CERTBOUND_URL": server.url, "CERTBOUND_ADMIN_TOKEN": ADMIN_TOKEN}
    relisted = await keys("list", "--cacert", str(cacert), env=env)
    assert relisted.returncode == 0, relisted.stderr
    first, second = relisted.stdout.splitlines()
    assert first.startswith(new_kid)
    assert first.endswith("  active")
    assert second.startswith(old_kid)
    assert "  retired " in second


async def test_refusals_through_the_admin_api(admin_server_ca: tuple[CertboundTestServer, Path]) -> None:
    server, cacert = admin_server_ca
    wrong = await keys("rotate", "--url", server.url, "--admin-token", "wrong", "--cacert", str(cacert))
    assert wrong.returncode == 2
    assert wrong.stdout == ""
    assert wrong.stderr.splitlines() == ["certbound: error: invalid_token: the admin token is not valid"]
    assert len(await published_kids(server)) == 1
    no_token = await keys("list", "--cacert", str(cacert), env={"CERTBOUND_URL": server.url})
    assert no_token.returncode == 2
    assert "--admin-token" in no_token.stderr
    both = await keys("list", "--url", server.url, "--db", "sqlite:///x.db", "--admin-token", ADMIN_TOKEN)
    assert both.returncode == 2
    assert both.stderr.splitlines() == ["certbound: error: use either --url or --db, not both"]


def test_db_flag_beats_certbound_url(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/keys.db"
    env = {"CERTBOUND_URL": "https://127.0.0.1:1", "CERTBOUND_ADMIN_TOKEN": ADMIN_TOKEN}
    rotated = run_cli("keys", "rotate", "--db", db, env=env)
    assert rotated.returncode == 0, rotated.stderr
    listed = run_cli("keys", "list", "--db", db, env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith(rotated.stdout.strip())
    assert listed.stdout.rstrip().endswith("  active")

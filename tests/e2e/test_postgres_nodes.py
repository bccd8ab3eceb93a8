"""Several `certbound serve` nodes on one PostgreSQL database (issue 11, SPEC §3, §6, §7, §10).

Two nodes on different ports share one fresh database and one master key, with one issuer (as
behind one load balancer): what one node (or the CLI) changes, the other honours — clients at once
or within 1 s, revocations at once, jtis once, one signing key, rotations within 30 s. Then a node
whose database connection is cut (a TCP proxy, not the shared PostgreSQL) answers 503
`temporarily_unavailable` within its database timeout, says so at /readyz, keeps serving what needs
no database, and recovers by itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from certbound.devpki import write_dev_pki
from tests.assertion_kit import ASSERTION_TYPE, claims_for, generate_key, public_jwks, sign
from tests.e2e.processes import ServerProcess, free_port, https_request, run_cli
from tests.helpers import basic_auth, jwt_parts
from tests.postgres import fresh_database, via_port
from tests.tcpproxy import TcpProxy

ISSUER = "https://localhost:8443"  # one issuer for every node, as behind one load balancer
ADMIN_TOKEN = "admin-token-for-the-node-tests-0123456789"
CLIENT1_DN = "CN=client1,O=certbound dev"
#: SPEC §3: a client change takes effect on every node within this many seconds.
CLIENT_CHANGE_DEADLINE = 1.0


@dataclass
class Node:
    process: ServerProcess
    pki: Path

    @property
    def url(self) -> str:
        return self.process.url

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
        return https_request(self.url + path, self.pki / "server-ca.pem", method=method, **kwargs)

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
        data = json.dumps(body).encode() if body is not None else None
        status, _, answer = self.call(method, "/admin/clients" + path, data=data, headers=headers)
        return status, answer

    def post_form(
        self, path: str, form: dict[str, str], *, auth: tuple[str, str] | None = None, cert: str | None = None
    ) -> tuple[int, dict[str, str], Any]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if auth is not None:
            headers["Authorization"] = basic_auth(*auth)
        pair = (self.pki / f"{cert}.pem", self.pki / f"{cert}.key") if cert else None
        return self.call("POST", path, data=urlencode(form).encode(), headers=headers, cert=pair)

    def token(self, auth: tuple[str, str], **form: str) -> tuple[int, Any]:
        status, _, body = self.post_form("/token", {"grant_type": "client_credentials", **form}, auth=auth)
        return status, body

    def kids(self) -> set[str]:
        _, _, jwks = self.call("GET", "/jwks")
        return {key["kid"] for key in jwks["keys"]}


def node_args(pki: Path, db: str, master_key: Path, port: int, *extra: str) -> list[str]:
    return [
        "--port", str(port),
        "--issuer", ISSUER,
        "--tls-cert", str(pki / "server.pem"),
        "--tls-key", str(pki / "server.key"),
        "--client-ca", str(pki / "client-ca.pem"),
        "--db", db,
        "--master-key-file", str(master_key),
        "--admin-token", ADMIN_TOKEN,
        *extra,
    ]  # fmt: skip


def start_together(pki: Path, *args: list[str]) -> list[Node]:
    """Start a node per argument list at the same time; each is awaited until it serves."""
    with ThreadPoolExecutor(len(args)) as pool:
        processes = list(pool.map(lambda node: ServerProcess(*node), args))
    return [Node(process, pki) for process in processes]


def elapsed_until(condition: Callable[[], bool], deadline: float) -> float | None:
    """Seconds until `condition()` first holds, asked back to back; None if not within `deadline`."""
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        if condition():
            return time.monotonic() - started
    return None


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dev_pki(tmp_path_factory.mktemp("pki")).directory


@dataclass
class Cluster:
    a: Node
    b: Node
    db: str
    master_key: Path

    def cli(self, *args: str) -> str:
        result = run_cli(*args, "--db", self.db, "--master-key-file", str(self.master_key))
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture(scope="module")
def cluster(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Nodes A and B, started together on one empty database."""
    master_key = tmp_path_factory.mktemp("key") / "master.key"
    with fresh_database() as db:
        a, b = start_together(
            pki,
            node_args(pki, db, master_key, free_port()),
            node_args(pki, db, master_key, free_port()),
        )
        try:
            yield Cluster(a, b, db, master_key)
        finally:
            for node in (a, b):
                code, stderr = node.process.stop()
                assert code == 0, stderr
                assert "Traceback" not in stderr


def add_secret_client(node: Node, **metadata: Any) -> tuple[str, str]:
    status, created = node.admin(
        "POST", "", {"token_endpoint_auth_method": "client_secret_basic", **metadata}
    )
    assert status == 201, created
    return created["client_id"], created["client_secret"]


def test_nodes_started_together_share_one_signing_key(cluster: Cluster) -> None:
    assert cluster.a.kids() == cluster.b.kids()
    assert len(cluster.a.kids()) == 1


def test_a_client_registered_at_one_node_gets_tokens_at_the_other(cluster: Cluster) -> None:
    credentials = add_secret_client(cluster.a)
    status, body = cluster.b.token(credentials)
    assert status == 200, body
    status, body = cluster.b.token((credentials[0], "not-the-secret"))
    assert status == 401
    assert body["error"] == "invalid_client"


def test_a_tls_client_auth_client_registered_at_one_node_gets_bound_tokens_at_the_other(
    cluster: Cluster,
) -> None:
    client_id = "mtls-" + str(free_port())
    form = {"grant_type": "client_credentials", "client_id": client_id}
    # B looks the client up before it exists (and caches the miss) ...
    assert cluster.b.post_form("/token", form, cert="client1")[0] == 401
    status, created = cluster.a.admin(
        "POST",
        "",
        {
            "client_id": client_id,
            "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": CLIENT1_DN,
        },
    )
    assert status == 201, created
    # ... and finds it within the deadline once A created it.
    answers: list[Any] = []

    def b_issues() -> bool:
        status, _, body = cluster.b.post_form("/token", form, cert="client1")
        answers.append(body)
        return status == 200

    assert elapsed_until(b_issues, CLIENT_CHANGE_DEADLINE) is not None, answers[-1]
    _, claims = jwt_parts(answers[-1]["access_token"])
    assert "x5t#S256" in claims["cnf"]
    status, _, body = cluster.b.post_form("/token", form, cert="client2")  # another subject
    assert status == 401
    assert body["error"] == "invalid_client"


def test_a_jti_used_at_one_node_is_refused_at_the_other(cluster: Cluster) -> None:
    key = generate_key("ES256", kid="k1")
    status, created = cluster.a.admin(
        "POST", "", {"token_endpoint_auth_method": "private_key_jwt", "jwks": public_jwks(key)}
    )
    assert status == 201, created
    client_id = created["client_id"]

    def form() -> dict[str, str]:
        assertion = sign(key, "ES256", claims_for(client_id, ISSUER))
        return {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }

    once = form()
    status, _, body = cluster.a.post_form("/token", once)
    assert status == 200, body
    status, _, body = cluster.b.post_form("/token", once)
    assert status == 401
    assert "replay" in body["error_description"]
    status, _, body = cluster.b.post_form("/token", form())  # a fresh assertion is fine
    assert status == 200, body


@pytest.mark.parametrize("as_jwt", [True, False], ids=["jwt", "opaque"])
def test_a_token_revoked_at_one_node_is_inactive_at_the_other_at_once(cluster: Cluster, as_jwt: bool) -> None:
    credentials = add_secret_client(cluster.a, access_token_as_jwt=as_jwt)
    status, issued = cluster.a.token(credentials)
    assert status == 200, issued
    token = {"token": issued["access_token"]}
    status, _, introspected = cluster.b.post_form("/introspect", token, auth=credentials)
    assert (status, introspected["active"]) == (200, True)
    status, _, _ = cluster.a.post_form("/revoke", token, auth=credentials)
    assert status == 200
    status, _, introspected = cluster.b.post_form("/introspect", token, auth=credentials)
    assert (status, introspected) == (200, {"active": False})


def test_a_client_deleted_at_one_node_is_refused_at_the_other_within_1s(cluster: Cluster) -> None:
    credentials = add_secret_client(cluster.a)
    assert cluster.b.token(credentials)[0] == 200  # B has it cached
    started = time.monotonic()
    assert cluster.a.admin("DELETE", f"/{credentials[0]}")[0] == 204
    refused = elapsed_until(lambda: cluster.b.token(credentials)[0] == 401, CLIENT_CHANGE_DEADLINE)
    assert refused is not None, "node B still issued tokens to a deleted client after 1 s"
    assert time.monotonic() - started < CLIENT_CHANGE_DEADLINE + 1
    assert all(cluster.b.token(credentials)[0] == 401 for _ in range(5))


def test_a_secret_rotated_at_one_node_is_refused_at_the_other_within_1s(cluster: Cluster) -> None:
    client_id, old_secret = add_secret_client(cluster.a)
    assert cluster.b.token((client_id, old_secret))[0] == 200
    status, rotated = cluster.a.admin("POST", f"/{client_id}/rotate-secret")
    assert status == 200, rotated
    new = (client_id, rotated["client_secret"])
    assert elapsed_until(lambda: cluster.b.token((client_id, old_secret))[0] == 401, CLIENT_CHANGE_DEADLINE)
    assert cluster.b.token((client_id, old_secret))[0] == 401
    assert cluster.b.token(new)[0] == 200


def test_a_scope_narrowed_with_the_cli_is_enforced_by_both_nodes_within_1s(cluster: Cluster) -> None:
    credentials = add_secret_client(cluster.a, scope="read write")
    for node in (cluster.a, cluster.b):
        assert node.token(credentials, scope="write")[0] == 200
    cluster.cli("clients", "update", credentials[0], "--scope", "read")
    for node in (cluster.a, cluster.b):
        narrowed = elapsed_until(lambda node=node: node.token(credentials, scope="write")[0] == 400, 1.0)
        assert narrowed is not None
        assert node.token(credentials, scope="read")[0] == 200


def test_a_key_rotated_with_the_cli_is_published_by_both_nodes_within_30s(cluster: Cluster) -> None:
    before = cluster.a.kids()
    new_kid = cluster.cli("keys", "rotate").strip()
    assert new_kid not in before
    for node in (cluster.a, cluster.b):
        published = elapsed_until(lambda node=node: new_kid in node.kids(), 30)
        assert published is not None, f"{node.url} did not publish {new_kid} within 30 s"
        assert before <= node.kids()  # the old key stays published for its tokens


def test_with_postgresql_the_master_key_file_is_required(tmp_path: Path) -> None:
    for command in (["serve", "--port", str(free_port())], ["clients", "list"], ["keys", "list"]):
        result = run_cli(*command, "--db", "postgresql://postgres@127.0.0.1:1/none", cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            "certbound: error: --master-key-file is required with a PostgreSQL database"
        ]


def test_a_node_whose_database_is_cut_answers_503_then_recovers(pki: Path, tmp_path: Path) -> None:
    db_timeout = 2
    with (
        fresh_database() as db,
        TcpProxy(urlsplit(db).hostname or "127.0.0.1", urlsplit(db).port or 5432) as proxy,
    ):
        proxied = via_port(db, proxy.port)
        master_key = tmp_path / "master.key"
        args = node_args(pki, proxied, master_key, free_port(), "--db-timeout", str(db_timeout))
        (node,) = start_together(pki, args)
        try:
            credentials = add_secret_client(node)
            assert node.token(credentials)[0] == 200
            assert node.call("GET", "/readyz")[0] == 200

            proxy.cut()
            slowest = 0.0

            def unavailable() -> bool:
                nonlocal slowest
                started = time.monotonic()
                status, headers, body = node.post_form(
                    "/token", {"grant_type": "client_credentials"}, auth=credentials
                )
                slowest = max(slowest, time.monotonic() - started)
                if status == 200:
                    return False  # still within the cache's staleness bound
                assert (status, body["error"]) == (503, "temporarily_unavailable"), body
                assert int(headers["Retry-After"]) > 0
                return True

            assert elapsed_until(unavailable, db_timeout + 5) is not None
            assert slowest < db_timeout + 2  # bounded by the database timeout, never a hang
            status, _, ready = node.call("GET", "/readyz")
            assert (status, ready["database"]) == (503, False)
            # What needs no database keeps working: discovery and the published keys.
            assert node.call("GET", "/jwks")[0] == 200
            assert node.call("GET", "/.well-known/oauth-authorization-server")[0] == 200
            assert node.call("GET", "/healthz")[0] == 200

            proxy.restore()
            assert elapsed_until(lambda: node.token(credentials)[0] == 200, 15) is not None
            assert elapsed_until(lambda: node.call("GET", "/readyz")[0] == 200, 5) is not None
        finally:
            code, stderr = node.process.stop()
        assert code == 0, stderr
        assert "Traceback" not in stderr

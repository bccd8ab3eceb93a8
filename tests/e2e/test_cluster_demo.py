"""scripts/cluster_demo.sh (README "Running several nodes"): two PostgreSQL-backed nodes behind
HAProxy in TCP mode issue certificate-bound tokens through it, and keep doing so with one node down.
Needs Debian's haproxy (.ci/run installs it); skips, saying so, where it is not installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.postgres import ADMIN_URL, require_postgres

ROOT = Path(__file__).resolve().parents[2]


def test_the_cluster_demo_gets_bound_tokens_through_haproxy_and_survives_a_node() -> None:
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (apt-get install -y haproxy)")
    require_postgres()
    result = subprocess.run(
        ["scripts/cluster_demo.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        env={
            "PATH": "/usr/sbin:/usr/bin:/bin",
            "CERTBOUND_PYTHON": sys.executable,
            "CERTBOUND_DEMO_POSTGRES": ADMIN_URL,
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    tokens = re.findall(r"^token \d: 200 .* \(matches the certificate\)$", out, re.MULTILINE)
    assert len(tokens) == 9, out
    assert re.search(r"^refused: 401 invalid_client", out, re.MULTILINE), out
    sessions = dict(re.findall(r"^([ab]) UP (\d+)$", out, re.MULTILINE))
    assert int(sessions["a"]) > 0, out  # both nodes served
    assert int(sessions["b"]) > 0, out
    assert re.search(r"^a DOWN \d+$", out, re.MULTILINE), out

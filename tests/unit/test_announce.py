"""What `serve` prints when ready (certbound.announce): the contract line, the issuer, and with the
dev PKI the README's first commands, as the user can paste them."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from certbound.announce import announce_ready, next_commands
from certbound.config import Settings
from certbound.devpki import DEV_CERTS_DIR, DevPKI
from tests.readme import readme_code_blocks

DEV = Settings(tls_cert=DEV_CERTS_DIR / "server.pem", tls_key=DEV_CERTS_DIR / "server.key")


@pytest.fixture
def make_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """As under `make run`: `.venv/bin/certbound serve` from the checkout, not on PATH."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(sys, "argv", [".venv/bin/certbound", "serve"])
    return tmp_path


def _readme_commands() -> list[list[str]]:
    (block, *_) = readme_code_blocks("### Get a token (client_secret_basic)", "sh")
    return [shlex.split(command) for command in block.replace("\\\n", " ").splitlines()]


def test_the_next_commands_are_the_readmes_first_commands(make_run: Path) -> None:
    printed = [shlex.split(command) for command in next_commands(DEV, DevPKI(DEV_CERTS_DIR))]
    assert printed == _readme_commands()


def test_another_database_is_named_in_the_command(make_run: Path) -> None:
    settings = Settings(db="sqlite:///elsewhere.db")
    add_client, _ = next_commands(settings, DevPKI(DEV_CERTS_DIR))
    assert shlex.split(add_client)[-2:] == ["--db", "sqlite:///elsewhere.db"]


def test_the_program_is_named_as_the_user_can_run_it(make_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = make_run / "bin" / "certbound"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(script), "serve"])
    assert next_commands(DEV, DevPKI(DEV_CERTS_DIR))[0].startswith("bin/certbound clients add ")
    monkeypatch.setenv("PATH", str(script.parent))
    assert next_commands(DEV, DevPKI(DEV_CERTS_DIR))[0].startswith("certbound clients add ")
    monkeypatch.setattr(sys, "argv", ["/somewhere/certbound/__main__.py", "serve"])
    assert next_commands(DEV, DevPKI(DEV_CERTS_DIR))[0].startswith(
        f"{sys.executable} -m certbound clients add "
    )


def test_ready_lines_with_the_dev_pki(make_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    announce_ready("https://127.0.0.1:8443", DEV)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        "listening on https://127.0.0.1:8443",
        "issuer https://localhost:8443 (the URL clients use; metadata at "
        "https://localhost:8443/.well-known/openid-configuration)",
    ]
    assert [shlex.split(line) for line in lines[3:]] == _readme_commands()


def test_ready_lines_with_another_certificate(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(issuer="https://as.example", tls_cert=Path("/etc/as/cert.pem"), tls_key=Path("k"))
    announce_ready("https://0.0.0.0:443", settings)
    assert capsys.readouterr().out.splitlines() == [
        "listening on https://0.0.0.0:443",
        "issuer https://as.example (the URL clients use; metadata at "
        "https://as.example/.well-known/openid-configuration)",
    ]

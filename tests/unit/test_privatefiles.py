"""Private files (SPEC §3): created 0600 in 0700 directories; what exists is reported, not changed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from certbound.privatefiles import create_private_file, ensure_private_directory, warn_if_exposed


def test_missing_directories_are_created_0700(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    ensure_private_directory(deep)
    for directory in (deep, deep.parent, deep.parent.parent):
        assert directory.stat().st_mode & 0o777 == 0o700


def test_a_file_is_created_once_0600_and_an_exposed_one_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "db"
    assert create_private_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o640)
    with caplog.at_level(logging.WARNING, logger="certbound.files"):
        assert not create_private_file(path)
    assert path.stat().st_mode & 0o777 == 0o640  # not changed
    assert (
        f"file {path} is accessible by other users (mode 640) but holds secrets at rest: chmod 600"
        in caplog.text
    )


def test_private_or_missing_paths_are_quiet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tmp_path.chmod(0o700)
    with caplog.at_level(logging.WARNING, logger="certbound.files"):
        ensure_private_directory(tmp_path)
        warn_if_exposed(tmp_path / "missing", "file")
    assert caplog.text == ""

"""Files that hold secrets at rest (SPEC §3): the database and the master key are created 0600 in
directories created 0700; what already exists is the operator's, so it is never chmod-ed, only
reported when other users can reach it.

SQLite creates its `-wal` and `-shm` files with the permissions of the database file, so creating
the (empty) database file 0600 before SQLite opens it is what keeps those private too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

__all__ = ["create_private_file", "ensure_private_directory", "warn_if_exposed"]

log = logging.getLogger("certbound.files")

_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def ensure_private_directory(path: Path) -> None:
    """Create `path` and its missing parents with mode 0700; warn when `path` already existed and
    its group or other users have any access to it."""
    missing: list[Path] = []
    for directory in (path, *path.parents):
        if directory.exists():
            break
        missing.append(directory)
    if not missing:
        warn_if_exposed(path, "directory")
        return
    for directory in reversed(missing):
        # Another process (a worker, the CLI) may make it meanwhile, with the same mode.
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)


def create_private_file(path: Path) -> bool:
    """Create `path` empty with mode 0600 unless it exists (then warn if exposed); True if created."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        warn_if_exposed(path, "file")
        return False
    return True


def warn_if_exposed(path: Path, what: str) -> None:
    """One warning when group or other users have any permission on `path` (missing: nothing)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    if mode & _OTHERS:
        log.warning(
            "%s %s is accessible by other users (mode %o) but holds secrets at rest: chmod %s %s",
            what,
            path,
            stat.S_IMODE(mode),
            "700" if stat.S_ISDIR(mode) else "600",
            path,
        )

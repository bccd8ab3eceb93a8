"""What a newcomer sees on `make run` in a fresh clone: the time until the server is ready and every
line printed on the way (issue 10: "the note lists what a newcomer now sees on `make run`").

    python3 scripts/time_make_run.py [--repo PATH] [--port 18443] [--keep]

Clones the repository (default: this checkout's; committed files only) into a temporary
directory, runs `make run PORT=...` there in its own process group, timestamps each output line,
and once `listening on` appears (plus a second for the lines printed with it) stops the group by its
id with SIGTERM. pip's cache is whatever it is on this machine: run it twice to see the warm case.
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_READY = "listening on "
_AFTER_READY = 1.0
_TIMEOUT = 600.0


def _measure(clone: Path, port: int) -> tuple[float | None, list[tuple[float, str]]]:
    start = time.monotonic()
    make = subprocess.Popen(
        ["make", "run", f"PORT={port}"],
        cwd=clone,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, stopped below by that id
    )
    assert make.stdout is not None
    fd = make.stdout.fileno()
    lines: list[tuple[float, str]] = []
    ready_at: float | None = None
    pending = b""
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    try:
        while True:
            now = time.monotonic()
            if (ready_at is not None and now > start + ready_at + _AFTER_READY) or now > start + _TIMEOUT:
                break
            if not selector.select(timeout=0.1):
                continue
            chunk = os.read(fd, 65536)  # raw reads: a buffered readline would hide lines from select
            if not chunk:
                break
            *complete, pending = (pending + chunk).split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                lines.append((time.monotonic() - start, line))
                if ready_at is None and line.startswith(_READY):
                    ready_at = lines[-1][0]
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=30)
    return ready_at, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--port", type=int, default=18443, help="PORT for make run (default 18443)")
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="certbound-make-run-"))
    clone = workdir / "certbound"
    subprocess.run(["git", "clone", "--quiet", str(args.repo), str(clone)], check=True)
    ready_at, lines = _measure(clone, args.port)
    for at, line in lines:
        print(f"{at:6.1f}s  {line}")
    print(f"\n{len(lines)} lines; " + (f"ready after {ready_at:.1f} s" if ready_at else "never ready"))
    if args.keep:
        print(f"clone kept in {clone}")
    else:
        subprocess.run(["rm", "-rf", str(workdir)], check=True)
    return 0 if ready_at is not None else 1


if __name__ == "__main__":
    sys.exit(main())

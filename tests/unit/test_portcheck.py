"""The port check of `serve --workers`: a listener that is not ours on our port is refused."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from certbound.errors import ConfigError
from certbound.portcheck import listening_sockets, require_sole_listeners

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def _line(address: str, port: int, state: str, inode: int) -> str:
    timers = "00000000:00000000 00:00000000 00000000"
    return f"   0: {address}:{port:04X} 00000000:0000 {state} {timers}     0        0 {inode} 1\n"


def test_the_kernel_table_is_parsed(tmp_path: Path) -> None:
    table = tmp_path / "tcp"
    table.write_text(HEADER + _line("0100007F", 8443, "0A", 11) + _line("0100007F", 8443, "01", 12))
    table6 = tmp_path / "tcp6"
    table6.write_text(HEADER + _line("00000000000000000000000000000000", 9443, "0A", 13))
    listeners = listening_sockets([table, table6])
    assert [(str(entry.address), entry.port, entry.inode) for entry in listeners] == [
        ("127.0.0.1", 8443, 11),
        ("::", 9443, 13),
    ]


def _reuseport_listener(port: int = 0) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_our_own_listeners_pass() -> None:
    first = _reuseport_listener()
    second = _reuseport_listener(first.getsockname()[1])
    with first, second:
        require_sole_listeners([first, second])


def test_another_listener_on_the_port_is_refused() -> None:
    ours = _reuseport_listener()
    theirs = _reuseport_listener(ours.getsockname()[1])  # joins the group, as a second serve would
    with ours, theirs, pytest.raises(ConfigError, match="already served by another process"):
        require_sole_listeners([ours])


def test_a_wildcard_listener_on_the_port_overlaps(tmp_path: Path) -> None:
    ours = _reuseport_listener()
    with ours:
        port = ours.getsockname()[1]
        table = tmp_path / "tcp"
        table.write_text(
            HEADER
            + _line("00000000", port, "0A", 1)
            + _line("0100007F", port, "0A", os.fstat(ours.fileno()).st_ino)
        )
        with pytest.raises(ConfigError):
            require_sole_listeners([ours], [table])
        table.write_text(HEADER + _line("0200007F", port, "0A", 1) + _line("0100007F", port + 1, "0A", 2))
        require_sole_listeners([ours], [table])  # another address, another port: no conflict


def test_without_a_kernel_table_the_check_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ours = _reuseport_listener()
    with ours:
        require_sole_listeners([ours], [tmp_path / "missing"])
    assert "not checking" in caplog.text

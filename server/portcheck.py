"""`serve --workers N` owns its port alone (SPEC §3; issue 10, Operations).

Workers share a port through SO_REUSEPORT, and Linux lets any process of the same user join such a
group: a second `certbound serve --workers` on the port, started with another database, would bind
without error and the kernel would split connections between two servers with two signing keys.

The check: after binding and listening on all of our sockets, read the kernel's table of listening
TCP sockets (/proc/net/tcp, /proc/net/tcp6) and refuse when a listener on one of our ports, on an
overlapping address, is not one of ours (compared by socket inode). It is race-free because each
server looks only after it listens: of two servers starting together, the one that looks second
always sees the other, so they never both serve (at worst both refuse, and one is started again).
Without a /proc (not Linux) the check cannot run, and says so in the log.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from certbound.errors import ConfigError

__all__ = ["Listener", "listening_sockets", "require_sole_listeners"]

log = logging.getLogger("certbound.workers")

_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
_LISTEN = "0A"

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Listener:
    address: _Address
    port: int
    inode: int


def _address(hex_address: str) -> _Address:
    """/proc/net/tcp prints each 32-bit word of the address in host byte order."""
    raw = bytes.fromhex(hex_address)
    if sys.byteorder == "little":
        raw = b"".join(raw[index : index + 4][::-1] for index in range(0, len(raw), 4))
    return ipaddress.ip_address(raw)


def listening_sockets(tables: Iterable[Path] = _TABLES) -> list[Listener]:
    """Every listening TCP socket of this network namespace; OSError when no table is readable."""
    listeners: list[Listener] = []
    readable = False
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except FileNotFoundError:
            continue  # no IPv6, say
        readable = True
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            hex_address, _, hex_port = fields[1].partition(":")
            listeners.append(Listener(_address(hex_address), int(hex_port, 16), int(fields[9])))
    if not readable:
        raise OSError("no /proc/net/tcp")
    return listeners


def _overlaps(ours: _Address, theirs: _Address) -> bool:
    return ours == theirs or ours.is_unspecified or theirs.is_unspecified


def require_sole_listeners(sockets: Sequence[socket.socket], tables: Iterable[Path] = _TABLES) -> None:
    """ConfigError when another process listens on the address and port of one of `sockets`
    (all bound and listening already)."""
    try:
        listeners = listening_sockets(tables)
    except OSError:
        log.warning("cannot list listening sockets here: not checking that the port is ours alone")
        return
    ours = {os.fstat(sock.fileno()).st_ino for sock in sockets}
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        address = ipaddress.ip_address(host.split("%", 1)[0])
        for other in listeners:
            if other.port == port and other.inode not in ours and _overlaps(address, other.address):
                raise ConfigError(
                    f"port {port} is already served by another process (another certbound serve?): "
                    "refusing to share it"
                )

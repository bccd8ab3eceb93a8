"""Connection admission (issue 9, finding 6): caps on what one worker holds open for its peers.

Checked when TCP accepts, before any TLS work, so a refused connection costs an accept and a
close: at most `max_connections` open connections per worker, `max_connections_per_source` from
one source, and `max_handshakes_per_source` of those still handshaking. A source is an IPv4
address or an IPv6 /64 (what one subscriber is usually given). Sources inside `exempt` networks
(trusted proxies, which speak for many clients) only count towards the worker's total.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_LIMITS",
    "AdmissionRefused",
    "AdmittedConnection",
    "ConnectionAdmission",
    "ConnectionLimits",
]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: The key of peers whose address cannot be read (or parsed): they share one budget.
_UNKNOWN = "unknown"


class AdmissionRefused(Exception):
    """A connection over one of the caps; the message says which."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The caps, per worker process."""

    max_connections: int
    max_connections_per_source: int
    max_handshakes_per_source: int
    exempt: Sequence[_Network] = ()


#: The defaults of `--max-connections`, `--max-connections-per-ip` and `--max-handshakes-per-ip`.
DEFAULT_LIMITS = ConnectionLimits(
    max_connections=1024, max_connections_per_source=256, max_handshakes_per_source=64
)


class AdmittedConnection:
    """One admitted connection's share of the budget; give it back with :meth:`close`."""

    __slots__ = ("_admission", "_handshaking", "_source")

    def __init__(self, admission: ConnectionAdmission, source: str | None) -> None:
        self._admission: ConnectionAdmission | None = admission
        self._source = source
        self._handshaking = True

    def handshake_done(self) -> None:
        """The TLS handshake completed: the connection no longer counts as handshaking."""
        if self._handshaking and self._admission is not None:
            self._handshaking = False
            self._admission._release(self._admission._handshakes, self._source)

    def close(self) -> None:
        """The connection is gone (idempotent)."""
        admission = self._admission
        if admission is None:
            return
        self.handshake_done()
        self._admission = None
        admission._open -= 1
        admission._release(admission._connections, self._source)


class ConnectionAdmission:
    """The open connections of one worker, counted against :class:`ConnectionLimits`."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._open = 0
        # Only sources with something open have an entry, so these hold at most
        # max_connections keys however many addresses come and go.
        self._connections: dict[str, int] = {}
        self._handshakes: dict[str, int] = {}

    @property
    def open_connections(self) -> int:
        return self._open

    def admit(self, peername: object) -> AdmittedConnection:
        """Admit a new connection from `peername` (a socket address); AdmissionRefused if over a cap."""
        limits = self.limits
        if self._open >= limits.max_connections:
            raise AdmissionRefused(f"the worker holds {self._open} connections")
        source = self._source(peername)
        if source is not None:
            if self._connections.get(source, 0) >= limits.max_connections_per_source:
                raise AdmissionRefused(f"{source} holds {limits.max_connections_per_source} connections")
            if self._handshakes.get(source, 0) >= limits.max_handshakes_per_source:
                raise AdmissionRefused(
                    f"{source} has {limits.max_handshakes_per_source} TLS handshakes in progress"
                )
            self._connections[source] = self._connections.get(source, 0) + 1
            self._handshakes[source] = self._handshakes.get(source, 0) + 1
        self._open += 1
        return AdmittedConnection(self, source)

    def _source(self, peername: object) -> str | None:
        """The budget a peer draws on: its address (an IPv6 /64), None for exempt peers."""
        host = peername[0] if isinstance(peername, tuple) and peername else None
        if not isinstance(host, str):
            return _UNKNOWN
        try:
            address = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return _UNKNOWN
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.limits.exempt):
            return None
        if isinstance(address, ipaddress.IPv6Address):
            return str(ipaddress.IPv6Network((address, 64), strict=False))
        return str(address)

    def _release(self, counts: dict[str, int], source: str | None) -> None:
        if source is None:
            return
        remaining = counts[source] - 1
        if remaining:
            counts[source] = remaining
        else:
            del counts[source]

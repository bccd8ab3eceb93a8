"""ConnectionAdmission: the per-worker caps on connections and handshakes (issue 9, finding 6).
Over real sockets: test_transport.py."""

from __future__ import annotations

import ipaddress

import pytest

from certbound.tls import AdmissionRefused, AdmittedConnection, ConnectionAdmission, ConnectionLimits


def _admission(
    total: int = 100, per_source: int = 100, handshakes: int = 100, exempt: tuple[str, ...] = ()
) -> ConnectionAdmission:
    return ConnectionAdmission(
        ConnectionLimits(
            max_connections=total,
            max_connections_per_source=per_source,
            max_handshakes_per_source=handshakes,
            exempt=tuple(ipaddress.ip_network(network) for network in exempt),
        )
    )


def _fill(admission: ConnectionAdmission, host: str, count: int) -> list[AdmittedConnection]:
    return [admission.admit((host, 40000 + index)) for index in range(count)]


def test_the_per_source_cap_refuses_that_source_only() -> None:
    admission = _admission(per_source=2)
    _fill(admission, "192.0.2.1", 2)
    with pytest.raises(AdmissionRefused, match=r"192\.0\.2\.1 holds 2 connections"):
        admission.admit(("192.0.2.1", 1))
    admission.admit(("192.0.2.2", 1))
    assert admission.open_connections == 3


def test_closing_gives_the_connection_back_once() -> None:
    admission = _admission(per_source=1)
    (first,) = _fill(admission, "192.0.2.1", 1)
    first.close()
    first.close()
    assert admission.open_connections == 0
    admission.admit(("192.0.2.1", 1))
    with pytest.raises(AdmissionRefused):
        admission.admit(("192.0.2.1", 2))


def test_the_total_cap_counts_every_source() -> None:
    admission = _admission(total=3)
    _fill(admission, "192.0.2.1", 2)
    admission.admit(("2001:db8::1", 1, 0, 0))
    with pytest.raises(AdmissionRefused, match="the worker holds 3 connections"):
        admission.admit(("192.0.2.9", 1))


def test_handshakes_in_progress_are_capped_until_they_finish() -> None:
    admission = _admission(handshakes=2)
    first, _ = _fill(admission, "192.0.2.1", 2)
    with pytest.raises(AdmissionRefused, match="2 TLS handshakes in progress"):
        admission.admit(("192.0.2.1", 1))
    first.handshake_done()
    first.handshake_done()  # counted once
    admission.admit(("192.0.2.1", 1))
    with pytest.raises(AdmissionRefused):
        admission.admit(("192.0.2.1", 2))


def test_an_ipv6_source_is_its_slash_64() -> None:
    admission = _admission(per_source=2)
    admission.admit(("2001:db8:1:2::1", 1, 0, 0))
    admission.admit(("2001:db8:1:2:ffff::9", 1, 0, 0))
    with pytest.raises(AdmissionRefused, match="2001:db8:1:2::/64"):
        admission.admit(("2001:db8:1:2::3", 1, 0, 0))
    admission.admit(("2001:db8:1:3::1", 1, 0, 0))  # another /64


def test_an_ipv4_mapped_address_is_the_ipv4_source() -> None:
    admission = _admission(per_source=1)
    admission.admit(("192.0.2.1", 1))
    with pytest.raises(AdmissionRefused, match=r"192\.0\.2\.1 holds"):
        admission.admit(("::ffff:192.0.2.1", 1, 0, 0))


def test_exempt_networks_only_count_towards_the_total() -> None:
    admission = _admission(total=5, per_source=1, handshakes=1, exempt=("10.0.0.0/8",))
    _fill(admission, "10.1.2.3", 5)
    with pytest.raises(AdmissionRefused, match="the worker holds 5"):
        admission.admit(("10.1.2.3", 1))


@pytest.mark.parametrize("peername", [None, ("not an address", 1), (), "/run/socket"])
def test_unreadable_peers_share_one_budget(peername: object) -> None:
    admission = _admission(per_source=1)
    admission.admit(peername)
    with pytest.raises(AdmissionRefused, match="unknown holds"):
        admission.admit(None)

"""`certbound tui`: a Textual application for clients and signing keys (issue 12)."""

from __future__ import annotations

from certbound.tui.app import CertboundApp

__all__ = ["CertboundApp"]

"""certbound: an asyncio OAuth 2.0 token server with mutual-TLS client authentication."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"

"""Workload identity (SPEC §13): the `--federation` file (config), SPIFFE bundles (bundle), claim
rules (claimrules) and the keys workload tokens are verified with (keys).

`Federation` holds the configuration in use and swaps in a new one on reload (SIGHUP), which the
server does all or nothing together with its TLS files (certbound.runtime).
"""

from __future__ import annotations

from pathlib import Path

from certbound.config import Settings
from certbound.federation.bundle import SpiffeBundle, parse_bundle
from certbound.federation.claimrules import ClaimRule, first_mismatch, parse_claim_rules
from certbound.federation.config import FederationConfig, IssuerConfig, TrustDomainConfig, load_federation
from certbound.federation.keys import FederationKeys

__all__ = [
    "ClaimRule",
    "Federation",
    "FederationConfig",
    "FederationKeys",
    "IssuerConfig",
    "SpiffeBundle",
    "TrustDomainConfig",
    "first_mismatch",
    "load_federation",
    "parse_bundle",
    "parse_claim_rules",
]


class Federation:
    """The federation configuration of a server: None without `--federation`."""

    def __init__(self, settings: Settings) -> None:
        self._path: Path | None = settings.federation
        self._audience = settings.issuer
        self._allow_private = settings.allow_private_fetch
        self.current: FederationConfig | None = self.load()

    @property
    def configured(self) -> bool:
        return self._path is not None

    def load(self) -> FederationConfig | None:
        """Read the file again (ConfigError when it cannot be used); not yet in use."""
        if self._path is None:
            return None
        return load_federation(self._path, audience=self._audience, allow_private=self._allow_private)

    def install(self, config: FederationConfig | None) -> None:
        self.current = config

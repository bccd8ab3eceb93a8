"""Grant handlers behind an explicit registry keyed by `grant_type`."""

from __future__ import annotations

from collections.abc import Mapping

from certbound.grants.base import Grant
from certbound.grants.client_credentials import ClientCredentialsGrant

__all__ = ["GRANTS", "Grant"]

GRANTS: Mapping[str, Grant] = {grant.grant_type: grant for grant in (ClientCredentialsGrant(),)}

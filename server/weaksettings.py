"""Start-up warnings for settings that work but leave the server easier to attack (SPEC §3): one
log line each when `serve` starts, where an operator reads them.
"""

from __future__ import annotations

import logging

from certbound.config import Settings
from certbound.privatefiles import warn_if_exposed

__all__ = ["SHORT_TOKEN", "warn_about_weak_settings"]

log = logging.getLogger("certbound")

#: Bearer tokens shorter than this are worth a warning: ours carry 256 bits in 43 characters.
SHORT_TOKEN = 32


def warn_about_weak_settings(settings: Settings) -> None:
    if settings.registration == "open":
        log.warning(
            "dynamic registration is open: anyone who reaches this server can register a client "
            "holding the scopes %s (--registration-scopes)",
            " ".join(settings.dynamic_client_scopes),
        )
    tokens = (
        ("--admin-token", settings.admin_token, settings.admin_token_file),
        ("--registration-token", settings.registration_token, settings.registration_token_file),
    )
    for flag, token, file in tokens:
        if token is not None and len(token) < SHORT_TOKEN:
            log.warning(
                "%s has fewer than %d characters: use a long random one (openssl rand -hex 32)",
                flag,
                SHORT_TOKEN,
            )
        if file is not None:
            warn_if_exposed(file, f"{flag}-file")

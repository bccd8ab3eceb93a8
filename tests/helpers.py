"""Small helpers shared by tests."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote_plus

from certbound.jose import b64url_decode


def basic_auth(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: form-urlencode both parts, then base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (header, claims) of a compact JWS, unverified."""
    header, payload, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))

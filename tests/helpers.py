"""Small helpers shared by tests."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from certbound.jose import b64url_decode, json_compact

if TYPE_CHECKING:
    from certbound.keys import SigningKey


def basic_auth(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: form-urlencode both parts, then base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (header, claims) of a compact JWS, unverified."""
    header, payload, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_code_blocks(section: str, language: str) -> list[str]:
    """The fenced `language` code blocks of the README section whose heading is `section`: tests run
    them as written, so the README cannot drift from what works."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{section}\n")
    level = len(section) - len(section.lstrip("#"))
    following = re.search(rf"\n#{{1,{level}}} ", text[start + 1 :])
    body = text[start : start + 1 + following.start()] if following else text[start:]
    return re.findall(rf"```{language}\n(.*?)```", body, flags=re.DOTALL)


def sign_jwt(key: SigningKey, typ: str, claims: dict[str, Any]) -> str:
    """A compact JWS signed by a server signing key, as the token issuer signs access tokens."""
    return key.encode_jws(key.header_b64(typ), json_compact(claims))

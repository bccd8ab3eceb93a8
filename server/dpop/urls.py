"""RFC 9449 §4.3 item 9: comparing a proof's `htu` with the URL the request was sent to, ignoring
query and fragment, after RFC 3986 §6.2.2 syntax-based and §6.2.3 scheme-based normalisation.

Both sides go through `normalized_htu`: scheme and host lower-cased, the scheme's default port
dropped, an empty path made `/`, percent-encodings of unreserved characters decoded and the others
upper-cased, dot segments removed. Userinfo is refused: no request URL carries one (RFC 9110 §4.2.4).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["normalized_htu", "strip_query"]

_DEFAULT_PORTS = {"https": 443, "http": 80}
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
#: RFC 3986 §2.3.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _percent(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def _without_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, for an absolute path."""
    output: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    # A trailing "." or ".." leaves the path ending in "/" (RFC 3986 §5.2.4 steps B and C).
    if path.endswith(("/.", "/..")):
        output.append("")
    return "/" + "/".join(output)


def normalized_htu(url: str) -> str | None:
    """`url` as compared (scheme://host[:port]/path), or None when it is not an absolute http(s)
    URL with a host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a bad port, or unbalanced IPv6 brackets
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    if ":" in host:
        host = f"[{host}]"
    authority = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = _PERCENT.sub(_percent, parts.path) or "/"
    if not path.startswith("/"):
        return None
    return f"{scheme}://{authority}{_without_dot_segments(path)}"


def strip_query(url: str) -> str:
    """RFC 9449 §4.2: the `htu` a client sends, "without query and fragment parts"."""
    return url.split("#", 1)[0].split("?", 1)[0]

"""The access log (SPEC §3): one line per request, with what the request turned out to be.

The middleware opens an `AccessRecord` for each request; handlers add what they learn (the
authenticated client, the grant, the token's id, a new client's id) with `note_client` and
`note`; the middleware writes the line when the response is ready. Never a secret, an assertion
or a token in it: only identifiers (client_id, jti, x5t#S256) and codes. Neutralising control
characters is the formatters' job (certbound.logformat), for every line.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

from aiohttp import web

from certbound.logformat import FieldValue, log_fields

__all__ = ["ACCESS_RECORD", "REQUEST_ID_HEADER", "AccessRecord", "note", "note_client", "request_id_for"]

log = logging.getLogger("certbound.access")

REQUEST_ID_HEADER = "X-Request-Id"
# An incoming id is kept only when it is short and made of safe characters (a proxy's UUID, say);
# anything else is replaced, so a client cannot write arbitrary text into every line of its own.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_SHOWN_IN_MESSAGE = ("method", "path", "status")


def request_id_for(request: web.Request) -> str:
    """The request's id: the caller's X-Request-Id when it is one safe value, else a new one."""
    given = request.headers.getall(REQUEST_ID_HEADER, ())
    if len(given) == 1 and _SAFE_REQUEST_ID.fullmatch(given[0]):
        return given[0]
    return os.urandom(8).hex()


@dataclass(slots=True)
class AccessRecord:
    request_id: str
    client_id: str | None = None
    auth_method: str | None = None
    error: str | None = None
    reason: str | None = None
    detail: str | None = None
    #: What the handler adds: grant_type, scope, jti, ... (identifiers and codes only).
    facts: dict[str, FieldValue] = field(default_factory=dict)

    def write(self, request: web.Request, status: int, seconds: float, x5t_s256: str | None) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        fields: dict[str, FieldValue] = {
            "method": request.method,
            # The path as sent, percent-encoding kept, without the query.
            "path": request.rel_url.raw_path,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "request_id": self.request_id,
            "client_id": self.client_id,
            "auth_method": self.auth_method,
            "x5t#S256": x5t_s256,
            "error": self.error,
            "reason": self.reason,
            "detail": self.detail,
            **self.facts,
        }
        # makeRecord + handle rather than log.info: the caller's file and line (a stack walk per
        # request) say nothing here.
        line = log.makeRecord(
            log.name,
            logging.INFO,
            __file__,
            0,
            "%s %s %d",
            (fields["method"], fields["path"], status),
            None,
            extra=log_fields(fields, in_message=_SHOWN_IN_MESSAGE),
        )
        log.handle(line)


ACCESS_RECORD = web.RequestKey("certbound.access_record", AccessRecord)


def note_client(request: web.Request, client_id: str, auth_method: str) -> None:
    """The authenticated client of this request."""
    record = request.get(ACCESS_RECORD)
    if record is not None:
        record.client_id = client_id
        record.auth_method = auth_method


def note(request: web.Request, **facts: FieldValue) -> None:
    """Identifiers and codes worth a place on the access line (never a secret or a token)."""
    record = request.get(ACCESS_RECORD)
    if record is not None:
        record.facts.update(facts)

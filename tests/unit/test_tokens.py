from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from certbound.tokens import access_token_claims

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)))


@given(_TEXT, _TEXT, _TEXT, _TEXT, st.integers(0, 2**40), _TEXT, st.none() | _TEXT, st.none() | _TEXT)
def test_claims_are_the_json_of_the_same_dict(
    issuer: str,
    client_id: str,
    audience: str,
    scope: str,
    now: int,
    jti: str,
    x5t: str | None,
    jkt: str | None,
) -> None:
    payload = access_token_claims(
        issuer=issuer,
        subject=client_id,
        client_id=client_id,
        audience=audience,
        issued_at=now,
        expires_at=now + 600,
        jti=jti,
        scope=scope,
        x5t_s256=x5t,
        jkt=jkt,
    )
    expected: dict[str, object] = {
        "iss": issuer,
        "sub": client_id,
        "client_id": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 600,
        "jti": jti,
        "scope": scope,
    }
    cnf = {name: value for name, value in (("x5t#S256", x5t), ("jkt", jkt)) if value is not None}
    if cnf:
        expected["cnf"] = cnf
    assert json.loads(payload) == expected
    assert payload == json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()

"""`import certbound.resource` stands alone (issue 10 part 3): it loads the TLS, error and
token-reading parts of certbound, never the store, the vault, the key ring, the configuration or
the client machinery of the authorization server. Checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

#: The modules it may load: anything else is a new dependency to justify here.
ALLOWED = {
    "certbound",
    "certbound.accesstoken",
    "certbound.clientcert",
    "certbound.endpoints",
    "certbound.endpoints.http",
    "certbound.errorresponse",
    "certbound.errors",
    "certbound.httpguard",
    # DPoP proofs (certbound.dpop) import their public JWK through it.
    "certbound.jose",
    "certbound.keypolicy",
    # The TLS layer's bounded caches (key-policy verdicts, shared client chains).
    "certbound.lru",
    "certbound.proxyheaders",
    "certbound.proxytrust",
    "certbound.reasons",
}
ALLOWED_PACKAGES = ("certbound.resource", "certbound.tls", "certbound.dpop")
#: Never: the authorization server's state and secrets.
FORBIDDEN = (
    "certbound.app",
    "certbound.clientauth",
    "certbound.jwks",
    "certbound.clients",
    "certbound.config",
    "certbound.context",
    "certbound.keys",
    "certbound.management",
    "certbound.models",
    "certbound.store",
    "certbound.tokens",
    "certbound.tokenstate",
    "certbound.vault",
)


def loaded_by(statement: str) -> set[str]:
    code = (
        "import json, sys\n"
        f"{statement}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'certbound')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(result.stdout))


def test_import_certbound_resource_loads_only_its_parts() -> None:
    loaded = loaded_by("import certbound.resource")
    assert "certbound.resource.verifier" in loaded
    unexpected = {name for name in loaded if name not in ALLOWED and not name.startswith(ALLOWED_PACKAGES)}
    assert unexpected == set()
    assert not {name for name in loaded if name.startswith(FORBIDDEN)}


def test_the_check_can_fail() -> None:
    # Twin: the token server's app does load what the resource library must not.
    loaded = loaded_by("import certbound.app")
    assert {"certbound.store", "certbound.vault", "certbound.keys"} <= loaded

"""SPEC §6: secrets are compared in constant time. A static check over server/: an `==` or `!=`
with a secret-like operand (a name, attribute or call result called *secret*, *token*, *hmac*,
*digest*, *hash*, *password*) fails this test unless it is in ALLOWED below with the reason it is
not a secret. Use hmac.compare_digest (or secrets.compare_digest) instead.

Not flagged: comparisons with a number, None or a bool (`len(digest) != 32`), results of len() and
.count(), and comparisons of comparisons (`(a is None) != (b is None)`): none leak a secret's
content through timing.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server"
SECRET_LIKE = re.compile(r"secret|token|hmac|digest|hash|password|passwd", re.IGNORECASE)
HARMLESS_CALLS = frozenset({"len", "count", "isinstance", "type"})

#: (file under server/, the comparison's source): why it is not a secret compared.
ALLOWED = {
    (
        "proxyheaders.py",
        "expected.lower() != hashlib.sha256(peer.leaf_der).hexdigest()",
    ): "XFCC's Hash of the certificate in the same header: public data checked for consistency",
}


def _identifier(node: ast.expr) -> str | None:
    """The name an operand's value is known by: `x`, `a.x`, `a.x()`, `x[0]`."""
    while isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _secret_like(node: ast.expr) -> bool:
    if isinstance(node, ast.Call) and _identifier(node) in HARMLESS_CALLS:
        return False
    name = _identifier(node)
    return name is not None and SECRET_LIKE.search(name) is not None


def _harmless(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is None or isinstance(node.value, bool | int | float)
    return isinstance(node, ast.Compare | ast.BoolOp)


def variable_time_comparisons(source: str) -> Iterator[tuple[int, str]]:
    """(line, source) of each == / != that compares something secret-like."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands[:-1], operands[1:], strict=True):
            if not isinstance(op, ast.Eq | ast.NotEq) or _harmless(left) or _harmless(right):
                continue
            if _secret_like(left) or _secret_like(right):
                yield node.lineno, ast.get_source_segment(source, node) or ""


def test_the_check_catches_what_it_is_for() -> None:
    flagged = dict(
        variable_time_comparisons(
            "if presented == client.secret: pass\n"
            "if token_hash(presented) != row[0]: pass\n"
            "if mac.hexdigest() == signature: pass\n"
            "if hmac.compare_digest(a_secret, other_secret): pass\n"
            "if len(digest) != 32 or token.count('.') == 2: pass\n"
            "if (secret is None) != (token is None): pass\n"
            "if secret is None: pass\n"
        )
    )
    assert sorted(flagged) == [1, 2, 3]


def test_secrets_are_compared_in_constant_time() -> None:
    found = []
    for path in sorted(SERVER.rglob("*.py")):
        relative = path.relative_to(SERVER).as_posix()
        for line, source in variable_time_comparisons(path.read_text(encoding="utf-8")):
            if (relative, source) not in ALLOWED:
                found.append(f"server/{relative}:{line}: {source}")
    assert found == [], "use hmac.compare_digest, or add to ALLOWED with the reason:\n" + "\n".join(found)


def test_every_allowed_comparison_still_exists() -> None:
    # A stale entry would silently allow a new comparison that happens to read the same.
    sources = {
        (relative, source)
        for relative, _ in ALLOWED
        for _, source in variable_time_comparisons((SERVER / relative).read_text(encoding="utf-8"))
    }
    assert set(ALLOWED) <= sources

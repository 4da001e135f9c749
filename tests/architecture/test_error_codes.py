"""Every error ``code`` the project can return is in ``llmplatform.core.error_codes``.

The source is read as syntax (no imports), so a code raised anywhere, by any app or
edge, is found: a ``code="..."`` argument, a ``"code": "..."`` key, a ``code = "..."``
assignment, a parameter default ``code="..."``, the values of a ``*_CODES`` mapping, and
f-strings in those places (``f"{feature}_unsupported"`` must match a registered code).
DRF/Django ``ValidationError(code=...)`` is left out: those codes name a field's
failed rule inside ``details`` and never become the envelope's ``code``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmplatform.core.error_codes import ERROR_CODES

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
# Not the product: tests, benchmarks, tooling, and what is not Python source.
NOT_SOURCE = {"tests", "bench", "docs", "docker", "static", "templates", "node_modules", "var"}


@dataclass(frozen=True)
class Use:
    code: str | re.Pattern[str]
    where: str


def _source_files() -> Iterator[Path]:
    for top in sorted(ROOT.iterdir()):
        if top.name.startswith(".") or top.name in NOT_SOURCE:
            continue
        files = [top] if top.suffix == ".py" else sorted(top.rglob("*.py"))
        for path in files:
            if "migrations" not in path.relative_to(ROOT).parts:
                yield path


def _code(node: ast.AST) -> str | re.Pattern[str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = [
            re.escape(part.value) if isinstance(part, ast.Constant) else r"[a-z0-9_]+"
            for part in node.values
        ]
        return re.compile("".join(parts))
    return None


def _is_validation_error(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name == "ValidationError"


def _uses_in(tree: ast.AST) -> Iterator[tuple[ast.AST, int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and not _is_validation_error(node):
            yield from ((k.value, k.value.lineno) for k in node.keywords if k.arg == "code")
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "code":
                    yield value, value.lineno
        elif isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if "code" in targets:
                yield node.value, node.lineno
            if any(t.endswith("_CODES") for t in targets) and isinstance(node.value, ast.Dict):
                yield from ((v, v.lineno) for v in node.value.values)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.target.id.endswith("_CODES") and isinstance(node.value, ast.Dict):
                yield from ((v, v.lineno) for v in node.value.values)
        elif isinstance(node, ast.arguments):
            params = [*node.posonlyargs, *node.args]
            defaults = [None] * (len(params) - len(node.defaults)) + list(node.defaults)
            pairs = [
                *zip(params, defaults, strict=True),
                *zip(node.kwonlyargs, node.kw_defaults, strict=True),
            ]
            for param, default in pairs:
                if param.arg == "code" and default is not None:
                    yield default, default.lineno


def code_uses() -> list[Use]:
    uses = []
    for path in _source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, line in _uses_in(tree):
            code = _code(node)
            if code is not None:
                uses.append(Use(code, f"{path.relative_to(ROOT)}:{line}"))
    return uses


def _matches(use: Use, code: str) -> bool:
    return use.code == code if isinstance(use.code, str) else bool(use.code.fullmatch(code))


def test_every_code_the_source_returns_is_registered():
    unregistered = [
        f"{use.where}: {use.code if isinstance(use.code, str) else use.code.pattern}"
        for use in code_uses()
        if not any(_matches(use, code) for code in ERROR_CODES)
    ]
    assert not unregistered, (
        "Add these codes to llmplatform/core/error_codes.py (and the README's "
        "troubleshooting table):\n" + "\n".join(unregistered)
    )


def test_every_registered_code_is_used_somewhere():
    uses = code_uses()
    unused = [code for code in ERROR_CODES if not any(_matches(use, code) for use in uses)]
    assert not unused, f"Registered but returned nowhere (remove them): {unused}"


def test_the_scan_finds_codes_in_every_form_it_claims():
    # A guard on the scanner itself: if it stopped seeing a form, both tests above
    # would pass while proving nothing.
    found = {use.code for use in code_uses() if isinstance(use.code, str)}
    assert {"not_found", "validation_error", "session_conflict", "error"} <= found
    patterns = [use.code.pattern for use in code_uses() if not isinstance(use.code, str)]
    assert any(pattern.endswith("_unsupported") for pattern in patterns)


def test_every_entry_has_a_status_a_meaning_and_a_next_step():
    for code, entry in ERROR_CODES.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", code), code
        assert entry.status is None or 400 <= entry.status <= 599, code
        assert entry.meaning and entry.next_step, code


def readme_table() -> str:
    """The README's error-code table as the registry says it must read."""
    rows = ["| code | status | what it means | what to do next |", "|---|---|---|---|"]
    for code, entry in ERROR_CODES.items():
        status = "a document's `ingestion_error`" if entry.status is None else str(entry.status)
        rows.append(f"| `{code}` | {status} | {entry.meaning} | {entry.next_step} |")
    return "\n".join(rows)


def test_the_readme_lists_every_code_as_registered():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_table() in readme, (
        "The README's 'Error codes' table differs from llmplatform/core/error_codes.py; "
        "replace it with:\n\n" + readme_table()
    )

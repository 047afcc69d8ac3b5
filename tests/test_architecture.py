"""The import direction holds: ledger <- adapters, projections <- web <- cli/runtime."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def _violations(package: str, forbidden: set[str]) -> dict[str, set[str]]:
    return {f: names & forbidden for f, names in _imports(package).items() if names & forbidden}


def test_ledger_imports_no_edges():
    assert _violations("ledger", {"aiohttp", "paramiko", "click", "adapters", "projections",
                                  "sandbox", "cli", "runtime", "tests"}) == {}


def test_adapters_and_projections_do_not_import_each_other():
    assert _violations("adapters", {"projections", "cli", "runtime", "tests"}) == {}
    assert _violations("projections", {"adapters", "cli", "runtime", "tests"}) == {}


def test_nothing_imports_the_cli():
    for package in ("ledger", "adapters", "projections", "sandbox", "web"):
        assert _violations(package, {"cli", "tests"}) == {}, package


def test_web_is_an_edge_like_the_cli():
    # web may use ledger, adapters and projections; only cli and runtime may use web
    assert _violations("web", {"cli", "runtime", "sandbox", "tests", "click"}) == {}
    for package in ("ledger", "adapters", "projections", "sandbox"):
        assert _violations(package, {"web"}) == {}, package

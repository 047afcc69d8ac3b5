"""The import direction holds: ledger <- adapters, projections <- web <- runtime <- the
command line (cli.py and its commands/ package)."""
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
                                  "sandbox", "cli", "commands", "runtime", "tests"}) == {}


def test_adapters_and_projections_do_not_import_each_other():
    assert _violations("adapters", {"projections", "cli", "commands", "runtime", "tests",
                                    "click"}) == {}
    assert _violations("projections", {"adapters", "cli", "commands", "runtime", "tests",
                                       "click"}) == {}


def test_nothing_imports_the_cli():
    for package in ("ledger", "adapters", "projections", "sandbox", "web"):
        assert _violations(package, {"cli", "commands", "tests"}) == {}, package
    # commands/ is the command line's own package: cli.py uses it, never the reverse
    assert _violations("commands", {"cli", "web", "tests"}) == {}


def test_web_is_an_edge_like_the_cli():
    # web may use ledger, adapters and projections; only cli and runtime may use web
    assert _violations("web", {"cli", "commands", "runtime", "sandbox", "tests",
                               "click"}) == {}
    for package in ("ledger", "adapters", "projections", "sandbox"):
        assert _violations(package, {"web"}) == {}, package


# ---------------------------------------------------------------------- import cycles

PROJECT = ("ledger", "adapters", "projections", "sandbox", "commands")

# Imports known to close a cycle, each to be removed with its fix. Listed as edges, so any
# other cycle, or a new one through other modules, still fails.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()


def _modules(root: Path) -> dict[str, Path]:
    paths = list(root.glob("*.py")) + [p for package in PROJECT
                                       for p in (root / package).rglob("*.py")]
    modules = {}
    for path in paths:
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _type_checking_only(tree: ast.AST) -> set[ast.AST]:
    """Imports under `if TYPE_CHECKING:`: never executed, so they close no cycle."""
    return {node for block in ast.walk(tree)
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for statement in block.body for node in ast.walk(statement)}


def _import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the project's modules it imports, anywhere in the file (function-local
    imports included: they hide a cycle, they do not remove it)."""
    modules = _modules(root)

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        skip = _type_checking_only(tree)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(tree):
            if node in skip:
                continue
            if isinstance(node, ast.Import):
                targets |= {known(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets |= {known(f"{base}.{a.name}") if f"{base}.{a.name}" in modules
                            else known(base) for a in node.names}
        graph[module] = {t for t in targets if t and t != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_cycle_finder_sees_function_local_and_relative_imports(tmp_path):
    package = tmp_path / "ledger"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from ledger.b import g\n")
    (package / "b.py").write_text("from . import c\n")
    (package / "c.py").write_text("import ledger.a\n")
    (package / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                  "    from ledger.a import f\n")
    (package / "e.py").write_text("from ledger.d import x\n")
    (tmp_path / "top.py").write_text("import ledger.e\n")
    graph = _import_graph(tmp_path)
    (package / "a.py").write_text("import ledger.d\n")
    assert _cycles(graph) == [["ledger.a", "ledger.b", "ledger.c"]]
    assert _cycles(_import_graph(tmp_path)) == []      # d's TYPE_CHECKING import is no edge


def test_no_import_cycles_between_the_projects_modules():
    graph = _import_graph()
    for source, target in KNOWN_CYCLE_EDGES:
        graph.get(source, set()).discard(target)
    assert _cycles(graph) == [], "import cycle: move what both sides need into a third module"

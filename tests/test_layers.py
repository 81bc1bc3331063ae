"""The architecture, checked: imports go only downward, no cycles, one module starts openssl.

The layers are CONTRIBUTING.md's module map. Every import counts, at module level or
inside a function: a lazy import that breaks a cycle at run time is still a cycle in
the design. A module this table does not name is an operation (or a service under serve/),
so a new one needs no edit here unless it belongs lower or is a service.
Reads the source with `ast`; imports nothing of certwiz.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "certwiz"

MODEL = {"errors", "names", "durations", "der", "dershape"}
OPENSSL = {"openssl", "openssl_args", "render"}
STORE = {
    "fsutil",
    "profile",
    "database",
    "audit",
    "check",
    "recover",
    "journal",
    "derived",
    "transaction",
    "grace",
    "passphrase",
}
FACADE = {"api"}
# Long-running front ends over the façade; the rest of est/ (tokens, wire, proxy, and the
# agent with its parts) are operations that the CLI, nginx render and these services share.
SERVICES = {"ocsp.server", "est.service", "est.server"}
SERVICE_PACKAGES = ("serve",)
CLI = {"entry", "__main__"}
LAYERS = ["model", "openssl", "store", "operations", "facade", "services", "cli"]
# Where a process may be started: openssl here, nginx there. Nowhere else.
PROCESS_STARTERS = {"openssl", "nginx.control"}
PROCESS_CALLS = {"system", "popen", "spawnv", "spawnl", "execv", "execve", "execvp", "fork"}


def layer(module: str) -> str:
    """The layer of a module named relative to certwiz ("" is the package itself)."""
    top = module.split(".")[0]
    if module in MODEL:
        return "model"
    if module in OPENSSL:
        return "openssl"
    if module in STORE or module == "":
        return "store"
    if module in FACADE:
        return "facade"
    if top == "cli" or module in CLI:
        return "cli"
    if top in SERVICE_PACKAGES or module in SERVICES:
        return "services"
    return "operations"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> dict[str, int]:
    """The certwiz modules NAME imports (relative names), each with a line number."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "certwiz":
                module = (node.module or "").removeprefix("certwiz").lstrip(".")
            else:
                continue
            # `from . import x` names a module x; `from .m import f` names module m
            subs = [f"{module}.{a.name}".lstrip(".") for a in node.names]
            targets = [s for s in subs if s in known] or [module]
        elif isinstance(node, ast.Import):
            targets = [
                a.name.removeprefix("certwiz").lstrip(".")
                for a in node.names
                if a.name.split(".")[0] == "certwiz"
            ]
        for target in targets:
            if target in known and target != name:
                found.setdefault(target, node.lineno)
    return found


def graph() -> dict[str, dict[str, int]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_the_table_sees_the_package() -> None:
    edges = graph()
    assert {"api", "issue", "transaction", "openssl", "cli", "cli.common"} <= edges.keys()
    assert "transaction" in edges["issue"]  # the parser resolves relative imports
    assert "api" in edges["cli.common"]


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_imports_only_go_downward() -> None:
    upward = [
        f"certwiz/{name.replace('.', '/') or '__init__'}.py:{line} ({layer(name)}) "
        f"imports {target} ({layer(target)})"
        for name, targets in graph().items()
        for target, line in targets.items()
        if LAYERS.index(layer(target)) > LAYERS.index(layer(name))
    ]
    assert upward == []


def test_only_two_modules_start_processes() -> None:
    starters = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            hit = (
                isinstance(node, ast.Import | ast.ImportFrom)
                and any(
                    (getattr(node, "module", None) or a.name).split(".")[0]
                    in ("subprocess", "multiprocessing", "pty")
                    for a in node.names
                )
            ) or (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and node.attr in PROCESS_CALLS
            )
            if hit:
                starters.append(name)
                break
    assert sorted(starters) == sorted(PROCESS_STARTERS)


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b": 1}, "b": {"a": 2}}, [["a", "b"]]),
        ({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}, [["a", "b", "c"]]),
        ({"a": {"b": 1}, "b": {}}, []),
    ],
)
def test_the_cycle_finder_finds_cycles(
    edges: dict[str, dict[str, int]], expected: list[list[str]]
) -> None:
    assert cycles(edges) == expected


def test_an_upward_import_is_seen(tmp_path: Path) -> None:
    """A store module importing the façade would be reported (the check can fail)."""
    source = tmp_path / "transaction.py"
    source.write_text("from . import api\nfrom .cli import common\n")
    found = imports("transaction", source, {"api": source, "cli.common": source})
    assert found == {"api": 1, "cli.common": 2}
    assert all(LAYERS.index(layer(t)) > LAYERS.index(layer("transaction")) for t in found)


def test_only_the_cli_asks_on_a_terminal() -> None:
    """The library takes passphrases as values or providers; prompting is the CLI's."""
    asking = []
    for name, path in modules().items():
        if layer(name) == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and (
                (isinstance(node.func, ast.Name) and node.func.id == "input")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "getpass")
            ):
                asking.append(f"{name}:{node.lineno}")
    assert asking == []

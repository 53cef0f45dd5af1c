"""The import structure of src/servecheck: layers that only point down, and no import circles.

Every import is read with `ast` (top-level, inside functions, under `if TYPE_CHECKING:`), so a
circle hidden in a function or an annotation counts. A unit is a top-level module or package of
servecheck (`api`, `plan`, `hardware`, ...); LAYERS orders them from the bottom up, and a unit
may import only units on a lower layer. Separately, no two modules (files) may import each
other, directly or round a longer loop.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "servecheck"

# The layers, bottom first. A unit imports only units on lower layers (never sideways).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "findings", "knowledge"),  # the bottom: findings any stage may report, data
    ("versions",),  # vLLM releases and the behaviour keyed by them
    ("core",),  # shared plain types: Target, CpuFacts, module-kind order
    ("host", "source"),  # reading the machine (edge facts) and the checkpoint
    ("model",),  # the model as vLLM builds it
    ("quant",),  # quantization config and per-module resolution
    ("checks",),  # the audit of stored tensors
    ("hardware",),  # kernels, MoE and attention backends on the target
    ("check_result",),  # what the check stages found
    ("summary", "plan", "fix", "explain"),  # stages that start from a check result, or a log
    ("compare", "smoke", "launch"),  # stages built on the ones below; vLLM launch arguments
    ("report",),  # the check report with its plan and fix attached
    ("api", "targets"),  # the library surface; the --gpu option turned into a Target
    ("render",),  # text, markdown and JSON of each command
    ("cli_options",),  # the options the commands share, and how MODEL is read
    ("commands",),  # one thin module per CLI command
    ("cli",),
    ("__main__",),
)

# Imports that break the rules above and are being removed by the stream named. Empty now;
# an entry is (importing unit, imported unit): "why, and who removes it".
ALLOWED: dict[tuple[str, str], str] = {}

# Circles between modules inside one package, being removed by the stream named. Empty now;
# an entry is frozenset of modules: "why, and who removes it".
ALLOWED_CIRCLES: dict[frozenset[str], str] = {}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imported(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(servecheck module imported, line) for every import statement in the file."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, *([node.module] if node.module else [])])
            names = [f"{base}.{alias.name}" for alias in node.names] or [base]
        else:
            continue
        for name in names:
            target = _owner(name)
            if target is not None and target != module:
                yield target, node.lineno


def _owner(name: str) -> str | None:
    """The module a dotted import name lands in (`servecheck.plan.Plan` -> `servecheck.plan`)."""
    while name:
        if name in MODULES:
            return name
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return None


def _edges() -> dict[str, dict[str, int]]:
    return {m: dict(_imported(m, p)) for m, p in MODULES.items()}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_unit_has_a_layer():
    declared = {u for layer in LAYERS for u in layer}
    units = {_unit(m) for m in MODULES} - {"__init__"}
    assert not units - declared, f"declare these in LAYERS: {sorted(units - declared)}"
    assert not declared - units, f"LAYERS names units that do not exist: {declared - units}"


def test_imports_point_down():
    rank = {u: i for i, layer in enumerate(LAYERS) for u in layer}
    rank["__init__"] = -1  # servecheck/__init__.py: the version string, importing nothing
    wrong = []
    for module, targets in _edges().items():
        for target, line in targets.items():
            a, b = _unit(module), _unit(target)
            if a == b or (a, b) in ALLOWED:
                continue
            if rank[b] >= rank[a]:
                side = "sideways" if rank[a] == rank[b] else "upward"
                wrong.append(f"{module}:{line} imports {target} ({side}: {a} -> {b})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_import_circles_between_modules():
    edges = _edges()
    circles = [c for c in _strongly_connected(edges) if frozenset(c) not in ALLOWED_CIRCLES]
    assert not circles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_no_import_circles_between_units():
    units: dict[str, dict[str, int]] = {}
    for module, targets in _edges().items():
        for target in targets:
            if _unit(module) != _unit(target):
                units.setdefault(_unit(module), {})[_unit(target)] = 0
    assert not _strongly_connected(units)


def _package(module: str) -> str:
    """The package a module belongs to; a top-level module (`servecheck.api`) is its own."""
    if module.count(".") <= 1 or MODULES[module].name == "__init__.py":
        return module
    return module.rsplit(".", 1)[0]


def test_no_import_circles_between_packages():
    """Sub-packages too: `render` and `render.check` may not import each other, whichever
    modules carry the two imports (a package's own __init__.py belongs to it)."""
    packages: dict[str, dict[str, int]] = {}
    for module, targets in _edges().items():
        for target in targets:
            a, b = _package(module), _package(target)
            if a != b:
                packages.setdefault(a, {})[b] = 0
    circles = _strongly_connected(packages)
    assert not circles, "package circles:\n" + "\n".join(" <-> ".join(c) for c in circles)


def test_the_checker_sees_function_and_type_checking_imports(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from servecheck.plan import Plan\n"
        "def f():\n    from servecheck.api import check\n"
        "from . import versions\n"
    )
    found = {t for t, _ in _imported("servecheck.probe", path)}
    assert found == {"servecheck.plan", "servecheck.api", "servecheck.versions"}
    assert _strongly_connected({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [
        ["a", "b", "c"]
    ]


def _strongly_connected(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm: every group of two or more nodes that reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return out


MAX_LINES = 600  # any module in src/
MAX_COMMAND_LINES = 80  # a module under commands/: parse options, one library call, render


def _too_long(paths: list[Path], limit: int) -> list[str]:
    counts = {p: len(p.read_text(encoding="utf-8").splitlines()) for p in paths}
    return [f"{p.relative_to(SRC.parent)}: {n} lines" for p, n in counts.items() if n > limit]


def test_modules_are_small():
    long = _too_long(list(MODULES.values()), MAX_LINES)
    assert not long, f"split these (over {MAX_LINES} lines):\n" + "\n".join(long)


def test_commands_are_thin():
    commands = sorted((SRC / "commands").glob("*.py"))
    assert len(commands) > 5
    long = _too_long(commands, MAX_COMMAND_LINES)
    assert not long, "move option definitions or rendering out of:\n" + "\n".join(long)

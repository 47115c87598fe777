"""The layering rule of DESIGN.md, checked on the source: imports point down the stack, no import
cycle among project modules, and no module imports another app's tasks (tasks are sent by name
through mmproject.jobs). Function-level imports count as much as module-level ones."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# From the bottom of the stack; apps on one level may not import each other either.
LAYERS = {"mmproject": 0, "ledger": 1, "exchanges": 2, "intents": 3, "strategy": 4, "orders": 5,
          "reconciliation": 6, "api": 6, "demo": 6}
# The imports allowed to point up, each with its reason in docs/decisions.md.
ALLOWED_UP = {("strategy.order_rows", "orders.models")}


def project_modules() -> dict[str, Path]:
    modules = {}
    for app in LAYERS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports (an imported name resolves to the longest module prefix)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_among_project_modules():
    assert cycles(graph()) == []


def test_imports_point_down_the_stack():
    up = sorted((a, b) for a, targets in graph().items() for b in targets
                if LAYERS[b.split(".")[0]] >= LAYERS[a.split(".")[0]] and a.split(".")[0] != b.split(".")[0]
                and (a, b) not in ALLOWED_UP)
    assert up == [], "imports that point up (or sideways) the stack of DESIGN.md"


def test_no_module_imports_another_apps_tasks():
    crossing = sorted((a, b) for a, targets in graph().items() for b in targets
                      if b.endswith(".tasks") and b.split(".")[0] != a.split(".")[0])
    assert crossing == [], "send tasks by name through mmproject.jobs"


def test_the_checker_sees_a_cycle_and_an_upward_import():
    # The rule can fail: a cycle and a function-level upward import are found.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    source = "def f():\n    from orders.models import MarketMakingOrder\n"
    path = ROOT / "tests" / "_layers_probe.py"
    try:
        path.write_text(source)
        modules = {**project_modules(), "ledger._probe": path}
        assert "orders.models" in imports_of("ledger._probe", path, modules)
    finally:
        path.unlink()

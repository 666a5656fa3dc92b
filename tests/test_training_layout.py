"""Layout contracts of training/ (issue 16): no import cycle between its modules (module-level and
function-level imports alike), no import of another module's private name, budget/ independent
of the rest of training, no source file over 500 lines."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "training"


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return out


def _imports(mods: dict[str, tuple[Path, bool]]) -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """(intra-package edges, private names imported from another module)."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for mod, (f, is_pkg) in mods.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    parts = parts[:len(parts) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for a in node.names:
                    target = f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                    if target in mods and target != mod:
                        edges[mod].add(target)
                    if a.name.startswith("_") and base != "__future__":
                        private.append((mod, base, a.name))
            elif isinstance(node, ast.Import):
                edges[mod] |= {a.name for a in node.names if a.name in mods and a.name != mod}
    # importing a submodule runs its package's __init__ first; a package __init__ that imports its
    # own submodules is therefore no cycle with them: edges from a module to its ancestors are dropped
    return {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in edges.items()}, private


def test_training_has_no_import_cycle_and_imports_no_private_name():
    mods = _modules()
    edges, private = _imports(mods)
    assert not private, private
    state: dict[str, int] = {}
    cycles = []

    def visit(u: str, stack: list[str]) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(edges[u]):
            if state.get(v) == 1:
                cycles.append(stack[stack.index(v):] + [v])
            elif not state.get(v):
                visit(v, stack)
        stack.pop()
        state[u] = 2

    for m in sorted(mods):
        if not state.get(m):
            visit(m, [])
    assert not cycles, cycles


def test_budget_imports_nothing_else_from_training():
    edges, _ = _imports(_modules())
    outside = {(m, t) for m, ts in edges.items() if m.startswith("training.budget") for t in ts
               if not t.startswith("training.budget")}
    assert not outside, outside


def test_no_training_source_file_is_over_500_lines():
    long = {str(f.relative_to(ROOT)): n for f in PKG.rglob("*.py") if (n := len(f.read_text().splitlines())) > 500}
    assert not long, long

"""The architecture as a contract (README "Architecture"), read from the source with `ast`.

- no module of neurosim/, training/ or mapping/ over 500 lines;
- imports run one way: training -> neurosim, mapping -> neurosim, neurosim.cli -> everything;
  neurosim outside neurosim/cli/ (and __main__) imports neither training, mapping, assets nor neurosim.cli;
- training/budget/ (the Gruslys planning and execution) imports nothing else from training;
- no module imports another module's private (`_name`) names;
- no import cycle between the modules of one package (function-level imports count too).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("neurosim", "training", "mapping")
MODULES = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
           for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports(module: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import statement, at any depth."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.append((sub, None, node.lineno) if sub in MODULES else (source, alias.name, node.lineno))
    return found


def top(module: str) -> str:
    """The layer of a module; `python -m neurosim` (neurosim.__main__) belongs to the command line."""
    cli = module in ("neurosim.cli", "neurosim.__main__") or module.startswith("neurosim.cli.")
    return "neurosim.cli" if cli else module.split(".")[0]


FORBIDDEN = {"neurosim": {"training", "mapping", "assets", "neurosim.cli"},
             "mapping": {"training", "neurosim.cli"}, "training": {"mapping", "neurosim.cli"}, "neurosim.cli": set()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_short_and_imports_one_way(module):
    lines = MODULES[module].read_text().count("\n")
    assert lines <= 500, f"{MODULES[module].relative_to(ROOT)} has {lines} lines (limit 500)"
    for target, name, line in imports(module):
        assert top(target) not in FORBIDDEN[top(module)], f"{module}:{line} imports {target} (against the direction)"
        if module.startswith("training.budget"):
            assert not target.startswith("training.") or target.startswith("training.budget"), \
                f"{module}:{line} imports {target}: budget/ stands alone"
        private = name is not None and name.startswith("_") and not name.startswith("__")
        assert not (private and target in MODULES and target != module), \
            f"{module}:{line} imports the private name {name} of {target}"


def test_no_import_cycle_inside_a_package():
    graph = {m: {t for t, _, _ in imports(m) if t in MODULES and t != m and top(t) == top(m)} for m in MODULES}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(t):] + [t]))
            if t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)

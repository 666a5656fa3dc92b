"""A command that needs an optional dependency which is not installed says, in one line with
exit code 2, which extra of neurosim brings it (neurosim.cli.extras), instead of an
ImportError traceback.

Each case runs ``python -m neurosim`` in a subprocess with the package made unimportable
(``sys.modules[name] = None``: ``import name`` then raises ModuleNotFoundError, as in an
environment from ``pip install .`` without the extra). Before the hook in neurosim.cli.app,
`train`, `demo`, `export --to nir` and `--to brian2` ended in a traceback (exit 1) or advised a bare
`pip install brian2`; `--backend numba` already named its extra (kept here as a guard).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from neurosim.cli.extras import EXTRAS, missing_extra_message

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = os.path.join(ROOT, "assets", "small_lif.h5")


def _run_without(module: str, argv: list[str]) -> subprocess.CompletedProcess:
    code = (f"import sys; sys.modules[{module!r}] = None\n"
            "from neurosim.cli import main\n"
            f"sys.exit(main({argv!r}))\n")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


@pytest.mark.parametrize("module,argv,extra", [
    ("torch", ["train", "--task", "digits", "--out", "{tmp}/run"], "train"),
    ("torch", ["demo", "--out", "{tmp}/demo"], "train"),
    ("nir", ["export", SMALL, "--to", "nir", "--out", "{tmp}/m.nir"], "mapping"),
    ("brian2", ["export", SMALL, "--to", "brian2", "--out", "{tmp}/m.py"], "mapping"),
    ("numba", ["simulate", SMALL, "--steps", "5", "--backend", "numba", "--out", "{tmp}/r.h5"], "fast"),
], ids=["train-torch", "demo-torch", "export-nir", "export-brian2", "simulate-numba"])
def test_a_missing_extra_is_named_in_one_line(tmp_path, module, argv, extra):
    proc = _run_without(module, [a.replace("{tmp}", str(tmp_path)) for a in argv])
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("neurosim: error:"), proc.stderr
    assert f"neurosim[{extra}]" in lines[0] and module in lines[0]
    assert "Traceback" not in proc.stderr
    assert sorted(os.listdir(tmp_path)) == []  # nothing written


def test_an_import_error_of_another_module_stays_a_traceback():
    """Only the optional dependencies of EXTRAS get the one-line advice; any other ImportError is
    a bug of this installation and keeps its traceback."""
    assert missing_extra_message(ModuleNotFoundError("No module named 'numpyy'", name="numpyy"), "x") is None
    try:
        try:
            raise ModuleNotFoundError("No module named 'nir'", name="nir")
        except ImportError as inner:
            raise ImportError("mapping.nir_graph needs the 'nir' package") from inner
    except ImportError as outer:
        line = missing_extra_message(outer, "export")
    assert line == ("export: needs the 'nir' package, which is not installed here; install it with: "
                    "pip install 'neurosim[mapping]'")
    broken = ImportError("cannot import name 'LIF' from 'nir'", name="nir")
    assert "installed but does not import (cannot import name 'LIF' from 'nir')" in missing_extra_message(broken, "x")
    assert {EXTRAS[m] for m in ("torch", "nir", "brian2", "numba", "cupy")} == {"train", "mapping", "fast", "gpu"}

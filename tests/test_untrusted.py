"""Untrusted files are data, never code: checkpoints load with torch's weights_only and are
type-checked, archives refuse pickled objects, HDF5 attributes are type-checked before use;
and a source scan keeps it so (every torch.load with weights_only=True, every np.load with
allow_pickle=False, no pickle module, HDF5 attributes read only by the checked readers)."""
from __future__ import annotations

import ast
from pathlib import Path

import h5py
import numpy as np
import pytest

from neurosim.cli import main

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--task", "digits", "--hidden", "8", "--n-train", "20", "--n-test", "10", "--epochs", "2",
         "--no-progress", "--device", "cpu"]


class _Payload:
    """Unpickling this runs code: it creates the file `marker`."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The checkpoint of a 2-epoch run as it was after its first epoch."""
    torch = pytest.importorskip("torch")
    run = tmp_path_factory.mktemp("run")
    assert main([*TRAIN, "--out", str(run)]) == 0
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state.update(epoch=0, history=state["history"][:1])
    torch.save(state, run / "first.pt")
    return run / "first.pt"


def test_the_intact_checkpoint_resumes(tmp_path, checkpoint):
    import shutil

    shutil.copyfile(checkpoint, tmp_path / "checkpoint.pt")
    assert main([*TRAIN, "--out", str(tmp_path), "--resume"]) == 0


def _resume(run: Path, capsys) -> str:
    assert main([*TRAIN, "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(run / "checkpoint.pt") in err
    return err


def test_code_in_a_checkpoint_never_runs(tmp_path, checkpoint, capsys):
    import torch

    state = torch.load(checkpoint, weights_only=True)
    state["history"] = _Payload(str(tmp_path / "ran"))
    torch.save(state, tmp_path / "checkpoint.pt")
    err = _resume(tmp_path, capsys)
    assert "not a readable neurosim checkpoint" in err and "UnpicklingError" in err
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("change,message", [
    (lambda s: s.pop("model"), "model: expected a state dict"),
    (lambda s: s.update(epoch=True), "epoch: expected a whole number"),
    (lambda s: s.update(epoch=7), "epoch: the run has done 8 epochs, more than --epochs 2"),
    (lambda s: s.update(epoch=-1), "epoch: expected a whole number >= 0"),
    (lambda s: s.update(history=["a"]), "history: expected 1 rows"),
    (lambda s: s["history"][0].update(train_loss="x"), "history: expected 1 rows"),
    (lambda s: s["model"].update({"weights.in_hidden": s["model"]["weights.in_hidden"][:2]}), "model: does not fit"),
    (lambda s: s["model"].pop("weights.hidden_out"), "model: does not fit"),
    (lambda s: s["optimizer"].update(param_groups=[]), "optimizer: does not fit"),
    (lambda s: s["optimizer"]["state"][0].update(exp_avg=s["optimizer"]["state"][0]["exp_avg"][:1]),
     "optimizer: state 'exp_avg' of shape"),
], ids=["no-model", "bool-epoch", "epoch-range", "negative-epoch", "history-rows", "history-values", "weight-shape", "weight-missing",
        "optimizer-groups", "optimizer-moments"])
def test_malformed_checkpoints_are_refused_in_one_line(tmp_path, checkpoint, capsys, change, message):
    import torch

    state = torch.load(checkpoint, weights_only=True)
    change(state)
    torch.save(state, tmp_path / "checkpoint.pt")
    assert message in _resume(tmp_path, capsys)


def test_object_arrays_in_an_input_archive_are_never_unpickled(tmp_path, capsys):
    from neurosim.cli import load_inputs
    from neurosim.errors import FileFormatError

    archive = tmp_path / "in.npz"
    np.savez(archive, x=np.array([_Payload(str(tmp_path / "ran"))], dtype=object))
    with pytest.raises(FileFormatError, match="x: expected an array of numbers or booleans, got Python objects"):
        load_inputs(str(archive))
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("value,dtype,message", [
    (7, None, "expected one of"),
    (np.array([b"neurosim.network", b"x"]), None, "expected one of"),
    (np.zeros((), [("a", "i4")]), None, "HDF5 type class compound"),
    (np.bytes_(b"\xff\xfe"), None, "UTF-8"),
    ("neurosim.network", h5py.string_dtype(), None),  # a variable-length string is a string: accepted
], ids=["int", "array", "compound", "not-utf8", "vlen"])
def test_info_type_checks_the_format_attribute(tmp_path, capsys, value, dtype, message):
    import neurosim as ns
    from helpers import random_network

    path = tmp_path / "m.h5"
    ns.save(random_network(0), path)
    with h5py.File(path, "r+") as f:
        del f.attrs["format"]
        f.attrs.create("format", value if value is not None else 0, dtype=dtype)
    code = main(["info", str(path)])
    err = capsys.readouterr().err
    if message is None:
        assert code == 0
        return
    assert code == 2 and err.count("\n") == 1 and f"{path}:@format" in err and message in err


# ------------------------------------------------------------------------------- source scan
ATTR_READERS = {("neurosim/h5read.py", "attr")}  # (file, function): the one checked reader


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node, node.func.attr, ast.unparse(node.func.value)


def _keyword(call: ast.Call, name: str):
    return next((k.value.value for k in call.keywords if k.arg == name and isinstance(k.value, ast.Constant)), None)


def _scan(path: Path, rel: str) -> list[str]:
    """Violations in one source file (`rel`: its path from the repository root)."""
    problems = []
    tree = ast.parse(path.read_text(), rel)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            if any(n and n.split(".")[0] in ("pickle", "dill", "marshal", "cloudpickle") for n in names):
                problems.append(f"{rel}:{node.lineno}: imports a pickle module")
    for call, name, owner in _calls(tree):
        if name == "load" and owner == "torch" and _keyword(call, "weights_only") is not True:
            problems.append(f"{rel}:{call.lineno}: torch.load without weights_only=True")
        if name == "load" and owner in ("np", "numpy") and _keyword(call, "allow_pickle") is not False:
            problems.append(f"{rel}:{call.lineno}: np.load without allow_pickle=False")
    for func in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        if (rel, func.name) in ATTR_READERS:
            continue
        for node in ast.walk(func):
            reads = (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
                     and ast.unparse(node.value).endswith(".attrs"))
            gets = (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("get", "items", "values")
                    and ast.unparse(node.func.value).endswith(".attrs"))
            if reads or gets:
                problems.append(f"{rel}:{node.lineno}: reads an HDF5 attribute outside the checked readers")
    return problems


def test_no_loader_unpickles_or_reads_attributes_unchecked():
    problems = [p for path in sorted(q for d in ("neurosim", "training", "mapping") for q in (ROOT / d).rglob("*.py"))
                for p in _scan(path, str(path.relative_to(ROOT)))]
    assert not problems, "\n".join(problems)


def test_the_scan_finds_what_it_forbids(tmp_path):
    """The scan is not vacuous: each planted violation is reported."""
    probe = tmp_path / "probe.py"
    probe.write_text("import pickle\nimport numpy as np\nimport torch\n\ndef f(g):\n"
                     "    torch.load('x')\n    np.load('y')\n    return g.attrs['k'], g.attrs.get('j')\n")
    found = _scan(probe, "mapping/probe.py")
    assert [line.split(": ", 1)[1] for line in found] == [
        "imports a pickle module", "torch.load without weights_only=True", "np.load without allow_pickle=False",
        "reads an HDF5 attribute outside the checked readers", "reads an HDF5 attribute outside the checked readers"]

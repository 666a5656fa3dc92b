"""Every loader under fuzzing (tests/fuzzing.py): a short hypothesis budget per target here
(`make fuzz` runs thousands), and one regression case per bug fuzzing found. Cases run in a
worker subprocess with a memory limit and a time limit, so a crash, a hang or an unbounded
allocation fails the test instead of the test process."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fuzzing import STEPS, TARGETS, Tally, Worker, fuzz_target, make_seeds, write_case

pytest.importorskip("nir")

EXAMPLES = 100  # per target: 1 to 4 s each on the 2-core machine


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, Path]:
    return make_seeds(tmp_path_factory.mktemp("seeds"))


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.close()


@pytest.fixture(scope="module")
def tally(request):
    t = Tally()
    yield t
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and t.cases:
        reporter.write_line("")
        reporter.write_line(t.report())


@pytest.mark.parametrize("target", TARGETS)
def test_fuzzed_files_load_or_are_refused_naming_the_file(target, seeds, worker, tally, tmp_path):
    def fail(outcome, ops):
        pytest.fail(f"{outcome.detail}\nmutations: {ops}")

    fuzz_target(target, seeds, tmp_path, worker, tally, EXAMPLES, fail, derandomize=True)
    assert tally.cases[target] == EXAMPLES
    kinds = tally.kinds[target]
    assert kinds["ok"] > 0 and kinds["error"] > 0  # the mutations reach both outcomes


# --------------------------------------------------------------------- regressions, one per bug
HUGE = {"op": "huge", "shape": [10**12], "layout": "chunked", "compress": False}
REGRESSIONS = [
    # (target, mutations, what the refusal says); each raised something else before its fix
    ("nir", [{**HUGE, "path": "/node/nodes/in_hidden/weight"}], "claims shape"),  # MemoryError
    ("nir", [{"op": "link", "path": "/node", "what": "external"}], "ExternalLink"),  # KeyError
    ("nir", [{"op": "link", "path": "/node/nodes/out/type", "what": "soft"}], "SoftLink"),  # RecursionError
    ("nir", [{"op": "dataset", "path": "/node/nodes/hidden/metadata/neurosim.rho", "dtype": "vlen_str",
              "shape": [], "fill": "zero"}], "neurosim.rho: expected finite numbers"),  # ValueError
    ("nir", [{"op": "dataset", "path": "/node/nodes/hidden_out/metadata/neurosim.sparse", "dtype": "uint64",
              "shape": [1, 1, 4], "fill": "negative"}], "neurosim.sparse: expected a finite number"),  # TypeError
    ("nir", [{"op": "dataset", "path": "/node/nodes/out_out/shape", "dtype": "float32", "shape": [4, 3, 3],
              "fill": "huge"}], "out_out.shape: expected whole numbers"),  # OverflowError
    ("nir", [{"op": "dataset", "path": "/node/nodes/hidden/metadata/neurosim.refractory", "dtype": "int8",
              "shape": [1, 1], "fill": "negative"}], "neurosim.refractory: expected a number or 10"),  # TypeError
    ("nir", [{"op": "dataset", "path": "/node/nodes/hidden/metadata/neurosim.refractory", "dtype": "int8",
              "shape": [3], "fill": "zero"}], "neurosim.refractory: expected a number or 10"),  # ValueError
    ("nir", [{"op": "dataset", "path": "/node/nodes/in_hidden/weight", "dtype": "vlen_str", "shape": [],
              "fill": "zero"}], "cannot read a NIR Linear node"),  # AttributeError in nir's constructor
    ("netx", [{"op": "link", "path": "/layer/1/neuron/vThMant", "what": "external"}], "ExternalLink"),  # KeyError
    ("netx", [{**HUGE, "path": "/layer/1/neuron/vThMant", "shape": [3 * 10**9]}], "claims shape"),  # MemoryError
    ("netx", [{"op": "flip", "at": 19.5 / 15680, "xor": 199}], "cannot be read (RuntimeError"),  # RuntimeError
    ("netx", [{"op": "attr", "path": "/layer/2@name", "dtype": "vlen_str", "shape": [], "fill": "zero"}],
     "/layer: populations.name"),  # NetworkError without the file
    ("npz", [{"op": "header", "key": "in", "shape": [10**12, 12], "data": 92}], "byte limit"),  # MemoryError
    ("npz", [{"op": "header", "key": "poi", "shape": [10**12, 12], "data": 92},
             {"op": "array", "key": "poi", "dtype": "bool", "shape": [STEPS, 2, 12], "fill": "zero"}],
     "byte limit"),  # MemoryError: a duplicate name, the checked member was not the one read
    ("npz", [{"op": "header", "key": "poi", "shape": [STEPS, 2, 12], "data": STEPS * 24},
             {"op": "array", "key": "poi", "dtype": "bool", "shape": [STEPS, 2, 12], "fill": "zero"}],
     "appears twice"),
    ("npz", [{"op": "bomb", "key": "in", "steps": 3 * 10**6}, {"op": "flip", "at": 0.4778633044206127, "xor": 53}],
     "in.npz"),  # zlib.error
]


@pytest.mark.parametrize("target,ops,message", REGRESSIONS, ids=[f"{t}-{k}" for k, (t, _, _) in enumerate(REGRESSIONS)])
def test_fuzzing_regressions(target, ops, message, seeds, worker, tmp_path):
    import shutil

    shutil.copyfile(seeds["network"].parent / "model.h5", tmp_path / "model.h5")
    path = tmp_path / ("in.npz" if target == "npz" else f"case.{target}")
    write_case(target, seeds[target], path, ops)
    outcome = worker.run(target, path, tmp_path)
    assert outcome.kind == "error", outcome.detail
    assert message in outcome.detail and str(path) in outcome.detail


def _free_space_size_zero(path: Path) -> None:
    """Set the free-space object of the file's global heap collection to size 0, the
    corruption on which HDF5 1.14 loops forever."""
    data = bytearray(path.read_bytes())
    at = data.find(b"GCOL")
    assert at >= 0, "no global heap in the file"
    size, p = int.from_bytes(data[at + 8:at + 16], "little"), 16
    while True:
        index = int.from_bytes(data[at + p:at + p + 2], "little")
        length = int.from_bytes(data[at + p + 8:at + p + 16], "little")
        if index == 0:
            data[at + p + 8:at + p + 16] = bytes(8)
            break
        p += 16 + (length + 7) // 8 * 8
        assert p < size
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("target,ops", [
    ("netx", [{"op": "attr", "path": "/layer/1@name", "dtype": "vlen_str", "shape": [], "fill": "zero"}]),
    ("nir", []),
    ("network", [{"op": "attr", "path": "/@name", "dtype": "vlen_str", "shape": [], "fill": "zero"}]),
], ids=["netx", "nir", "network"])
def test_corrupt_global_heap_is_refused_not_a_hang(target, ops, seeds, worker, tmp_path):
    """A flipped byte in a global heap collection hung read_netx (fuzzing); NIR files keep all
    their strings there, and a network file may have a variable-length string attribute."""
    path = tmp_path / f"case.{target}"
    write_case(target, seeds[target], path, ops)
    _free_space_size_zero(path)
    outcome = worker.run(target, path, tmp_path, seconds=20)
    assert outcome.kind == "error", outcome.detail
    assert "global heap collection" in outcome.detail and str(path) in outcome.detail


def test_npz_zip_version_is_refused(seeds, tmp_path):
    """zipfile's NotImplementedError (a member needing zip version 23.7) escaped np.load."""
    from neurosim.cli import load_inputs
    from neurosim.errors import FileFormatError

    data = bytearray(seeds["npz"].read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central + 6] = 237
    bad = tmp_path / "v.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match=f"{bad}.*zip file version"):
        load_inputs(str(bad))


def test_npz_unparsable_header_is_refused(tmp_path):
    """numpy's header parser raised tokenize.TokenError on an unclosed header dict."""
    from neurosim.cli import load_inputs
    from neurosim.errors import FileFormatError

    head = b"{'descr': '|b1', 'fortran_order': False, 'shape': (30,"
    head += b" " * (118 - len(head)) + b"\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("in.npy", b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head)
    path = tmp_path / "t.npz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(FileFormatError, match="t.npz:in: unreadable npy header"):
        load_inputs(str(path))


def test_npz_size_limit_is_explicit(tmp_path):
    from neurosim.cli import load_inputs
    from neurosim.errors import FileFormatError

    path = tmp_path / "x.npz"
    np.savez(path, big=np.zeros((100, 10), bool), ok=np.zeros(3))
    assert load_inputs(str(path), max_bytes=1000)["big"].shape == (100, 10)
    with pytest.raises(FileFormatError, match=r"x.npz:big: declares shape \(100, 10\) of bool \(1000 bytes\), more "
                                              r"than the 999-byte limit"):
        load_inputs(str(path), max_bytes=999)
    buf, npy = io.BytesIO(), io.BytesIO()
    np.lib.format.write_array(npy, np.zeros(3))
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok.npy", npy.getvalue())
        zf.writestr("notes.txt", b"hello")
    path.write_bytes(buf.getvalue())
    with pytest.raises(FileFormatError, match="x.npz:notes.txt: expected only .npy arrays"):
        load_inputs(str(path))

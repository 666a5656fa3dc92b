"""Fuzzing of every file loader, with hypothesis drawing the mutations.

Targets: neurosim network and result files (neurosim.storage.load / load_result, and the
``neurosim info`` command that sniffs their format first), NIR files (mapping.read_nir), NetX
files (mapping.read_netx) and the input archive of ``neurosim simulate --input IN.npz`` (the
whole command, which must also leave no output behind on failure).

A case is a valid seed file plus a list of mutations: flipped bytes, truncation, objects
deleted or added, datasets and attributes replaced by other dtypes, shapes and values (NaN,
inf, huge numbers, non-UTF-8 text, compound and variable-length types), datasets that declare
huge sizes (10**12 elements) without the data, links to elsewhere; for archives, arrays of
other dtypes and shapes, npy headers that declare huge shapes, corrupt or non-npy members,
zip bombs. Each must load or raise a NeurosimError whose message names the file.

Cases run in a worker subprocess (one per batch of cases, restarted after a crash) with an
address-space limit (WORKER_MEMORY); a crash of the interpreter, a case that exceeds its time
limit, a MemoryError, any other exception, or output left behind is a bug.

``python tests/fuzzing.py --examples N`` runs a campaign (what ``make fuzz`` does) that keeps
going after bugs and reports the cases tried and the distinct bugs found per target.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("network", "result", "info", "nir", "netx", "npz")
WORKER_MEMORY = 2 << 30  # bytes of address space a worker may map; an unbounded allocation fails
CASE_SECONDS = 20.0  # a case that takes longer hangs
DT = 1e-3
STEPS = 30  # `neurosim simulate --steps` of the npz target

# ==================================================================================== seeds


def make_seeds(folder: Path) -> dict[str, Path]:
    """Valid files of every target in `folder` (plus model.h5, the npz target's network)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import random_network

    import neurosim as ns
    from mapping.netx import to_netx
    from mapping.nir_graph import write_nir
    from training.nets import recurrent_network

    folder.mkdir(parents=True, exist_ok=True)
    net = random_network(4)
    paths = {t: folder / f"seed.{t}" for t in TARGETS}
    ns.save(net, paths["network"])
    ns.save(net, paths["info"])
    inputs = {"in": np.random.default_rng(0).random((STEPS, 2, 12)) < 0.2}
    ns.save_result(ns.simulate(net, inputs, STEPS, traces={"lif": ["v"]}), paths["result"])
    write_nir(recurrent_network(4, 10, 2, model="alif", seed=0), paths["nir"], extensions=True)
    chain = ns.Network(dt=DT, inputs=[ns.SpikeInput("in", 6)], populations=[
        ns.Population("h", 8, ns.LIF(beta=0.9, alpha=0.5, theta=1.0, reset="zero")),
        ns.Population("o", 3, ns.LIF(beta=0.8, theta=1.0, bias=0.02, reset="zero"))], projections=[
        ns.Projection("in_h", "in", "h", np.random.default_rng(1).normal(0.4, 0.3, (6, 8)), delay=2),
        ns.Projection("h_o", "h", "o", np.random.default_rng(2).normal(0.3, 0.3, (8, 3)))])
    to_netx(chain, paths["netx"])
    ns.save(net, folder / "model.h5")
    np.savez(paths["npz"], **inputs)
    return paths


def h5_members(path: Path) -> list[str]:
    """Every object path of an HDF5 file and every attribute, written 'path@name'."""
    import h5py

    out: list[str] = ["/"]
    with h5py.File(path, "r") as f:
        out += [f"/@{k}" for k in f.attrs]

        def visit(name: str, obj: Any) -> None:
            out.append("/" + name)
            out.extend(f"/{name}@{k}" for k in obj.attrs)

        f.visititems(visit)
    return out


# ================================================================================ mutations
# A mutation is a JSON-able dict, so a failing case prints as data and replays exactly.

DTYPES = ("int8", "uint8", "int32", "int64", "uint64", "float16", "float32", "float64", "complex64", "bool",
          "S4", "vlen_str", "compound", "enum", "vlen_int", "ref")
SPECIAL = ("nan", "inf", "-inf", "huge", "negative", "zero", "max_int")


def _values(dtype: str, shape: tuple[int, ...], fill: str, f: Any) -> Any:
    """(data, h5py dtype) for a replacement dataset or attribute."""
    import h5py

    n = int(np.prod(shape)) if shape else 1
    base = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e300, "negative": -7.0, "zero": 0.0,
            "max_int": 2.0**63}.get(fill, 3.0)
    if dtype == "vlen_str":
        data = np.array(["x" * (k % 5) + "\u00e9" for k in range(n)], dtype=object).reshape(shape)
        return data, h5py.string_dtype()
    if dtype == "S4":
        return np.array([b"\xff\xfe1" for _ in range(n)], dtype="S4").reshape(shape), None
    if dtype == "compound":
        ct = np.dtype([("a", "i4"), ("b", "f8")])
        return np.zeros(shape, ct), None
    if dtype == "enum":
        et = h5py.enum_dtype({"A": 0, "B": 1}, basetype="i1")
        return np.ones(shape, "i1"), et
    if dtype == "vlen_int":
        vt = h5py.vlen_dtype(np.int32)
        data = np.empty(shape if shape else (), dtype=object)
        for idx in np.ndindex(*shape):
            data[idx] = np.arange(3, dtype=np.int32)
        if not shape:
            data[()] = np.arange(3, dtype=np.int32)
        return data, vt
    if dtype == "ref":
        data = np.empty(shape, dtype=h5py.ref_dtype)
        for idx in np.ndindex(*shape):
            data[idx] = f.ref
        return (data if shape else f.ref), h5py.ref_dtype
    dt = np.dtype(dtype)
    if dt.kind in "iub":
        if fill == "max_int":
            value = np.iinfo(dt).max if dt.kind in "iu" else True
        elif fill == "negative" and dt.kind == "i":
            value = -7
        elif fill == "huge" and dt.kind in "iu":
            value = np.iinfo(dt).max if dt.itemsize < 8 else 10**12
        else:
            value = 0 if fill == "zero" else 1
        return np.full(shape, value, dt), None
    with np.errstate(over="ignore"):
        return np.full(shape, base, dt), None


def mutate_h5(src: Path, dst: Path, ops: list[dict[str, Any]]) -> None:
    """Apply HDF5-level `ops` to a copy of `src` at `dst` (byte-level ops come last)."""
    import h5py

    shutil.copyfile(src, dst)
    structural = [op for op in ops if op["op"] not in ("flip", "truncate")]
    if structural:
        with h5py.File(dst, "r+") as f:
            for op in structural:
                with contextlib.suppress(KeyError, ValueError, TypeError, RuntimeError, OSError):
                    _h5_op(f, op)
    _bytes_ops(dst, ops)


def _h5_op(f: Any, op: dict[str, Any]) -> None:
    import h5py

    path, _, attr = op["path"].partition("@")
    obj = f[path]
    kind = op["op"]
    if kind == "delete":
        if attr:
            del obj.attrs[attr]
        elif path != "/":
            del f[path]
        return
    if kind == "extra":
        target = obj if isinstance(obj, h5py.Group) else obj.parent
        if op["what"] == "group":
            target.create_group(op["name"])
        elif op["what"] == "dataset":
            target.create_dataset(op["name"], data=np.arange(3.0))
        else:
            obj.attrs[op["name"]] = 1
        return
    if kind == "attr":
        data, dtype = _values(op["dtype"], tuple(op["shape"]), op["fill"], f)
        key = attr or op.get("name", "x")
        if key in obj.attrs:
            del obj.attrs[key]
        obj.attrs.create(key, data, dtype=dtype)
        return
    if attr:
        return  # the remaining ops replace objects
    parent, name = obj.parent, path.rsplit("/", 1)[-1]
    if path == "/" or not name:
        return
    if kind == "dataset":
        data, dtype = _values(op["dtype"], tuple(op["shape"]), op["fill"], f)
        del parent[name]
        parent.create_dataset(name, data=data, dtype=dtype)
    elif kind == "special" and isinstance(obj, h5py.Dataset) and obj.dtype.kind in "iuf" and 0 < obj.size < 10**6:
        data = obj[()]
        flat = np.array(data, dtype=np.float64).reshape(-1)
        flat[op["index"] % flat.size] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e300,
                                         "negative": -1e9, "zero": 0.0, "max_int": 2.0**63}[op["fill"]]
        with np.errstate(invalid="ignore", over="ignore"):
            data = flat.reshape(np.shape(data)).astype(obj.dtype)
        del parent[name]
        parent.create_dataset(name, data=data)
    elif kind == "huge":
        dtype = obj.dtype if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "iuf" else np.float64
        del parent[name]
        shape = tuple(op["shape"])
        if op["layout"] == "chunked":
            parent.create_dataset(name, shape=shape, dtype=dtype, chunks=(1,) * len(shape), maxshape=shape,
                                  compression="gzip" if op.get("compress") else None)
        else:
            parent.create_dataset(name, shape=shape, dtype=dtype)
    elif kind == "link":
        del parent[name]
        parent[name] = h5py.SoftLink("/") if op["what"] == "soft" else h5py.ExternalLink("/etc/passwd", "/x")


def _bytes_ops(path: Path, ops: list[dict[str, Any]]) -> None:
    data = bytearray(path.read_bytes())
    for op in ops:
        if op["op"] == "flip" and data:
            k = int(op["at"] * len(data)) % len(data)
            data[k] ^= op["xor"]
        elif op["op"] == "truncate":
            data = data[:int(op["at"] * len(data))]
    path.write_bytes(bytes(data))


def mutate_npz(src: Path, dst: Path, ops: list[dict[str, Any]]) -> None:
    """Apply archive-level `ops` to a copy of the npz `src` at `dst`."""
    with np.load(src) as z:
        arrays: dict[str, Any] = {k: z[k] for k in z.files}
    raw: dict[str, bytes] = {}
    compress = False
    for op in ops:
        kind = op["op"]
        key = op.get("key", "in")
        if kind == "array":
            arrays[key] = _npz_array(op)
        elif kind == "drop":
            arrays.pop(key, None)
        elif kind == "header":  # an npy header declaring a huge shape, with little or no data
            arrays.pop(key, None)
            head = io.BytesIO()
            np.lib.format.write_array_header_1_0(head, {"descr": "|b1", "fortran_order": False,
                                                        "shape": tuple(op["shape"])})
            raw[key + ".npy"] = head.getvalue() + b"\x01" * op["data"]
        elif kind == "member":
            raw[op["name"]] = op["text"].encode("utf-8", "surrogatepass")
        elif kind == "bomb":  # highly compressible zeros that declare a large array
            arrays[key] = np.zeros((op["steps"], 2, 12), bool)
            compress = True
        elif kind == "compressed":
            compress = True
    buf, method = io.BytesIO(), zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", method) as zf:
        warnings.simplefilter("ignore")  # duplicate member names are a mutation here
        for k, a in arrays.items():
            out = io.BytesIO()
            np.lib.format.write_array(out, np.asanyarray(a), allow_pickle=True)
            zf.writestr(k + ".npy", out.getvalue())
        for name, data in raw.items():
            zf.writestr(name, data)
    dst.write_bytes(buf.getvalue())
    _bytes_ops(dst, ops)


def _npz_array(op: dict[str, Any]) -> Any:
    shape = tuple(op["shape"])
    if op["dtype"] == "object":
        a = np.empty(shape, dtype=object)
        a.fill(None)
        return a
    if op["dtype"] == "str":
        return np.full(shape, "1")
    dt = np.dtype(op["dtype"])
    fill = op["fill"]
    if dt.kind == "f":
        value = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e300, "negative": -1.0, "zero": 0.0,
                 "max_int": 2.0**63}[fill]
    elif dt.kind == "c":
        value = 1 + 1j
    else:
        value = {"negative": -1, "zero": 0, "max_int": 2, "huge": 100}.get(fill, 1)
        if dt.kind == "u" and value < 0:
            value = 1
    a = np.zeros(shape, dt)
    if a.size:
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NaN into an integer array is a mutation too
            a.reshape(-1)[:: max(1, a.size // 7)] = value
    return a


# ============================================================================== strategies


def case_strategy(target: str, members: list[str]) -> Any:
    """Hypothesis strategy of a list of mutations for `target` (members: the seed's HDF5
    paths and attributes; unused for npz)."""
    from hypothesis import strategies as st

    byte_ops = st.one_of(
        st.fixed_dictionaries({"op": st.just("flip"), "at": st.floats(0, 1, exclude_max=True),
                               "xor": st.integers(1, 255)}),
        st.fixed_dictionaries({"op": st.just("truncate"), "at": st.floats(0, 1, exclude_max=True)}))
    fills = st.sampled_from(SPECIAL)
    small_shapes = st.lists(st.integers(0, 5), min_size=0, max_size=3)
    if target == "npz":
        keys = st.sampled_from(["in", "poi", "other", "in\u00e9"])
        op = st.one_of(
            st.fixed_dictionaries({"op": st.just("array"), "key": keys,
                                   "dtype": st.sampled_from(["bool", "uint8", "int8", "int64", "float32", "float64",
                                                             "complex64", "object", "str", "uint16"]),
                                   "shape": st.sampled_from([[STEPS, 12], [STEPS, 2, 12], [STEPS, 3, 12], [STEPS],
                                                             [STEPS - 1, 12], [STEPS, 11], [], [0, 12],
                                                             [STEPS, 1, 12], [STEPS, 2, 2, 12], [40, 12]]),
                                   "fill": fills}),
            st.fixed_dictionaries({"op": st.just("drop"), "key": keys}),
            st.fixed_dictionaries({"op": st.just("header"), "key": keys,
                                   "shape": st.sampled_from([[10**12, 12], [STEPS, 10**6, 12], [2**62, 2, 12],
                                                             [STEPS, 2, 12], [-1, 12]]),
                                   "data": st.integers(0, 800)}),
            st.fixed_dictionaries({"op": st.just("member"), "name": st.sampled_from(["x.txt", "a/b.npy", "in.npy"]),
                                   "text": st.text(max_size=20)}),
            st.fixed_dictionaries({"op": st.just("bomb"), "key": st.just("in"),
                                   "steps": st.sampled_from([STEPS, 10**5, 3 * 10**6])}),
            st.fixed_dictionaries({"op": st.just("compressed")}),
            byte_ops)
        return st.lists(op, min_size=1, max_size=4)
    paths = st.sampled_from(members)
    objects = st.sampled_from([m for m in members if "@" not in m and m != "/"])
    op = st.one_of(
        st.fixed_dictionaries({"op": st.just("delete"), "path": paths}),
        st.fixed_dictionaries({"op": st.just("extra"), "path": objects,
                               "what": st.sampled_from(["group", "dataset", "attr"]),
                               "name": st.sampled_from(["zz", "order", "size", "type", "0", "99", "metadata"])}),
        st.fixed_dictionaries({"op": st.just("attr"), "path": paths, "dtype": st.sampled_from(DTYPES),
                               "shape": st.sampled_from([[], [1], [2], [20]]), "fill": fills}),
        st.fixed_dictionaries({"op": st.just("dataset"), "path": objects, "dtype": st.sampled_from(DTYPES),
                               "shape": small_shapes, "fill": fills}),
        st.fixed_dictionaries({"op": st.just("special"), "path": objects, "index": st.integers(0, 1000),
                               "fill": fills}),
        st.fixed_dictionaries({"op": st.just("huge"), "path": objects,
                               "shape": st.sampled_from([[10**12], [10**6, 10**6], [2**40, 2], [3 * 10**9]]),
                               "layout": st.sampled_from(["chunked", "contiguous"]), "compress": st.booleans()}),
        st.fixed_dictionaries({"op": st.just("link"), "path": objects, "what": st.sampled_from(["soft", "external"])}),
        byte_ops)
    return st.lists(op, min_size=1, max_size=4)


def write_case(target: str, seed: Path, dst: Path, ops: list[dict[str, Any]]) -> None:
    (mutate_npz if target == "npz" else mutate_h5)(seed, dst, ops)


# ================================================================================== worker


def _load(target: str, path: str, work: str) -> None:
    """Run the loader of `target` on `path`; raises what it raises."""
    if target == "network":
        from neurosim.storage import load

        load(path)
    elif target == "result":
        from neurosim.storage import load_result

        load_result(path)
    elif target == "nir":
        from mapping.nir_graph import read_nir

        read_nir(path, DT)
    elif target == "netx":
        from mapping.netx import read_netx

        read_netx(path, DT)
    elif target == "info":
        _cli(["info", path], path, work)
    else:
        _cli(["simulate", os.path.join(work, "model.h5"), "--input", path, "--steps", str(STEPS),
              "--out", os.path.join(work, "out.h5"), "--no-progress"], path, work)


def _cli(argv: list[str], path: str, work: str) -> None:
    """A neurosim command on the case `path`: exit 0, or exit 2 with one line naming `path`,
    no output file (work/out.h5) and no temporary file left."""
    from neurosim.cli import main

    out = os.path.join(work, "out.h5")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(out)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    left = [f for f in os.listdir(work) if f.endswith(".tmp")]
    if left:
        raise AssertionError(f"temporary files left behind: {left}")
    if code == 0:
        return
    text = err.getvalue()
    if code != 2 or text.count("\n") != 1 or os.path.exists(out):
        raise AssertionError(f"exit {code}, output {'present' if os.path.exists(out) else 'absent'}, stderr {text!r}")
    if path not in text:
        raise AssertionError(f"the error does not name the file: {text.strip()!r}")
    from neurosim.errors import FileFormatError

    raise FileFormatError(path, "", text.strip())  # a clean refusal


def run_case(target: str, path: str, work: str) -> dict[str, str]:
    """{'kind': 'ok' | 'error' | 'bug', 'detail': ...} of one case (in the worker)."""
    from neurosim.errors import NeurosimError

    try:
        _load(target, path, work)
        return {"kind": "ok", "detail": ""}
    except NeurosimError as exc:
        if path not in str(exc):
            return {"kind": "bug", "detail": f"{type(exc).__name__} without the file name: {exc}"[:400]}
        return {"kind": "error", "detail": f"{type(exc).__name__}: {exc}"[:400]}
    except BaseException as exc:  # noqa: BLE001 - every other outcome is a bug
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if str(ROOT) in f.filename]
        where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
        return {"kind": "bug", "detail": f"{type(exc).__name__} at {where}: {str(exc)[:300]}",
                "where": where, "type": type(exc).__name__}


def worker_main() -> None:
    """Read JSON cases from stdin, write one JSON outcome line per case to stdout."""
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))
    out = os.fdopen(os.dup(1), "w")
    sys.stdout = sys.stderr  # only outcomes go to the parent's pipe
    for line in sys.stdin:
        case = json.loads(line)
        out.write(json.dumps(run_case(case["target"], case["path"], case["work"])) + "\n")
        out.flush()


# =================================================================================== parent


@dataclass
class Outcome:
    kind: str  # 'ok', 'error' or 'bug'
    detail: str
    signature: str = ""


class Worker:
    """A worker subprocess; runs one case at a time with a time limit, restarted after a
    crash or a hang (both reported as bugs)."""

    def __init__(self) -> None:
        self.proc: Optional[subprocess.Popen] = None

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
        return subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, bufsize=1)

    def run(self, target: str, path: Path, work: Path, seconds: float = CASE_SECONDS) -> Outcome:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"target": target, "path": str(path), "work": str(work)}) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], seconds + 30.0)  # + the worker's start
        line = proc.stdout.readline() if ready else ""
        if line:
            d = json.loads(line)
            sig = f"{target}: {d.get('type', '')} at {d.get('where', '')}" if d["kind"] == "bug" else ""
            return Outcome(d["kind"], d["detail"], sig)
        if not ready:
            self.close()
            return Outcome("bug", f"hang: no answer within {seconds:.0f} s", f"{target}: hang")
        code = proc.wait()
        self.proc = None
        return Outcome("bug", f"the interpreter died (exit {code})", f"{target}: crash {code}")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@dataclass
class Tally:
    """Cases tried and outcomes per target; distinct bugs by signature with one reproducer."""

    cases: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, dict[str, int]] = field(default_factory=dict)
    bugs: dict[str, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def add(self, target: str, outcome: Outcome, ops: list[dict[str, Any]]) -> None:
        self.cases[target] = self.cases.get(target, 0) + 1
        k = self.kinds.setdefault(target, {"ok": 0, "error": 0, "bug": 0})
        k[outcome.kind] += 1
        if outcome.kind == "bug" and outcome.signature not in self.bugs:
            self.bugs[outcome.signature] = (outcome.detail, ops)

    def report(self) -> str:
        lines = [f"fuzzing: {sum(self.cases.values())} cases, {len(self.bugs)} distinct bugs"]
        for t in self.cases:
            k = self.kinds[t]
            lines.append(f"  {t}: {self.cases[t]} cases (loaded {k['ok']}, refused {k['error']}, bugs {k['bug']})")
        for sig, (detail, ops) in self.bugs.items():
            lines.append(f"  BUG {sig}: {detail}\n      ops {json.dumps(ops)}")
        return "\n".join(lines)


def fuzz_target(target: str, seeds: dict[str, Path], work: Path, worker: Worker, tally: Tally, examples: int,
                on_bug: Optional[Callable[[Outcome, list[dict[str, Any]]], None]] = None, *,
                derandomize: bool = False, seed: Optional[int] = None) -> None:
    """Run `examples` hypothesis cases of `target`; every outcome goes into `tally`, bugs also
    to `on_bug` (which may raise to stop, as the tests do). `seed` replays a campaign."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as use_seed

    members = [] if target == "npz" else h5_members(seeds[target])
    case_dir = work / target
    case_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(seeds["network"].parent / "model.h5", case_dir / "model.h5")

    @settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case_strategy(target, members))
    def run(ops: list[dict[str, Any]]) -> None:
        path = case_dir / f"case.{target}"
        write_case(target, seeds[target], path, ops)
        outcome = worker.run(target, path, case_dir)
        tally.add(target, outcome, ops)
        if outcome.kind == "bug" and on_bug is not None:
            on_bug(outcome, ops)

    (use_seed(seed)(run) if seed is not None else run)()


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description="Fuzz neurosim's file loaders (make fuzz).")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--examples", type=int, default=1000, help="cases per target (default 1000)")
    p.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated subset of {','.join(TARGETS)}")
    p.add_argument("--seed", type=int, default=None, help="seed of the campaign (default: random, printed)")
    args = p.parse_args(argv)
    if args.worker:
        worker_main()
        return 0
    tally, worker = Tally(), Worker()
    base = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"seed {base} (each target k uses seed + k)", flush=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="neurosim-fuzz-") as tmp:
        seeds = make_seeds(Path(tmp) / "seeds")
        try:
            for k, target in enumerate(args.targets.split(",")):
                fuzz_target(target, seeds, Path(tmp), worker, tally, args.examples, seed=base + k)
                print(f"{target}: {tally.cases.get(target, 0)} cases, {tally.kinds.get(target)}", flush=True)
        finally:
            worker.close()
    print(tally.report())
    print(f"{time.perf_counter() - t0:.0f} s")
    return 1 if tally.bugs else 0


if __name__ == "__main__":
    sys.exit(main())

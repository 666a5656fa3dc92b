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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script too (make fuzz)
from fuzz_mutations import DT, STEPS, case_strategy, write_case  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("network", "result", "info", "nir", "netx", "npz")
WORKER_MEMORY = 2 << 30  # bytes of address space a worker may map; an unbounded allocation fails
CASE_SECONDS = 20.0  # a case that takes longer hangs

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

"""Export to Brian2: build (:func:`to_brian2`) or run (:func:`run_brian2`) a Network in Brian2,
or write it as a standalone script (:func:`write_brian2_script`).

The Brian2 model itself (state variables without ODEs, the step code run in
``run_regularly(..., when='groups')``, the delay offset, the exactness rules) is described
and built in :mod:`mapping.brian2_model`; its result is the record :func:`neurosim.simulate`
returns, for a run described by :func:`neurosim.run.describe_run`.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import os
import pprint
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import numpy as np

from neurosim.atomic import write_all
from neurosim.errors import ExportError, NetworkError
from neurosim.network import Network
from neurosim.result import SimulationResult, SpikeTrains
from neurosim.run import RunSpec, describe_run
from neurosim.simulate import check_seed

from .brian2_model import (COMPILE_ARGS, EQUATIONS, STEP_CODE, TARGETS, build_network, collect_spikes,
                           collect_traces, describe, draw_poisson, set_prefs)


@dataclass(frozen=True, eq=False)
class Brian2Handles:
    """The Brian2 objects of an exported network, keyed by neurosim name.

    groups: population -> NeuronGroup (size batch*n); inputs: SpikeInput -> SpikeGeneratorGroup;
    synapses: projection -> Synapses; spike_monitors: node -> SpikeMonitor; state_monitors:
    population -> StateMonitor (when='end': state after each step); duration: run this long.
    """

    groups: dict
    inputs: dict
    synapses: dict
    spike_monitors: dict
    state_monitors: dict
    sizes: dict
    batch: int
    steps: int
    dt: float
    duration: Any


def _prepare(network: Network, inputs: Optional[Mapping[str, Any]], steps: Optional[int],
             batch: Optional[int], traces: Any, poisson: str, seed: Any) -> tuple[dict, dict, RunSpec]:
    """The Brian2 description (spec, arrays) of `network` and the checked run (neurosim's own checks)."""
    spec, arrays = describe(network, poisson)
    try:
        check_seed(seed)
    except NetworkError as exc:
        raise ExportError("brian2", "seed", exc.message) from None
    return spec, arrays, describe_run(network, inputs, steps, batch=batch, traces=traces,
                                      no_counts="the Brian2 target feeds inputs through a SpikeGeneratorGroup, "
                                                "one 0/1 spike per source and step")


def _import_brian2() -> Any:
    try:
        import brian2
    except ImportError as exc:
        raise ExportError("brian2", "", f"brian2 is not installed here ({exc}); install it with: "
                                            "pip install 'neurosim[mapping]'") from None
    return brian2


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ExportError("brian2", "target", f"expected one of {TARGETS}, got {target!r}")


def to_brian2(network: Network, inputs: Optional[Mapping[str, Any]], steps: Optional[int],
              target: str = "numpy", *, batch: Optional[int] = None,
              traces: Any = None, seed: int = 0, poisson: str = "exact") -> tuple[Any, Brian2Handles]:
    """A ``brian2.Network`` that reproduces ``neurosim.simulate(network, inputs, steps, seed=seed)``.

    poisson: how a PoissonInput is exported (mapping.brian2_model.POISSON_MODES): 'exact',
    neurosim's draw for `seed` as a SpikeGeneratorGroup (the same spikes), or 'statistical',
    Brian2's PoissonGroup at the same rates (statistically equal, other spikes).

    inputs: SpikeInput name -> spikes (T, size) or (T, batch, size), as for simulate; traces:
    as for simulate ({'pop': ['v', 'i', 'a', 'threshold']}). Sets Brian2's global preferences
    for `target` (see :func:`set_prefs`). Run it with ``net.run(handles.duration)``.
    'cpp_standalone' needs the device set first (``brian2.set_device('cpp_standalone',
    build_on_run=False)``); :func:`run_brian2` does that for you.
    """
    b2 = _import_brian2()
    _check_target(target)
    spec, arrays, run = _prepare(network, inputs, steps, batch, traces, poisson, seed)
    standalone = type(b2.get_device()).__name__ == "CPPStandaloneDevice"
    if (target == "cpp_standalone") != standalone:
        want = ("call brian2.set_device('cpp_standalone', build_on_run=False) first, or use run_brian2"
                if target == "cpp_standalone" else "call brian2.reset_device() first")
        raise ExportError("brian2", "target", f"target {target!r} but the active Brian2 device is "
                                              f"{type(b2.get_device()).__name__}: {want}")
    set_prefs(b2, target)
    net, h = build_network(b2, spec, arrays, run.inputs, run.steps, run.batch, run.traces, seed=seed)
    return net, Brian2Handles(**h)


@contextlib.contextmanager
def _brian2_session(b2: Any, target: str, directory: Optional[str]) -> Iterator[Optional[str]]:
    """Prefs (restored afterwards) and, for cpp_standalone, the device (reset afterwards).

    Yields the cpp_standalone project folder (a temporary one, removed, if `directory` is None).
    """
    from brian2.devices.device import reset_device

    names = ["codegen.target", "codegen.loop_invariant_optimisations", "codegen.cpp.extra_compile_args_gcc",
             "devices.cpp_standalone.openmp_threads", "codegen.runtime.cython.cache_dir"]
    saved = {k: b2.prefs[k] for k in names}
    tmp = None
    try:
        if target == "cython" and directory is not None:
            b2.prefs.codegen.runtime.cython.cache_dir = os.fspath(directory)
        if target != "cpp_standalone":
            yield None
            return
        project = os.fspath(directory) if directory is not None else tempfile.mkdtemp(prefix="neurosim_brian2_")
        tmp = None if directory is not None else project
        b2.set_device("cpp_standalone", build_on_run=False, directory=project, with_output=False)
        try:
            yield project
        finally:
            b2.device.reinit()
            reset_device()
    finally:
        for k, v in saved.items():
            b2.prefs[k] = v
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def run_brian2(network: Network, inputs: Optional[Mapping[str, Any]], steps: Optional[int],
               target: str = "numpy", traces: Any = None, directory: Optional[str] = None, *,
               batch: Optional[int] = None, seed: int = 0, poisson: str = "exact") -> SimulationResult:
    """Run `network` in Brian2 and return the record :func:`neurosim.simulate` returns.

    seed and poisson: the PoissonInputs, as for :func:`to_brian2` (with 'exact', the result
    equals ``neurosim.simulate(..., seed=seed)``'s).

    target: 'numpy', 'cython' or 'cpp_standalone' (backend 'brian2-<target>', float64);
    directory: the cpp_standalone project folder (default: a temporary one) or the cython
    cache folder (default: Brian2's). timings: 'setup' (building the objects), 'compile'
    (code generation and compilation), 'run' (Brian2's simulation loop), 'record', 'total'.
    Brian2's preferences and device are restored afterwards, so calls can be repeated.
    """
    t_start = time.perf_counter()
    b2 = _import_brian2()
    _check_target(target)
    if target == "numpy" and directory is not None:
        raise ExportError("brian2", "directory", "used by the cython (cache) and cpp_standalone "
                                                 "(project) targets only; the numpy target compiles nothing")
    spec, arrays, run = _prepare(network, inputs, steps, batch, traces, poisson, seed)
    steps, batch = run.steps, run.batch
    with _brian2_session(b2, target, directory) as project:
        set_prefs(b2, target)
        net, h = build_network(b2, spec, arrays, run.inputs, steps, batch, run.traces, seed=seed)
        t_setup = time.perf_counter()
        net.run(h["duration"])
        if target == "cpp_standalone":
            b2.device.build(directory=project, compile=True, run=True, with_output=False)
            compile_s = float(b2.device.timers["compile"]["make"])
        t_run = time.perf_counter()
        loop_s = float(b2.device._last_run_time)
        if target != "cpp_standalone":
            compile_s = (t_run - t_setup) - loop_s
        done = int(round(float(net.t_) / h["dt"]))
        if done != steps:
            raise ExportError("brian2", "steps", f"Brian2 ran {done} steps instead of {steps}")
        events = collect_spikes(h)
        trace_out = collect_traces(h, spec["trace_variables"])
    t_end = time.perf_counter()
    spikes_out = {name: SpikeTrains(t, b.astype(np.int32), j.astype(np.int32), h["sizes"][name], steps, batch)
                  for name, (t, b, j) in events.items()}
    spikes_out = {node: spikes_out[node] for node in [*(p.name for p in network.populations),
                                                      *(s.name for s in network.inputs)]}
    timings = {"setup": t_setup - t_start, "compile": compile_s, "run": loop_s,
               "record": t_end - t_run, "total": t_end - t_start}
    return SimulationResult(
        spikes=spikes_out, traces=trace_out, timings=timings, backend=f"brian2-{target}",
        dtype="float64", dt=network.dt, steps=steps, batch=batch, seed=int(seed),
        meta={"populations": [p.name for p in network.populations], "n_synapses": network.n_synapses,
              "brian2_version": b2.__version__, "target": target, "poisson": poisson})


# ---------------------------------------------------------------------------------------------
# Standalone script

_SCRIPT_HEAD = '''\
#!/usr/bin/env python
"""Brian2 model of the neurosim network {network!r}, written by neurosim (mapping/brian2_export.py).

    python {script} --inputs spikes.npz --steps N [--target numpy|cython|cpp_standalone]
                    [--seed S] [--batch B] [--output spikes_out.npz]

spikes.npz holds one array per SpikeInput ({inputs}), shape (T, size) or (T, batch, size), 0/1
values, T >= N. {poisson}
The output npz holds, for every population and input, '<name>.step',
'<name>.batch' and '<name>.index' of each spike (step 0 is the first step). Parameters,
weights and delays are read from {npz!r} beside this script.

The model is neurosim's discrete step, exact in float64: state variables without ODEs, the
step (STEP_CODE) in run_regularly(when='groups'), input buffer x filled by on_pre='x_post += w',
and each delay of d steps given to Brian2 as (d - 1)*dt because Brian2's schedule adds one step
(a spike of step t is delivered in the synapses slot and used by the update of step t + 1).
Needs: python, numpy and brian2 (written for brian2 {version}).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import brian2 as b2

COMPILE_ARGS = {compile_args!r}

EQUATIONS = """
{equations}"""

STEP_CODE = """
{step_code}"""

SPEC = {spec}
SPEC.update(equations=EQUATIONS, step_code=STEP_CODE)
'''

_SCRIPT_MAIN = '''

def read_inputs(path, steps, batch_option):
    """Input spikes as bool (steps, batch, size) per SpikeInput, and the batch size."""
    spikes, batches = {}, set()
    data = np.load(path, allow_pickle=False) if path else {}
    for src in SPEC["inputs"]:
        if src.get("kind") == "poisson":
            continue
        if src["name"] not in data:
            sys.exit(f"{path}: missing array {src['name']!r} (shape (T, {src['size']}) or (T, batch, {src['size']}))")
        arr = np.asarray(data[src["name"]])
        arr = arr[:, None, :] if arr.ndim == 2 else arr
        shape_ok = arr.ndim == 3 and arr.shape[0] >= steps and arr.shape[2] == src["size"]
        if not shape_ok or not np.all((arr == 0) | (arr == 1)):
            sys.exit(f"{path}: {src['name']!r} must be 0/1 of shape (T >= {steps}, [batch,] {src['size']}), "
                     f"got {arr.shape}")
        spikes[src["name"]] = arr[:steps] != 0
        batches.add(arr.shape[1])
    batch = max(batches) if batches else (batch_option or 1)
    if batches - {1, batch}:
        sys.exit(f"{path}: inputs disagree on the batch size: {sorted(batches)}")
    if batch_option is not None and batch_option != batch:
        sys.exit(f"--batch {batch_option}: the inputs have {batch} trials")
    return {k: np.broadcast_to(v, (steps, batch, v.shape[2])) for k, v in spikes.items()}, batch


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", help="npz of input spikes (needed if the network has inputs)")
    ap.add_argument("--steps", type=int, required=True, help="number of steps of dt = %g s" % SPEC["dt"])
    ap.add_argument("--target", default="numpy", choices=["numpy", "cython", "cpp_standalone"])
    ap.add_argument("--output", help="npz of spikes to write (default: print counts only)")
    ap.add_argument("--params", default=os.path.join(here, NPZ), help="parameter npz (default: %(default)s)")
    ap.add_argument("--directory", default="brian2_standalone", help="cpp_standalone project folder")
    ap.add_argument("--seed", type=int, default=0, help="seed of the PoissonInputs exported 'exact' (as neurosim's)")
    ap.add_argument("--batch", type=int, default=None, help="trials (default: the inputs', else 1)")
    args = ap.parse_args(argv)
    if args.steps < 1:
        sys.exit("--steps must be >= 1")
    given = [s["name"] for s in SPEC["inputs"] if s.get("kind") != "poisson"]
    if given and not args.inputs:
        sys.exit("--inputs is required: the network has inputs " + ", ".join(given))
    if not 0 <= args.seed < 2**63 or (args.batch is not None and args.batch < 1):
        sys.exit("--seed must be in [0, 2**63) and --batch >= 1")
    spikes, batch = read_inputs(args.inputs, args.steps, args.batch)
    arrays = dict(np.load(args.params, allow_pickle=False))
    b2.prefs.logging.console_log_level = "WARNING"
    set_prefs(b2, args.target)
    if args.target == "cpp_standalone":
        b2.set_device("cpp_standalone", build_on_run=False, directory=args.directory)
    net, handles = build_network(b2, SPEC, arrays, spikes, args.steps, batch, seed=args.seed)
    net.run(handles["duration"])
    if args.target == "cpp_standalone":
        b2.device.build(directory=args.directory, compile=True, run=True, with_output=False)
    out = {}
    for name, (step, b, j) in collect_spikes(handles).items():
        print(f"{name:<16} {len(step):>8} spikes")
        out.update({f"{name}.step": step, f"{name}.batch": b, f"{name}.index": j})
    if args.output:
        tmp = args.output + ".tmp.npz"
        np.savez(tmp, **out)
        os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


def write_brian2_script(network: Network, path: str | os.PathLike, poisson: str = "exact") -> tuple[Path, Path]:
    """Write a standalone Brian2 script `path` and its parameter file (same name, .npz).

    The script needs only numpy and brian2: ``python script.py --inputs spikes.npz --steps N
    [--target ...] [--seed S] [--output out.npz]`` gives neurosim's spikes for seed S. poisson:
    how PoissonInputs are exported ('exact': neurosim's draw, the same spikes; 'statistical':
    Brian2's PoissonGroup, statistically equal; see :func:`to_brian2`; the script says which).
    Both files are written atomically. Returns (script path, npz path).
    """
    import brian2

    script = Path(path)
    if script.suffix != ".py":
        raise ExportError("brian2", "path", f"expected a path ending in .py, got {str(path)!r}")
    npz = script.with_suffix(".npz")
    spec, arrays = describe(network, poisson)
    structure = {k: v for k, v in spec.items() if k not in ("equations", "step_code")}
    head = _SCRIPT_HEAD.format(
        network=network.name, script=script.name, npz=npz.name, version=brian2.__version__,
        inputs=", ".join(s["name"] for s in spec["inputs"] if s["kind"] == "spikes") or "none",
        poisson=_poisson_note(spec), compile_args=COMPILE_ARGS,
        equations=EQUATIONS, step_code=STEP_CODE, spec=pprint.pformat(structure, sort_dicts=False, width=120))
    body = "\n\n".join(inspect.getsource(f) for f in (set_prefs, draw_poisson, build_network, collect_spikes))
    text = head + f"NPZ = {npz.name!r}\n\n\n" + body + _SCRIPT_MAIN
    compile(text, str(script), "exec")  # a syntax error here is a bug of this module, not the user's
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_all({npz: buf.getvalue(), script: text.encode("utf-8")})  # both files or neither
    return script, npz


def _poisson_note(spec: dict) -> str:
    """The script's paragraph on its PoissonInputs (how each is exported)."""
    names = [s["name"] for s in spec["inputs"] if s["kind"] == "poisson"]
    if not names:
        return "The network has no PoissonInput."
    if spec["inputs"][[s["name"] for s in spec["inputs"]].index(names[0])]["poisson"] == "exact":
        return (f"PoissonInputs ({', '.join(names)}) are exported EXACTLY: the script draws neurosim's own "
                "spikes for --seed\n(numpy's default_rng((seed, input index)), as neurosim.simulate does) and "
                "feeds them through\nSpikeGeneratorGroups: the same spikes as neurosim.simulate(..., seed=S).")
    return (f"PoissonInputs ({', '.join(names)}) are exported STATISTICALLY: Brian2 PoissonGroups at the "
            "same rate per\nchannel draw their own random numbers, so the input is statistically equal "
            "to neurosim's,\nnot the same spikes (export with poisson='exact' for those).")


__all__ = ["to_brian2", "run_brian2", "write_brian2_script", "describe", "Brian2Handles",
           "STEP_CODE", "EQUATIONS", "TARGETS"]

"""Brian2 side of the Vogels & Abbott (2005) CUBA benchmark.

``run_brian2_cuba`` simulates a CUBA network given as explicit arrays
(connectivity, weights, initial state) in Brian2, so that ``bench/cuba.py``
can run the very same network in neurosim and compare.  Each call runs the
simulation in a fresh Python subprocess (``python brian2_cuba.py SPEC.json``)
so that Brian2's global device state never leaks between targets and a crash
in Brian2 or the C++ toolchain surfaces as a ``RuntimeError`` in the caller.

Model (one synaptic time constant for excitation and inhibition)::

    dv/dt = (g - (v - v_rest)) / tau_m : volt (unless refractory)
    dg/dt = -g / tau_syn               : volt
    threshold v > theta, reset v = 0 V, refractory period refractory_s
    on_pre: g_post += w, homogeneous delay delay_s

integrated with ``method='exact'``.  All voltages are relative to the reset
potential.

Timing conventions of Brian2 that matter when comparing spike trains:

* Per step the schedule is: state update (t -> t + dt), threshold, synaptic
  propagation, reset.  A spike is stamped with the clock time ``t`` at the
  *start* of the step in which ``v`` crossed ``theta``; ``spike_t_steps`` is
  that step index ``round(t / dt)``.
* With ``delay_s == dt`` a spike stamped at step k is added to ``g`` at the
  end of step k + 1 and first affects ``v`` in the update of step k + 2.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGETS = ("numpy", "cython", "cpp_standalone")
WARMUP_STEPS = 10
_NET_ARRAYS = ("pre", "post", "w", "v0", "g0")
_NET_SCALARS = ("tau_m", "tau_syn", "theta", "v_rest", "refractory_s", "delay_s")
# Scalar figures reported by the child process (and repeated under "cold").
_FIGURES = (
    "wall_s",
    "setup_s",
    "compile_s",
    "codegen_s",
    "run_call_s",
    "run_binary_s",
    "sim_s",
    "cache_warm",
)


def cuba_reference_params() -> dict[str, float]:
    """Classic Vogels-Abbott CUBA parameters adapted to one synaptic time constant.

    Original model (Vogels & Abbott 2005; Brian2 example ``CUBA.py``):
    El = -49 mV, Vt = -50 mV, Vr = -60 mV, tau_m = 20 ms, tau_e = 5 ms,
    tau_i = 10 ms, refractory 5 ms, we = 60 * 0.27 / 10 mV, wi = -20 * 4.5 / 10 mV.

    Adaptation: voltages are expressed relative to the reset Vr, so
    theta = Vt - Vr = 10 mV and v_rest = El - Vr = 11 mV.  Both synapse types
    share tau_syn = tau_e = 5 ms; the inhibitory weight is multiplied by
    tau_i / tau_syn = 2 so that the charge of one inhibitory PSC (weight x
    time constant) equals that of the original 10 ms synapse:
    wi = -9 mV * 2 = -18 mV.  Excitatory weight we = 1.62 mV is unchanged.
    All values are SI (seconds, volts).
    """
    tau_syn = 5e-3
    tau_i_original = 10e-3
    return {
        "tau_m": 20e-3,
        "tau_syn": tau_syn,
        "theta": 10e-3,
        "v_rest": 11e-3,
        "refractory_s": 5e-3,
        "we": 60 * 0.27 / 10 * 1e-3,
        "wi": -20 * 4.5 / 10 * 1e-3 * (tau_i_original / tau_syn),
    }


def run_brian2_cuba(
    target: str,
    net: dict[str, Any],
    duration_s: float,
    dt_s: float,
    workdir: str,
    warm: bool = True,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Simulate ``net`` for ``duration_s`` in Brian2 with code-generation ``target``.

    ``net`` keys (SI units): ``n``, ``pre``/``post`` (int32 [S]), ``w``
    (float64 [S], volts; jump of g per presynaptic spike), ``v0`` (float64 [n]),
    optional ``g0`` (float64 [n], default zeros), and the floats ``tau_m``,
    ``tau_syn``, ``theta``, ``v_rest``, ``refractory_s``, ``delay_s``.

    Compiled artefacts persist in ``workdir``: the Cython cache in
    ``workdir/cython_cache`` and the C++ project in ``workdir/cpp_<n>``
    (reused, so only changed files are recompiled; do not run two
    cpp_standalone calls with the same ``n`` and ``workdir`` concurrently).
    With ``warm=True`` the cython and cpp_standalone targets first do one
    throwaway run (same network and duration) so the reported figures are with
    a warm cache; the throwaway run's figures are returned under ``"cold"``.

    Returned figures (seconds):

    * ``wall_s``: wall time of the whole subprocess as a user experiences it:
      interpreter start, ``import brian2``, loading the arrays, building the
      network, code generation and compilation, the simulation, and writing
      the results.
    * ``sim_s``: simulation loop only (Brian2's ``device._last_run_time``).
      numpy/cython: the time-step loop of the main ``run()``, after a
      ``WARMUP_STEPS``-step warm-up run (then ``Network.restore`` to the initial
      state) has generated and compiled all code.  cpp_standalone: the loop
      inside the compiled binary, excluding loading of the static arrays.
    * ``compile_s``: numpy/cython: the warm-up run (code generation, Cython
      compilation or cache load, and ``WARMUP_STEPS`` steps).
      cpp_standalone: the ``make`` call only.
    * ``codegen_s`` (cpp_standalone): C++ code generation and file writing,
      i.e. ``run()`` minus ``make`` minus the binary.  ``None`` otherwise.
    * ``run_call_s`` (numpy/cython): the whole main ``run()`` call, i.e.
      ``sim_s`` plus per-run preparation of the code objects.  ``None`` for
      cpp_standalone.
    * ``run_binary_s`` (cpp_standalone): the binary's process, i.e. ``sim_s``
      plus reading static arrays and writing results.  ``None`` otherwise.
    * ``setup_s``: child start to network built (mostly ``import brian2``
      and ``Synapses.connect``).  With a cold Cython cache it also contains
      compiling the code that sets initial values and creates synapses
      (a large share of the cold-cache cost).

    ``cache_warm`` says whether nothing had to be compiled: cython: no new
    extension module appeared in the cache; cpp_standalone: the ``main``
    binary existed and was not relinked; always ``True`` for numpy.
    cpp_standalone runs single-threaded (``openmp_threads = 0``); cython and
    cpp_standalone use Brian2's default flags (``-O3 -ffast-math -march=native``).
    A failed subprocess raises ``RuntimeError`` carrying its stderr tail.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    work = Path(workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    cold = None
    if warm and target != "numpy":
        cold_result = _run_child(target, net, duration_s, dt_s, work, timeout_s)
        cold = {k: cold_result[k] for k in _FIGURES}
    result = _run_child(target, net, duration_s, dt_s, work, timeout_s)
    result["cold"] = cold
    return result


def _run_child(
    target: str,
    net: dict[str, Any],
    duration_s: float,
    dt_s: float,
    work: Path,
    timeout_s: float | None,
) -> dict[str, Any]:
    """Run one simulation in a fresh interpreter and collect its results."""
    n = int(net["n"])
    exchange = Path(tempfile.mkdtemp(prefix=f"brian2_{target}_", dir=work))
    try:
        arrays = {k: np.asarray(net[k]) for k in _NET_ARRAYS if k in net}
        arrays.setdefault("g0", np.zeros(n))
        np.savez(exchange / "net.npz", **arrays)
        spec = {
            "target": target,
            "n": n,
            "duration_s": float(duration_s),
            "dt_s": float(dt_s),
            "params": {k: float(net[k]) for k in _NET_SCALARS},
            "net_npz": str(exchange / "net.npz"),
            "cpp_dir": str(work / f"cpp_{n}"),
            "cython_cache": str(work / "cython_cache"),
            "out_json": str(exchange / "result.json"),
            "out_npz": str(exchange / "spikes.npz"),
        }
        spec_path = exchange / "spec.json"
        spec_path.write_text(json.dumps(spec))
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), str(spec_path)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=exchange,
        )
        wall_s = time.perf_counter() - t0
        if proc.returncode != 0 or not Path(spec["out_json"]).exists():
            raise RuntimeError(
                f"Brian2 {target} run failed (exit code {proc.returncode}):\n"
                f"{proc.stderr[-4000:]}"
            )
        result = json.loads(Path(spec["out_json"]).read_text())
        with np.load(spec["out_npz"]) as spikes:
            result["spike_i"] = spikes["spike_i"].astype(np.int32)
            result["spike_t_steps"] = spikes["spike_t_steps"].astype(np.int64)
    finally:
        shutil.rmtree(exchange, ignore_errors=True)
    result["wall_s"] = wall_s
    result["rate_hz"] = result["n_spikes"] / (n * duration_s)
    return result


def _child_main(spec_path: str) -> None:
    """Subprocess entry: build, run and dump one simulation described by a spec file."""
    t_start = time.perf_counter()
    spec = json.loads(Path(spec_path).read_text())
    import brian2 as b2

    target, n, dt = spec["target"], spec["n"], spec["dt_s"]
    p = spec["params"]
    data = np.load(spec["net_npz"])
    b2.prefs.logging.console_log_level = "ERROR"
    if target == "cpp_standalone":
        b2.set_device(
            "cpp_standalone",
            directory=spec["cpp_dir"],
            build_on_run=True,
            with_output=False,
        )
        b2.prefs.devices.cpp_standalone.openmp_threads = 0
        binary = Path(spec["cpp_dir"]) / "main"
        binary_mtime = binary.stat().st_mtime_ns if binary.exists() else None
    else:
        b2.prefs.codegen.target = target
        if target == "cython":
            b2.prefs.codegen.runtime.cython.cache_dir = spec["cython_cache"]
        modules_before = _cython_modules(spec["cython_cache"])
    b2.defaultclock.dt = dt * b2.second

    eqs = """
    dv/dt = (g - (v - v_rest)) / tau_m : volt (unless refractory)
    dg/dt = -g / tau_syn : volt
    """
    namespace = {
        "tau_m": p["tau_m"] * b2.second,
        "tau_syn": p["tau_syn"] * b2.second,
        "theta": p["theta"] * b2.volt,
        "v_rest": p["v_rest"] * b2.volt,
    }
    neurons = b2.NeuronGroup(
        n,
        eqs,
        threshold="v > theta",
        reset="v = 0*volt",
        refractory=p["refractory_s"] * b2.second,
        method="exact",
        namespace=namespace,
        name="cuba_neurons",
    )
    neurons.v = data["v0"] * b2.volt
    neurons.g = data["g0"] * b2.volt
    synapses = b2.Synapses(
        neurons,
        neurons,
        "w : volt",
        on_pre="g_post += w",
        delay=p["delay_s"] * b2.second,
        name="cuba_synapses",
    )
    synapses.connect(i=data["pre"], j=data["post"])
    synapses.w = data["w"] * b2.volt
    monitor = b2.SpikeMonitor(neurons, name="cuba_spikes")
    network = b2.Network(neurons, synapses, monitor)
    setup_s = time.perf_counter() - t_start

    duration = spec["duration_s"] * b2.second
    result: dict[str, Any] = {
        "target": target,
        "brian2_version": b2.__version__,
        "setup_s": setup_s,
        "codegen_s": None,
        "run_call_s": None,
        "run_binary_s": None,
    }
    if target == "cpp_standalone":
        t0 = time.perf_counter()
        network.run(duration)
        build_and_run_s = time.perf_counter() - t0
        timers = b2.device.timers
        result["compile_s"] = timers["compile"]["make"]
        result["run_binary_s"] = timers["run_binary"]
        result["codegen_s"] = (
            build_and_run_s - result["compile_s"] - result["run_binary_s"]
        )
        result["cache_warm"] = (
            binary_mtime is not None and binary.stat().st_mtime_ns == binary_mtime
        )
        result["openmp_threads"] = 0
    else:
        network.store("initial")
        t0 = time.perf_counter()
        network.run(WARMUP_STEPS * dt * b2.second)
        result["compile_s"] = time.perf_counter() - t0
        network.restore("initial")
        t0 = time.perf_counter()
        network.run(duration)
        result["run_call_s"] = time.perf_counter() - t0
        result["cache_warm"] = (
            _cython_modules(spec["cython_cache"]) == modules_before
        )
    result["sim_s"] = float(b2.device._last_run_time)

    spike_i = np.asarray(monitor.i[:], dtype=np.int32)
    spike_t_steps = np.rint(np.asarray(monitor.t_[:]) / dt).astype(np.int64)
    result["n_spikes"] = int(spike_i.size)
    np.savez(spec["out_npz"], spike_i=spike_i, spike_t_steps=spike_t_steps)
    Path(spec["out_json"]).write_text(json.dumps(result))


def _cython_modules(cache_dir: str) -> set[str]:
    """Names of the compiled extension modules in a Brian2 Cython cache."""
    path = Path(cache_dir)
    return {f.name for f in path.glob("*.so")} if path.is_dir() else set()


if __name__ == "__main__":
    _child_main(sys.argv[1])

"""GPU benchmark of the CuPy backend: one command, a few minutes on an H200.

    python bench/gpu.py --out bench/out/gpu             # everything (budget --budget seconds)
    python bench/gpu.py --out /tmp/gpu --sizes 4000 64000 --syn 80 --skip-layer   # a short run

1. Device: device-to-device copy bandwidth (bytes read plus written per second, cudaMemcpy of
   1 GiB) and kernel launch overhead (an empty kernel launched directly, and as a node of a
   replayed CUDA graph).
2. CUBA (assets/cuba.py; built directly as the lowered plan by ``cuba_plan``, the same network
   as ``cuba_network``) with 80 and 1000 synapses per neuron at 4k, 64k, 256k and 1M neurons,
   float32, 1 s of biological time at dt = 0.1 ms, propagation='event': steps/s, synaptic
   events/s, achieved bytes/s (a 4-byte index and a weight read per event; each event also
   does one atomicAdd, not counted in bytes) against the copy bandwidth; the ratio to the
   NumPy backend (a short run from the same start, compared per step and per event); and to
   Brian2 cpp_standalone's simulation time when brian2 imports (80 synapses, up to
   --brian2-max neurons).
3. Training layer: 16k LIF neurons fed by 1024 input channels, batch 16, T = 500, float32:
   forward and backward of training.layers.from_network in torch on CUDA, against
   SpikingJelly's LIFNode with backend='cupy' (the same map: decay_input=False, hard reset
   to 0, tau = 1/(1 - beta)) when spikingjelly imports.

Prints compact tables at the end and writes OUT/gpu.json (rewritten after every row, so a run
stopped early keeps what it measured).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import neurosim as ns  # noqa: E402
from assets.cuba import cuba_network, cuba_plan  # noqa: E402
from neurosim.backends import cupy_backend, numpy_backend  # noqa: E402
from neurosim.plan import Plan  # noqa: E402

DT = 1e-4


def log(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------------------------ device


def device_figures(cupy: Any) -> dict[str, float]:
    """Copy bandwidth (read + write bytes/s) and launch overheads (microseconds)."""
    rt = cupy.cuda.runtime
    stream = cupy.cuda.Stream(non_blocking=True)
    nbytes, reps = 1 << 30, 10
    a = cupy.ones(nbytes // 4, np.float32)
    b = cupy.empty_like(a)
    with stream:
        copy = lambda: rt.memcpyAsync(b.data.ptr, a.data.ptr, nbytes, rt.memcpyDeviceToDevice, stream.ptr)  # noqa: E731
        for _ in range(3):
            copy()
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record(stream)
        for _ in range(reps):
            copy()
        end.record(stream)
        end.synchronize()
        copy_s = cupy.cuda.get_elapsed_time(start, end) / 1e3
        del a, b
        noop = cupy.RawKernel('extern "C" __global__ void noop() {}', "noop")
        noop((1,), (32,), ())
        stream.synchronize()
        n_direct = 5000
        t = time.perf_counter()
        for _ in range(n_direct):
            noop((1,), (32,), ())
        stream.synchronize()
        direct_us = (time.perf_counter() - t) / n_direct * 1e6
        nodes, replays = 200, 25
        stream.begin_capture()
        for _ in range(nodes):
            noop((1,), (32,), ())
        graph = stream.end_capture()
        graph.launch(stream)
        stream.synchronize()
        t = time.perf_counter()
        for _ in range(replays):
            graph.launch(stream)
        stream.synchronize()
        graph_us = (time.perf_counter() - t) / (nodes * replays) * 1e6
    cupy.get_default_memory_pool().free_all_blocks()
    return {"copy_bytes_per_s": 2 * nbytes * reps / copy_s, "launch_direct_us": direct_us,
            "launch_graph_node_us": graph_us}


# -------------------------------------------------------------------------------------- CUBA


def run_runner(runner: Any, plan: Plan, steps: int, chunk: int, seconds: Optional[float] = None) -> dict[str, Any]:
    """Advance `runner` by chunks (stopping after `seconds` if given); spike counts and time."""
    counts = np.zeros(plan.n_neurons, np.int64)
    src = np.zeros((chunk, 1, 0), bool)
    done = 0
    t = time.perf_counter()
    while done < steps and (seconds is None or time.perf_counter() - t < seconds):
        m = min(chunk, steps - done)
        _, _, ev_j, _ = runner.run(done, src[:m])
        counts += np.bincount(ev_j, minlength=plan.n_neurons)
        done += m
    run_s = time.perf_counter() - t
    events = int((counts * np.diff(plan.indptr)).sum())
    return {"steps": done, "run_s": run_s, "spikes": int(counts.sum()), "events": events,
            "steps_per_s": done / run_s, "events_per_s": events / run_s}


def device_meta(cupy: Any) -> dict[str, Any]:
    """The device's name and the CUDA, CuPy, NumPy and Python versions."""
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]
    return {"device": name.decode() if isinstance(name, bytes) else str(name), "cupy": cupy.__version__,
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(), "cuda_driver": cupy.cuda.runtime.driverGetVersion(),
            "numpy": np.__version__, "python": platform.python_version(), "cpus": os.cpu_count()}


def warm_up(dtype: str) -> float:
    """Seconds to compile the kernels of `dtype` and run a small CUBA plan once."""
    t = time.perf_counter()
    warm = cuba_plan(1000, 50, dtype=dtype)
    run_runner(cupy_backend.Runner(warm, 1, np.zeros(0, np.int64), ()), warm, 200, 100)
    return time.perf_counter() - t


def cuba_row(n: int, k: int, args: argparse.Namespace, copy_bw: float, cupy: Any = None) -> dict[str, Any]:
    """One CUBA row (module docstring, item 2) with `args` of :func:`parser`; `cupy` (None: the
    backend's device is not CuPy's, e.g. tests/cuda_emulator.py) frees its memory pool after the run."""
    steps = int(round(args.duration / DT))
    t = time.perf_counter()
    plan = cuba_plan(n, k, seed=args.seed, dtype=args.dtype)
    row: dict[str, Any] = {"n": n, "syn_per_neuron": k, "synapses": int(len(plan.indices)), "dtype": args.dtype,
                           "steps": steps, "generate_s": time.perf_counter() - t}
    t = time.perf_counter()
    runner = cupy_backend.Runner(plan, 1, np.zeros(0, np.int64), (), propagation="event",
                                 event_capacity=max(1 << 16, n * args.chunk // 100))
    row["setup_s"] = time.perf_counter() - t
    gpu = run_runner(runner, plan, steps, args.chunk)
    row.update({f"gpu_{key}": v for key, v in gpu.items()})
    row["gpu_stats"] = dict(runner.stats)
    row["rate_hz"] = gpu["spikes"] / (n * steps * DT)
    row["bytes_per_event"] = 4 + plan.weights.dtype.itemsize
    row["bytes_per_s"] = gpu["events_per_s"] * row["bytes_per_event"]
    row["fraction_of_copy_bw"] = row["bytes_per_s"] / copy_bw
    del runner
    if cupy is not None:
        cupy.get_default_memory_pool().free_all_blocks()
    ref = run_runner(numpy_backend.Runner(plan, 1, np.zeros(0, np.int64), ()), plan, steps, 10, args.numpy_seconds)
    row.update({f"numpy_{key}": v for key, v in ref.items()})
    row["x_numpy_per_step"] = gpu["steps_per_s"] / ref["steps_per_s"]
    row["x_numpy_per_event"] = gpu["events_per_s"] / ref["events_per_s"] if ref["events"] else None
    row["brian2"] = brian2_row(n, k, args, gpu["run_s"])
    return row


def brian2_row(n: int, k: int, args: argparse.Namespace, gpu_run_s: float) -> dict[str, Any]:
    """Brian2 cpp_standalone on the same network, or why it did not run."""
    if k != 80 or n > args.brian2_max:
        return {"skipped": f"only 80 synapses per neuron and n <= {args.brian2_max} (--brian2-max)"}
    try:
        import brian2  # noqa: F401
        from assets.cuba import brian2_description
        from brian2_cuba import run_brian2_cuba
    except Exception as exc:
        return {"skipped": f"brian2 does not import here ({type(exc).__name__}: {exc})"}
    try:
        r = run_brian2_cuba("cpp_standalone", brian2_description(cuba_network(n, k, seed=args.seed)),
                            args.duration, DT, str(Path(args.out) / "brian2"))
    except Exception as exc:
        return {"skipped": f"Brian2 cpp_standalone failed ({type(exc).__name__}: {str(exc)[-300:]})"}
    return {"sim_s": r["sim_s"], "wall_s": r["wall_s"], "x_brian2_sim": r["sim_s"] / gpu_run_s}


# ----------------------------------------------------------------------------- training layer


def layer_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Forward and backward of one 16k-LIF layer: ours (torch) and SpikingJelly (cupy)."""
    try:
        import torch
    except Exception as exc:
        return [{"impl": "neurosim torch", "skipped": f"torch does not import ({exc})"}]
    if not torch.cuda.is_available():
        return [{"impl": "neurosim torch", "skipped": "torch sees no CUDA device"}]
    from training.layers import from_network

    n_in, n, batch, steps, tau = args.layer_inputs, args.layer_neurons, args.layer_batch, args.layer_steps, 20.0
    rng = np.random.default_rng(args.seed)
    w = rng.normal(0.0, 2.0 / np.sqrt(n_in), (n_in, n))
    net = ns.Network(dt=1e-3, populations=[ns.Population("lif", n, ns.LIF(beta=1 - 1 / tau, reset="zero"))],
                     projections=[ns.Projection("in_lif", "in", "lif", w)], inputs=[ns.SpikeInput("in", n_in)])
    x = (torch.rand(steps, batch, n_in, device="cuda", generator=torch.Generator("cuda").manual_seed(0)) < 0.1).float()
    ours = from_network(net).cuda()

    def run_ours() -> torch.Tensor:
        out, _ = ours(x, record=("z",))
        return out["lif"]["z"]

    rows = [_time_layer("neurosim torch (training.layers)", ours, run_ours, torch)]
    z_ours = run_ours().detach()
    try:
        from spikingjelly.activation_based import functional, layer, neuron, surrogate
    except Exception as exc:
        rows.append({"impl": "spikingjelly cupy", "skipped": f"spikingjelly does not import ({type(exc).__name__}: {exc})"})
        return rows
    try:
        sj = torch.nn.Sequential(
            layer.Linear(n_in, n, bias=False, step_mode="m"),
            neuron.LIFNode(tau=tau, decay_input=False, v_threshold=1.0, v_reset=0.0,
                           surrogate_function=surrogate.Sigmoid(), step_mode="m", backend="cupy")).cuda()
        with torch.no_grad():
            sj[0].weight.copy_(torch.as_tensor(w.T, dtype=torch.float32))

        def run_sj() -> torch.Tensor:
            functional.reset_net(sj)
            return sj(x)

        row = _time_layer("spikingjelly LIFNode (cupy)", sj, run_sj, torch)
        z_sj = run_sj().detach()
        row["spikes_agree"] = float((z_sj == z_ours).float().mean().item())
        rows.append(row)
    except Exception as exc:
        rows.append({"impl": "spikingjelly cupy", "skipped": f"failed ({type(exc).__name__}: {str(exc)[-300:]})"})
    return rows


def _time_layer(name: str, module: Any, forward: Any, torch: Any, reps: int = 3) -> dict[str, Any]:
    fwd, bwd = [], []
    for rep in range(reps + 1):  # the first round warms up (kernel compilation, allocator)
        module.zero_grad(set_to_none=True)
        if rep == 1:
            torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        z = forward()
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        z.sum().backward()
        torch.cuda.synchronize()
        if rep:
            fwd.append(t1 - t0)
            bwd.append(time.perf_counter() - t1)
    rate = float(z.detach().float().mean().item())
    return {"impl": name, "forward_ms": 1e3 * min(fwd), "backward_ms": 1e3 * min(bwd),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30, "spike_prob": rate}


# ------------------------------------------------------------------------------------ tables


def print_tables(report: dict[str, Any], out: Callable[[str], None] = log) -> None:
    """The device, CUBA and layer tables of `report` (markdown) through `out`, line by line."""
    d = report.get("device") or {}
    if d:
        out("\n## Device\n| copy bandwidth (read+write) | direct launch | graph node |\n|---|---|---|")
        out(f"| {d['copy_bytes_per_s'] / 1e12:.2f} TB/s | {d['launch_direct_us']:.2f} us | "
            f"{d['launch_graph_node_us']:.2f} us |")
    if report["cuba"]:
        out(f"\n## CUBA, {report['args']['duration']} s at dt 0.1 ms, {report['args']['dtype']}, propagation=event\n"
            "| n | syn/n | synapses | steps/s | events/s | rate Hz | GB/s (idx+w) | of copy bw | "
            "numpy steps/s | x numpy/step | x numpy/event | Brian2 cpp sim s | x Brian2 |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in report["cuba"]:
            b2 = r["brian2"]
            xe = f"{r['x_numpy_per_event']:.3g}" if r["x_numpy_per_event"] else "-"
            b2_cells = f"{b2['sim_s']:.3f} | {b2['x_brian2_sim']:.3g}" if "sim_s" in b2 else "- | -"
            out(f"| {r['n']} | {r['syn_per_neuron']} | {r['synapses']:.3g} | {r['gpu_steps_per_s']:.0f} | "
                f"{r['gpu_events_per_s']:.3g} | {r['rate_hz']:.1f} | {r['bytes_per_s'] / 1e9:.3g} | "
                f"{100 * r['fraction_of_copy_bw']:.2g}% | {r['numpy_steps_per_s']:.3g} | {r['x_numpy_per_step']:.3g} | "
                f"{xe} | {b2_cells} |")
        skipped = {r["brian2"]["skipped"] for r in report["cuba"] if "skipped" in r["brian2"]}
        for reason in sorted(skipped):
            out(f"Brian2: {reason}")
    if report["layer"]:
        a = report["args"]
        out(f"\n## Training layer: {a['layer_inputs']} -> {a['layer_neurons']} LIF, batch {a['layer_batch']}, "
            f"T = {a['layer_steps']}, float32\n| implementation | forward ms | backward ms | peak GiB | note |\n|---|---|---|---|---|")
        for r in report["layer"]:
            if "skipped" in r:
                out(f"| {r['impl']} | - | - | - | {r['skipped']} |")
            else:
                note = f"spike prob {r['spike_prob']:.3f}"
                if "spikes_agree" in r:
                    note += f"; spikes equal to ours: {100 * r['spikes_agree']:.2f}%"
                out(f"| {r['impl']} | {r['forward_ms']:.1f} | {r['backward_ms']:.1f} | {r['peak_gib']:.2f} | {note} |")
    for note in report["notes"]:
        out(f"note: {note}")


# -------------------------------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    """The command line of this script (its defaults are the full benchmark's settings)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory for gpu.json (created)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[4000, 64000, 256000, 1000000])
    ap.add_argument("--syn", type=int, nargs="+", default=[80, 1000], help="synapses per neuron")
    ap.add_argument("--duration", type=float, default=1.0, help="biological seconds per CUBA run")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    ap.add_argument("--chunk", type=int, default=2000, help="steps per runner call")
    ap.add_argument("--numpy-seconds", type=float, default=3.0, help="length of each NumPy reference run")
    ap.add_argument("--brian2-max", type=int, default=64000)
    ap.add_argument("--budget", type=float, default=420.0, help="seconds; later CUBA rows are skipped past it")
    ap.add_argument("--skip-layer", action="store_true")
    ap.add_argument("--layer-inputs", type=int, default=1024)
    ap.add_argument("--layer-neurons", type=int, default=16384)
    ap.add_argument("--layer-batch", type=int, default=16)
    ap.add_argument("--layer-steps", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    return ap


def main() -> int:
    args = parser().parse_args()
    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"args": vars(args), "meta": {}, "device": {}, "cuba": [], "layer": [], "notes": []}

    def save() -> None:
        (out / "gpu.json").write_text(json.dumps(report, indent=1, default=float))

    try:
        cupy_backend.check()
    except ns.BackendUnavailable as exc:
        log(f"bench/gpu.py needs a GPU: {exc}")
        return 2
    import cupy

    report["meta"] = device_meta(cupy)
    log(f"device: {report['meta']['device']}; cupy {cupy.__version__}; numpy {np.__version__}")
    report["device"] = device_figures(cupy)
    log(f"copy {report['device']['copy_bytes_per_s'] / 1e12:.2f} TB/s; launch {report['device']['launch_direct_us']:.2f} us "
        f"direct, {report['device']['launch_graph_node_us']:.2f} us per graph node")
    report["meta"]["kernel_compile_and_first_run_s"] = warm_up(args.dtype)
    save()
    for k in args.syn:
        for n in args.sizes:
            if time.perf_counter() - t_start > args.budget:
                report["notes"].append(f"CUBA n={n} k={k} skipped: past the --budget of {args.budget:.0f} s")
                continue
            row = cuba_row(n, k, args, report["device"]["copy_bytes_per_s"], cupy)
            report["cuba"].append(row)
            save()
            log(f"CUBA n={n} k={k}: generate {row['generate_s']:.1f} s, {row['gpu_steps_per_s']:.0f} steps/s, "
                f"{row['gpu_events_per_s']:.3g} events/s, rate {row['rate_hz']:.1f} Hz, reruns "
                f"{row['gpu_stats']['reruns']}, numpy {row['numpy_steps_per_s']:.1f} steps/s "
                f"({row['numpy_steps']} steps), t = {time.perf_counter() - t_start:.0f} s")
    if args.skip_layer:
        report["notes"].append("training layer skipped (--skip-layer)")
    else:
        report["layer"] = layer_rows(args)
    report["meta"]["total_s"] = time.perf_counter() - t_start
    save()
    print_tables(report)
    log(f"\nwrote {out / 'gpu.json'} ({report['meta']['total_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Inference speed of ``neurosim.simulate`` against torch no_grad, and CUBA-4000 against Brian2
cpp_standalone, measured in the same run (issue 20, item 3 and bar line 3).

Feed-forward net: SpikeInput 700 -> dense Linear -> 1024 LIF (beta 0.95, theta 1, subtract
reset, delay 1), batch 32, T = 250, Bernoulli inputs at densities 1%, 5%, 20%, float32.
Torch runs the same net two ways, both under no_grad with 1 thread: the step loop users write
(``cur = x[t] @ W`` then the LIF update, per step) and the projection of all T steps as one GEMM
followed by the LIF loop; the faster of the two is the reference. neurosim and torch run in one
process, round-robin, each figure the median of --repeats; ratio = neurosim time / torch time
(the bar: <= 1.2). neurosim's time is the whole ``simulate`` call (lowering, run, recording).

CUBA (bench/cuba.py's network, 4000 neurons, 1 s at dt = 0.1 ms): simulation time of neurosim's
numba backend (``timings['run']``) against Brian2 cpp_standalone's loop inside its binary
(``sim_s``, warm build), both medians of --repeats; ratio = neurosim / Brian2 (the bar: <= 1.0).

--crossover: for the numba and numpy backends and both dtypes, the run time of the feed-forward
net event-driven (dense 'never') and as one product (dense 'always') over input densities; the
crossover is the lowest density where the product is faster.

    python bench/sim_speed.py                     # both bars
    python bench/sim_speed.py --crossover         # the dense switch's crossover per backend
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import neurosim as ns  # noqa: E402

S, N, B, T = 700, 1024, 32, 250
BETA, THETA = 0.95, 1.0


def ff_network(seed: int = 0) -> ns.Network:
    """SpikeInput 700 -> dense 700 x 1024 -> LIF 1024."""
    r = np.random.default_rng(seed)
    w = r.normal(0.0, 1.0, (S, N)) / np.sqrt(S * 0.05) * 0.5
    return ns.Network(dt=1e-3, populations=[ns.Population("h", N, ns.LIF(beta=BETA, theta=THETA))],
                      projections=[ns.Projection("fc", "x", "h", w)], inputs=[ns.SpikeInput("x", S)])


def torch_step_loop(x, w):
    """The per-step form: cur = x[t] @ W; v = beta*v + cur; z = v > theta; v -= theta*z."""
    import torch

    with torch.no_grad():
        xs = torch.from_numpy(x).to(torch.float32)
        v = torch.zeros(x.shape[1], w.shape[1])
        out = []
        for t in range(x.shape[0]):
            v = BETA * v + xs[t] @ w
            z = (v > THETA).to(torch.float32)
            v = v - THETA * z
            out.append(z)
        return torch.stack(out)


def torch_one_gemm(x, w):
    """The projection of all steps as one GEMM, then the LIF loop."""
    import torch

    with torch.no_grad():
        xs = torch.from_numpy(x).to(torch.float32)
        cur = (xs.reshape(-1, xs.shape[2]) @ w).reshape(x.shape[0], x.shape[1], -1)
        v = torch.zeros(x.shape[1], w.shape[1])
        out = []
        for t in range(x.shape[0]):
            v = BETA * v + cur[t]
            z = (v > THETA).to(torch.float32)
            v = v - THETA * z
            out.append(z)
        return torch.stack(out)


def timed(fn, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def feed_forward(densities: list[float], repeats: int, backend: str) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    net = ff_network()
    w = torch.from_numpy(np.asarray(net.projections[0].weights, np.float32))
    rows = []
    for dens in densities:
        x = np.random.default_rng(int(dens * 1e4)).random((T, B, S)) < dens
        sim = lambda x=x: ns.simulate(net, {"x": x}, T, backend=backend, dtype="float32")  # noqa: E731
        fns = {"neurosim": sim, "torch step loop": lambda: torch_step_loop(x, w),
               "torch one GEMM": lambda: torch_one_gemm(x, w)}
        for fn in fns.values():  # warm up (numba compile, caches)
            fn()
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(repeats):  # round-robin
            for k, fn in fns.items():
                times[k].append(timed(fn)[0])
        res = sim()
        z = torch_step_loop(x, w)
        med = {k: statistics.median(v) for k, v in times.items()}
        ref = min(med["torch step loop"], med["torch one GEMM"])
        rows.append(dict(density=dens, **med, ratio=med["neurosim"] / ref,
                         spikes_neurosim=len(res.spikes["h"]), spikes_torch=int(z.sum()),
                         dense=res.meta.get("backend_stats", {})))
        r = rows[-1]
        print(f"| {dens:.0%} | {r['neurosim']:.3f} | {r['torch step loop']:.3f} | {r['torch one GEMM']:.3f} | "
              f"{r['ratio']:.2f} | {r['spikes_neurosim']} / {r['spikes_torch']} | {r['dense']} |", flush=True)
    return rows


def cuba(repeats: int, workdir: str) -> dict:
    from assets.cuba import brian2_description, cuba_network
    from brian2_cuba import run_brian2_cuba

    net = cuba_network(4000, seed=0)
    steps = 10_000
    ns.simulate(cuba_network(100, seed=1), steps=10, backend="numba")  # compile
    desc = brian2_description(net)
    ours, theirs = [], []
    for _ in range(repeats):  # round-robin; Brian2's first call also builds (warm=True discards it)
        ours.append(ns.simulate(net, steps=steps, backend="numba").timings["run"])
        theirs.append(run_brian2_cuba("cpp_standalone", desc, 1.0, 1e-4, workdir, warm=not theirs)["sim_s"])
    out = dict(neurosim=statistics.median(ours), brian2=statistics.median(theirs), all_neurosim=ours,
               all_brian2=theirs)
    out["ratio"] = out["neurosim"] / out["brian2"]
    print(f"CUBA-4000: neurosim numba run {out['neurosim']:.4f} s, Brian2 cpp_standalone sim {out['brian2']:.4f} s, "
          f"ratio {out['ratio']:.2f} (runs: {[round(v, 4) for v in ours]} / {[round(v, 4) for v in theirs]})")
    return out


CROSSOVER_DENSITIES = {"numba": [0.02, 0.05, 0.1, 0.2, 0.4], "numpy": [0.001, 0.002, 0.005, 0.01, 0.02]}


def crossover(repeats: int, backends: list[str]) -> None:
    """Event-driven against product run time per backend, dtype and density (numpy: 20 steps)."""
    net = ff_network()
    print("| backend | dtype | density | event-driven s | product s | faster |")
    print("|---|---|---|---|---|---|")
    for backend in backends:
        densities = CROSSOVER_DENSITIES[backend]
        for dtype in ("float32", "float64"):
            first = None
            for dens in densities:
                steps = T if backend == "numba" else 20
                x = np.random.default_rng(1).random((steps, B, S)) < dens
                t = {}
                for opt in ("never", "always"):
                    run = lambda opt=opt: ns.simulate(net, {"x": x}, steps, backend=backend, dtype=dtype,  # noqa: E731
                                                      backend_options={"dense": opt}).timings["run"]
                    run()
                    t[opt] = statistics.median(run() for _ in range(repeats))
                faster = "product" if t["always"] < t["never"] else "events"
                if faster == "product" and first is None:
                    first = dens
                print(f"| {backend} | {dtype} | {dens:.1%} | {t['never']:.3f} | {t['always']:.3f} | {faster} |",
                      flush=True)
            print(f"crossover {backend} {dtype}: {first}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.05, 0.2])
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--no-cuba", action="store_true")
    ap.add_argument("--crossover", action="store_true")
    ap.add_argument("--crossover-backends", nargs="+", default=["numba", "numpy"])
    ap.add_argument("--workdir", default="bench/out")
    args = ap.parse_args()
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, numpy {np.__version__}")
    if args.crossover:
        crossover(args.repeats, args.crossover_backends)
        return 0
    print(f"Feed-forward {S} -> {N} LIF, batch {B}, T = {T}, float32, backend {args.backend}; seconds, medians of "
          f"{args.repeats}; ratio = neurosim / faster torch")
    print("| density | neurosim | torch step loop | torch one GEMM | ratio | spikes ns / torch | dense switch |")
    print("|---|---|---|---|---|---|---|")
    rows = feed_forward(args.densities, args.repeats, args.backend)
    ok = all(r["ratio"] <= 1.2 for r in rows)
    if not args.no_cuba:
        ok = cuba(args.repeats, args.workdir)["ratio"] <= 1.0 and ok
    print("bar line 3 met" if ok else "bar line 3 NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

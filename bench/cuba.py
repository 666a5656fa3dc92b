"""CUBA (Vogels and Abbott 2005, one synaptic tau) in neurosim and Brian2, side by side.

For each size: the same connectivity and initial state run 1 s of biological time at
dt = 0.1 ms in neurosim (numpy reference, numba compiled) and Brian2 (numpy, cython,
cpp_standalone). Prints a table of wall time (build + compile + run, as a user waits),
simulation-only time, synaptic events per second, mean rate, and the ratio of each Brian2
target's time to neurosim's; checks that firing rates agree statistically.

    python bench/cuba.py                      # 4k, 16k, 64k
    python bench/cuba.py --sizes 4000 --targets cpp_standalone
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import neurosim as ns  # noqa: E402
from assets.cuba import brian2_description, cuba_network  # noqa: E402


def synaptic_events(spike_neurons: np.ndarray, out_degree: np.ndarray) -> int:
    """Number of synapse activations: each spike of neuron j activates out_degree[j] synapses."""
    return int(out_degree[spike_neurons].sum())


def run_neurosim(n: int, backend: str, seed: int, steps: int) -> dict:
    t0 = time.perf_counter()
    net = cuba_network(n, seed=seed)
    res = ns.simulate(net, steps=steps, backend=backend)
    wall = time.perf_counter() - t0
    n_exc = net.population("exc").size
    neurons = np.concatenate([res.spikes["exc"].index, res.spikes["inh"].index + n_exc])
    return dict(target=f"neurosim-{backend}", wall_s=wall, sim_s=res.timings["run"],
                spike_i=neurons, n_spikes=int(neurons.size), rate_hz=neurons.size / (n * steps * net.dt))


def rate_check(a: np.ndarray, b: np.ndarray, n: int, seconds: float) -> tuple[float, float, bool]:
    """(relative difference of mean rates, KS statistic of per-neuron rates, agree?)."""
    from scipy.stats import ks_2samp

    ra = np.bincount(a, minlength=n) / seconds
    rb = np.bincount(b, minlength=n) / seconds
    rel = abs(ra.mean() - rb.mean()) / max(rb.mean(), 1e-12)
    ks = ks_2samp(ra, rb).statistic
    return rel, ks, bool(rel < 0.15 and ks < 0.1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4000, 16000, 64000])
    ap.add_argument("--duration", type=float, default=1.0, help="biological time, seconds")
    ap.add_argument("--targets", nargs="+", default=["numpy", "cython", "cpp_standalone"],
                    help="Brian2 targets to run (default: all three)")
    ap.add_argument("--brian2-numpy-max", type=int, default=16000,
                    help="skip Brian2's numpy target above this size (it takes minutes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default="bench/out")
    ap.add_argument("--json", default="bench/out/cuba.json")
    args = ap.parse_args()
    from brian2_cuba import run_brian2_cuba

    dt = 1e-4
    steps = int(round(args.duration / dt))
    os.makedirs(args.workdir, exist_ok=True)
    # compile the numba kernel once so its timings below are warm (the cold compile is reported)
    t = time.perf_counter()
    ns.simulate(cuba_network(100, seed=1), steps=10, backend="numba")
    numba_cold = time.perf_counter() - t
    rows = []
    for n in args.sizes:
        net = cuba_network(n, seed=args.seed)
        out_degree = np.zeros(n, np.int64)
        desc = brian2_description(net)
        np.add.at(out_degree, desc["pre"], 1)
        runs = [run_neurosim(n, "numpy", args.seed, steps), run_neurosim(n, "numba", args.seed, steps)]
        for target in args.targets:
            if target == "numpy" and n > args.brian2_numpy_max:
                continue
            r = run_brian2_cuba(target, desc, args.duration, dt, args.workdir)
            r["target"] = f"brian2-{target}"
            runs.append(r)
        ref = {r["target"]: r for r in runs}
        for r in runs:
            ev = synaptic_events(np.asarray(r["spike_i"]), out_degree)
            rel, ks, ok = rate_check(np.asarray(r["spike_i"]), np.asarray(ref["neurosim-numpy"]["spike_i"]),
                                     n, args.duration)
            rows.append(dict(n=n, target=r["target"], wall_s=r["wall_s"], sim_s=r["sim_s"],
                             events=ev, events_per_s=ev / r["sim_s"], rate_hz=r["n_spikes"] / (n * args.duration),
                             rate_rel_diff=rel, ks=ks, rates_agree=ok))
        print_table([row for row in rows if row["n"] == n])
    meta = dict(machine=platform.processor() or platform.machine(), cpus=os.cpu_count(),
                python=platform.python_version(), numpy=np.__version__, numba_cold_compile_s=numba_cold)
    try:
        import brian2

        meta["brian2"] = brian2.__version__
    except ImportError:
        pass
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
    print(f"\nnumba cold compile (first ever call, cached to disk afterwards): {numba_cold:.2f} s")
    print(f"rates agree (mean within 15%, KS < 0.1 vs neurosim-numpy): "
          f"{all(r['rates_agree'] for r in rows)}")
    return 0 if all(r["rates_agree"] for r in rows) else 1


def print_table(rows: list[dict]) -> None:
    """Markdown table; ratios are Brian2 time / neurosim time (> 1: neurosim faster)."""
    n = rows[0]["n"]
    ns_rows = {r["target"]: r for r in rows if r["target"].startswith("neurosim")}
    b2 = [r for r in rows if r["target"].startswith("brian2")]
    print(f"\nCUBA n = {n}, 1 s biological time, dt = 0.1 ms")
    print("| target | wall s | sim s | events/s | rate Hz | rate diff | KS |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['target']} | {r['wall_s']:.3f} | {r['sim_s']:.4f} | {r['events_per_s']:.3g} | "
              f"{r['rate_hz']:.2f} | {100 * r['rate_rel_diff']:.1f}% | {r['ks']:.3f} |")
    if b2:
        print("\n| neurosim backend | " + " | ".join(f"{b['target']} wall ratio | sim ratio" for b in b2) + " |")
        print("|---|" + "---|---|" * len(b2))
        for name, ours in ns_rows.items():
            cells = " | ".join(f"{b['wall_s'] / ours['wall_s']:.2f}x | {b['sim_s'] / ours['sim_s']:.2f}x" for b in b2)
            print(f"| {name} | {cells} |")


if __name__ == "__main__":
    raise SystemExit(main())

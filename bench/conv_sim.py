"""Event-driven convolution against the dense-lowered reference on an N-MNIST-sized network.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/conv_sim.py [--steps 300] [--batch 1 8] [--repeats 3]

Network: 2x34x34 input -> conv 16 5x5 stride 2 -> LIF (16, 15, 15) -> sum pool 2 -> IF (16, 7, 7)
-> conv 32 3x3 padding 1 -> LIF (32, 7, 7) -> average pool 2 -> IF (32, 3, 3) -> dense 10 -> LI,
random weights (seed 0), input spikes Bernoulli(p) per pixel and step. For each backend (numpy,
numba) and mode ('events': kernels in the plan; 'lowered': the CSR expansion), the table gives
the setup time (lowering, tables, compiled-kernel load), the best run time of `repeats`, the steps
per second, the input synaptic events per second (events reached by the run's spikes, counted from
the lowering) and the bytes the plan holds for synapses. Both modes give identical spikes (checked).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import neurosim as ns
from neurosim.plan import lower


def nmnist_network(seed: int = 0) -> ns.Network:
    r = np.random.default_rng(seed)
    pops = [ns.Population("c1", (16, 15, 15), ns.LIF(beta=0.9, theta=1.0)),
            ns.Population("p1", (16, 7, 7), ns.IF(theta=2.5)),
            ns.Population("c2", (32, 7, 7), ns.LIF(beta=0.9, theta=1.0)),
            ns.Population("p2", (32, 3, 3), ns.IF(theta=0.6)),
            ns.Population("out", 10, ns.LI(beta=0.9))]
    projs = [ns.Conv2d("c1", "in", "c1", r.normal(0.0, 0.25, (16, 2, 5, 5)), stride=2),
             ns.SumPool2d("p1", "c1", "p1", 2),
             ns.Conv2d("c2", "p1", "c2", r.normal(0.0, 0.15, (32, 16, 3, 3)), padding=1),
             ns.AvgPool2d("p2", "c2", "p2", 2),
             ns.Projection("fc", "p2", "out", r.normal(0, 0.3, (288, 10)))]
    return ns.Network(1e-3, pops, projs, [ns.SpikeInput("in", (2, 34, 34))], name="nmnist_conv")


def plan_bytes(plan) -> int:
    n = plan.indptr.nbytes + plan.indices.nbytes + plan.weights.nbytes + plan.delays.nbytes
    if plan.conv is not None:
        c = plan.conv
        n += sum(a.nbytes for a in (c.ops, c.kernel, c.delay, c.tap_ptr, c.tap_k, c.tap_out))
    return n


def synaptic_events(net: ns.Network, res: ns.SimulationResult) -> int:
    """Synapses reached by the run's spikes: the sender's out-degree in the lowering, summed."""
    total = 0
    for j in net.lowered().projections:
        degree = np.diff(j.to_csr()[0].indptr)
        total += int(degree[np.asarray(res.spikes[j.pre].index)].sum())
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rate", type=float, default=0.05, help="input spike probability per pixel and step")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    net = nmnist_network()
    print(f"network: {net.n_neurons} neurons, {net.n_synapses} synapses lowered, "
          f"{sum(j.n_weights for j in net.shaped)} shared weights in the shaped projections")
    print("| backend | batch | mode | setup s | run s (best of %d) | steps/s | synaptic events/s | plan synapse bytes | spikes |"
          % args.repeats)
    print("|---|---|---|---|---|---|---|---|---|")
    for batch in args.batch:
        inp = {"in": np.random.default_rng(1).random((args.steps, batch, 2312)) < args.rate}
        for backend in ("numpy", "numba"):
            ns.simulate(net, inp, 5, backend=backend)  # compile / warm
            ns.simulate(net, inp, 5, backend=backend, convolution="lowered")
            ref = None
            for mode in ("events", "lowered"):
                runs = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    res = ns.simulate(net, inp, args.steps, backend=backend, convolution=mode)
                    runs.append((res.timings["run"], res.timings["setup"], time.perf_counter() - t0))
                best = min(runs)
                n_spk = sum(len(s) for name, s in res.spikes.items() if name != "in")
                if ref is None:
                    ref = res
                else:
                    assert all(np.array_equal(ref.spikes[k].dense(), res.spikes[k].dense()) for k in res.spikes)
                events = synaptic_events(net, res)
                nbytes = plan_bytes(lower(net, "float64", mode))
                print(f"| {backend} | {batch} | {mode} | {best[1]:.3f} | {best[0]:.3f} | {args.steps / best[0]:.0f} | "
                      f"{events / best[0]:.3g} | {nbytes:,} | {n_spk} |", flush=True)


if __name__ == "__main__":
    main()

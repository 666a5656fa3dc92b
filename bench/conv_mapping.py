"""Conv networks through Brian2 and Lava (issue 21, items 2 and 4, bar line 1): spike agreement
with neurosim on random conv networks and on a trained event-digit network.

    python bench/conv_mapping.py random [--steps 40]
    python bench/conv_mapping.py trained --model RUN/model.h5 [--trials 4]
    python bench/conv_mapping.py trained --train-epochs 2 [--trials 4]

Per network and target, 'bins' is the fraction of (step, trial, neuron) bins of every spiking
population whose spike/no-spike equals the reference: neurosim.simulate (float64) for Brian2
(numpy target, float64) and Lava floating_pt; neurosim's fixed-point mode (simulate_fixed of
quantize(network)) for Lava fixed_pt. 'shaped' counts the shaped projections Lava ran as its
Conv process and those it ran as their CSR lowering (Flatten, delays > 1, per-neuron factors).
For the trained network, 'readout |dv|' is the largest difference of the LI readout's v.
random: the 7 networks of tests/conv_lava_nets.py (every conv and pool a Lava Conv) and 3 of
tests/conv_nets.py (per-tap delays, per-neuron thresholds, recurrent convs: the fallback).
trained: `neurosim train --task nmnist_digits --arch ARCH --epochs N` (1 thread), or a given
model.h5 of such a run; inputs are the first trials of the task's test split.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

ARCH = "conv(16,k=5,s=2,p=2,reset=zero),pool(2),conv(32,k=3,p=1,reset=zero),pool(2),flatten,dense(10)"


def agreement(ref, got, names) -> tuple[float, int]:
    """(fraction of identical bins over `names`, spikes in the reference)."""
    same = total = spikes = 0
    for n in names:
        a, b = ref.spikes[n].dense(), got.spikes[n].dense()
        same += int(np.count_nonzero(a == b))
        total += a.size
        spikes += int(a.sum())
    return same / total, spikes


def compare(name: str, net, x, steps: int, readout: str | None = None) -> dict:
    import neurosim as ns
    from mapping.brian2_export import run_brian2
    from mapping.lava_export import run_lava
    from neurosim.fixed_point import quantize, simulate_fixed

    names = [p.name for p in net.populations if p.spiking]
    tr = {readout: ["v"]} if readout else None
    row: dict = {"network": name, "neurons": net.n_neurons, "synapses": net.n_synapses, "steps": steps,
                 "trials": int(next(iter(x.values())).shape[1])}
    t0 = time.perf_counter()
    ref = ns.simulate(net, x, steps, traces=tr)
    row["neurosim_s"] = round(time.perf_counter() - t0, 2)
    fixed = quantize(net)
    ref_fixed = simulate_fixed(fixed, x, steps, traces=tr)
    runs = {"brian2": (ref, lambda: run_brian2(net, x, steps, target="numpy", traces=tr)),
            "lava_float": (ref, lambda: run_lava(net, x, steps, mode="floating_pt", traces=tr)),
            "lava_fixed": (ref_fixed, lambda: run_lava(fixed, x, steps, mode="fixed_pt", traces=tr))}
    for target, (want, run) in runs.items():
        t0 = time.perf_counter()
        got = run()
        bins, spikes = agreement(want, got, names)
        row[target] = {"bins": bins, "spikes": spikes, "seconds": round(time.perf_counter() - t0, 1)}
        if readout:
            row[target]["readout_max_abs_dv"] = float(np.abs(got.traces[readout]["v"] - want.traces[readout]["v"]).max())
        if target.startswith("lava"):
            kinds = list(got.meta["shaped"].values())
            row[target]["shaped"] = {"Conv": kinds.count("Conv"), "lowered": len(kinds) - kinds.count("Conv")}
    row["fixed_vs_float_bins"] = agreement(ref, ref_fixed, names)[0]
    print(json.dumps(row), flush=True)
    return row


def random_networks(args: argparse.Namespace) -> list[dict]:
    from conv_lava_nets import lava_conv_network, spikes_in
    from conv_nets import conv_inputs, random_conv_network

    rows = []
    for s in range(7):
        net = lava_conv_network(s)
        rows.append(compare(net.name, net, spikes_in(net, s, args.steps), args.steps))
    for s in range(3):
        net = random_conv_network(s)
        rows.append(compare(net.name + "_fallback", net, conv_inputs(net, s, args.steps, 1), args.steps))
    return rows


def trained_network(args: argparse.Namespace) -> list[dict]:
    import torch

    import neurosim as ns
    from training.runfiles import to_batch
    from training.tasks import make_task

    model = args.model
    with tempfile.TemporaryDirectory() as d:
        if model is None:
            env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
            cmd = [sys.executable, "-m", "neurosim", "train", "--task", "nmnist_digits", "--arch", args.arch,
                   "--epochs", str(args.train_epochs), "--seed", "0", "--device", "cpu", "--no-progress",
                   "--out", str(Path(d) / "run")]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, env=env)
            print(json.dumps({"trained_s": round(time.perf_counter() - t0, 1), "command": " ".join(cmd)}), flush=True)
            model = str(Path(d) / "run" / "model.h5")
        net = ns.load(model)
    task = make_task("nmnist_digits", seed=0)
    batch = to_batch(task.test, np.arange(args.trials), torch.float64)
    x = {net.inputs[0].name: batch.inputs.numpy() != 0}
    readout = next(p.name for p in net.populations if not p.spiking)
    return [compare(net.name, net, x, int(batch.inputs.shape[0]), readout)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("random", "trained"))
    p.add_argument("--steps", type=int, default=40, help="random: steps per network")
    p.add_argument("--model", default=None, help="trained: a model.h5 written by neurosim train")
    p.add_argument("--train-epochs", type=int, default=2, help="trained: epochs when --model is not given")
    p.add_argument("--arch", default=ARCH)
    p.add_argument("--trials", type=int, default=4, help="trained: test trials")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    args = p.parse_args()
    rows = random_networks(args) if args.mode == "random" else trained_network(args)
    print("network                 brian2    lava float  lava fixed  (bins identical; Lava: Conv/lowered)")
    for r in rows:
        lf, lx = r["lava_float"], r["lava_fixed"]
        print(f"{r['network']:<22}  {r['brian2']['bins']:.4f}    {lf['bins']:.4f}      {lx['bins']:.4f}      "
              f"{lf['shaped']['Conv']}/{lf['shaped']['lowered']} float, {lx['shaped']['Conv']}/{lx['shaped']['lowered']} fixed")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

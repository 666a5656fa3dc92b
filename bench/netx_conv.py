"""NetX conv export (issue 21, item 3): conv networks written by `to_netx` run in lava-dl's own
``netx.hdf5.Network`` (Lava fixed_pt) with exactly neurosim's fixed-point spikes and u, v.

Part 1: random NetX-expressible conv networks (tests/netx_conv_nets.py: stride, padding,
dilation, groups, sum and average pooling, a second conv on some, flatten -> dense readout).
Part 2: the event-digit conv SNN, trained through the CLI (or --model RUN/model.h5), exported
with `neurosim export --to netx`, run on test samples of nmnist_digits (one NetX run per sample).
Every (step, neuron) bin of every layer is compared, and u, v of every layer at every step.

    python bench/netx_conv.py --nets 10 --samples 5
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

ARCH = ("conv(16,k=5,s=2,p=2,reset=zero),pool(2,reset=zero),conv(32,k=3,p=1,reset=zero),pool(2,reset=zero),"
        "flatten,dense(10)")


def compare(path: str, fixed, x: np.ndarray, steps: int, tally: dict) -> None:
    """Run `path` in lava-dl NetX and `fixed` in simulate_fixed on `x` (steps, n_in); add per
    population [equal bins, bins, spikes, u/v equal at every step] to `tally`."""
    from mapping.netx import run_netx
    from neurosim.fixed_point import simulate_fixed

    names = [p.name for p in fixed.populations]
    want = simulate_fixed(fixed, {fixed.inputs[0].name: x[:, None, :]}, steps,
                          traces={n: ["u_int", "v_int"] for n in names})
    got = run_netx(path, {fixed.inputs[0].name: x}, steps, traces=True)
    for n in names:
        a, b = got.spikes[n].dense(), want.spikes[n].dense()
        t = tally.setdefault(n, [0, 0, 0, True])
        t[0] += int((a == b).sum())
        t[1] += a.size
        t[2] += int(b.sum())
        t[3] &= all(np.array_equal(got.traces[n][v], want.traces[n][v]) for v in ("u_int", "v_int"))


def report(title: str, tally: dict) -> None:
    print(title)
    for n, (eq, bins, spikes, uv) in tally.items():
        print(f"  {n:<8} {eq}/{bins} bins identical ({eq / bins:.4f}), {spikes} spikes, u and v identical: {uv}")


def random_nets(n: int, steps: int) -> None:
    from mapping.netx import netx_quantize, to_netx
    from netx_conv_nets import random_input, random_netx_conv_network

    total = [0, 0, 0, True]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(n):
            net = random_netx_conv_network(seed)
            path = os.path.join(tmp, f"net{seed}.h5")
            to_netx(net, path)
            tally: dict = {}
            compare(path, netx_quantize(net), random_input(net, seed, steps), steps, tally)
            kinds = ", ".join(type(j).__name__ for j in net.projections)
            eq, bins = sum(t[0] for t in tally.values()), sum(t[1] for t in tally.values())
            spikes, uv = sum(t[2] for t in tally.values()), all(t[3] for t in tally.values())
            print(f"net {seed}: {kinds}; {eq}/{bins} bins identical, {spikes} spikes, u and v identical: {uv}")
            total = [total[0] + eq, total[1] + bins, total[2] + spikes, total[3] and uv]
    print(f"random conv nets: {n} nets x {steps} steps: {total[0]}/{total[1]} bins identical "
          f"({total[0] / total[1]:.4f}), {total[2]} spikes, u and v identical: {total[3]} "
          f"({time.perf_counter() - t0:.0f} s)")


def trained(model: str, samples: int) -> None:
    import neurosim as ns
    from mapping.netx import netx_quantize
    from neurosim.cli.app import main as cli
    from training.tasks import make_task

    with tempfile.TemporaryDirectory() as tmp:
        if model is None:
            t0 = time.perf_counter()
            model = os.path.join(tmp, "run", "model.h5")
            assert cli(["train", "--task", "nmnist_digits", "--arch", ARCH, "--epochs", "1", "--device", "cpu",
                        "--no-progress", "--out", os.path.dirname(model)]) == 0
            print(f"trained in {time.perf_counter() - t0:.0f} s")
        path = os.path.join(tmp, "model.netx.h5")
        assert cli(["export", model, "--to", "netx", "--out", path]) == 0
        net = ns.load(model)
        fixed = netx_quantize(net)
        task = make_task("nmnist_digits", seed=0)
        x_test = np.asarray(task.test.inputs)[:samples]
        tally: dict = {}
        t0 = time.perf_counter()
        for x in x_test:
            compare(path, fixed, x != 0, x.shape[0], tally)
        report(f"trained event-digit conv SNN ({os.path.basename(model)}), {len(x_test)} test samples x "
               f"{x_test.shape[1]} steps ({time.perf_counter() - t0:.0f} s in NetX + simulate_fixed):", tally)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", type=int, default=10, help="random conv networks")
    ap.add_argument("--steps", type=int, default=60, help="steps per random network")
    ap.add_argument("--samples", type=int, default=5, help="nmnist_digits test samples for the trained net")
    ap.add_argument("--model", default=None, help="a trained model.h5 (default: train one epoch now)")
    args = ap.parse_args()
    if args.nets:
        random_nets(args.nets, args.steps)
    if args.samples:
        trained(args.model, args.samples)


if __name__ == "__main__":
    main()

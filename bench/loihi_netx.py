"""Loihi for what neurosim trains (issue 18, item 4): train a LIF network with zero reset through
the CLI, export it to NetX, run the file in lava-dl's own netx.hdf5.Network (Lava fixed_pt) and
compare every (step, neuron) bin and the readout's u, v with neurosim's fixed-point mode.

    python bench/loihi_netx.py --readout lif --trials 3
    python bench/loihi_netx.py --readout li --trials 3
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readout", default="lif", choices=("lif", "li"))
    ap.add_argument("--task", default="delayed_xor")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--trials", type=int, default=3, help="random inputs run in NetX")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rate", type=float, default=0.2, help="input spike probability per channel and step")
    args = ap.parse_args()

    import neurosim as ns
    from mapping.netx import netx_quantize, run_netx
    from mapping.netx_readout import li_bound
    from neurosim.cli.app import main as cli
    from neurosim.fixed_point import simulate_fixed

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        t0 = time.perf_counter()
        assert cli(["train", "--task", args.task, "--model", "lif", "--reset", "zero", "--readout", args.readout,
                    "--hidden", str(args.hidden), "--epochs", str(args.epochs), "--n-train", "256", "--n-test", "64",
                    "--device", "cpu", "--no-progress", "--out", str(run)]) == 0
        t_train = time.perf_counter() - t0
        path = str(Path(tmp) / "net.h5")
        assert cli(["export", str(run / "model.h5"), "--to", "netx", "--out", path]) == 0
        net = ns.storage.load(str(run / "model.h5"))
        fixed = netx_quantize(net)
        if args.readout == "li":
            print(f"LI readout worst-case |v| bound: {li_bound(fixed, 'out'):.0f} (threshold {131071 << 6})")
        rng = np.random.default_rng(0)
        total = {k: [0, 0, 0] for k in ("hidden", "out")}  # equal bins, bins, spikes
        trace_equal = True
        t_netx = 0.0
        for _ in range(args.trials):
            x = rng.random((args.steps, net.inputs[0].size)) < args.rate
            want = simulate_fixed(fixed, {"in": x[:, None, :]}, args.steps,
                                  traces={"hidden": ["u_int", "v_int"], "out": ["u_int", "v_int"]})
            t1 = time.perf_counter()
            got = run_netx(path, {"in": x}, args.steps, traces=True)
            t_netx += time.perf_counter() - t1
            for k in total:
                a, b = got.spikes[k].dense(), want.spikes[k].dense()
                total[k][0] += int((a == b).sum())
                total[k][1] += a.size
                total[k][2] += int(b.sum())
                trace_equal &= all(np.array_equal(got.traces[k][v], want.traces[k][v]) for v in ("u_int", "v_int"))
        for k, (eq, n, spikes) in total.items():
            print(f"{k}: {eq}/{n} (step, neuron) bins identical ({eq / n:.4f}), {spikes} spikes")
        print(f"u, v identical at every step: {trace_equal}")
        print(f"train {t_train:.1f} s; lava-dl NetX runs {t_netx:.1f} s for {args.trials} x {args.steps} steps")


if __name__ == "__main__":
    main()

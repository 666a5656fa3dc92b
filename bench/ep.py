"""Equilibrium Propagation in discrete time (Ernoult et al. 2019) against BPTT, on static digits.

1. GDU check as the authors did: free phase to the steady state s_*, then per step t of the
   nudged phase EP's neural and synaptic updates against -BPTT's instantaneous gradients
   (autograd on the network unrolled K steps from s_*), float64, 20 training images; per layer
   the median relative RMSE and the sign agreement (training.methods.ep_net.compare), and a PNG of the
   per-step curves for a few neurons and synapses (bench/out/ep_gdu.png).
2. Training 64-256-10 by EP and by BPTT, same network and settings except the rule, in the
   authors' recipe (plain SGD, per-layer rates) and with Adam, with the authors' smooth sigmoid
   and with the hard sigmoid, 3 seeds: test accuracy, fraction of training samples whose target
   output is dead (input <= 0), seconds per epoch, free-phase steps; peak tensor memory of one
   batch's gradient (LiveBytes).

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/ep.py [--quick] [--part gdu|train] [--seeds N]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.methods import ep_net as E  # noqa: E402
from training.methods.ep import EPOptions, batch_gradient, digits_static  # noqa: E402
from training.budget.memory import LiveBytes  # noqa: E402
from training.trainer import TrainConfig, train  # noqa: E402

OUT = ROOT / "bench" / "out"


def gdu(hidden: int, layers: int, beta: float, symmetric: bool, K: int, T: int, outside: bool = False):
    x, lab, _, _ = digits_static(0)
    x = torch.as_tensor(x[:20], dtype=torch.float64)
    y = torch.nn.functional.one_hot(torch.as_tensor(lab[:20]), 10).double()
    p = E.init_params([10] + [hidden] * layers + [64], 0, torch.float64)
    return E.gdu_table(x, y, p, T=T, K=K, beta=beta, symmetric=symmetric, tol=1e-9, outside=outside), (x, y, p)


def plot_curves(cases, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.2 * len(cases)))
    axes = fig.subplots(len(cases), 4, squeeze=False)
    for row, (title, (x, y, p), T, K, beta) in zip(axes, cases):
        s_star, _ = E.free_phase(x, p, T)
        ep = E.ep_updates(x, y, p, s_star, beta, K)
        bp = E.bptt_gradients(x, y, p, s_star, K)
        act = E.active_units(x, s_star, p)
        t = np.arange(K)
        panels = [("s0", ep.neurons[0][:, 0], bp.neurons[0][:, 0], act[0][0]),
                  ("s1", ep.neurons[1][:, 0], bp.neurons[1][:, 0], act[1][0]),
                  ("W0", ep.synapses["W0"].reshape(K, -1), bp.synapses["W0"].reshape(K, -1), None),
                  (f"W{len(s_star) - 1}", ep.synapses[f"W{len(s_star) - 1}"].reshape(K, -1),
                   bp.synapses[f"W{len(s_star) - 1}"].reshape(K, -1), None)]
        for ax, (name, e, g, mask) in zip(row, panels):
            e, g = e.numpy(), g.numpy()
            cols = np.flatnonzero(mask.numpy()) if mask is not None else np.argsort(-np.abs(g).sum(0))
            for j, c in enumerate(cols[:3]):
                ax.plot(t, e[:, c], "-", color=f"C{j}", label="dEP" if j == 0 else None)
                ax.plot(t, -g[:, c], "--", color=f"C{j}", label="-grad BPTT" if j == 0 else None)
            ax.set(title=f"{title}: {name}", xlabel="t (nudged step / steps back)")
            ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def peak_bytes(o: EPOptions, hidden: int) -> int:
    x, lab, _, _ = digits_static(0)
    xb = torch.as_tensor(x[:32])
    yb = torch.nn.functional.one_hot(torch.as_tensor(lab[:32]), 10).float()
    p = E.init_params([10] + [hidden] * o.layers + [64], 0)
    with LiveBytes() as lb:
        batch_gradient(xb, yb, p, o)
    return lb.peak


# The training comparison: EP and BPTT on the same network, data, initialisation, T/K, optimiser and
# schedule; only the rule differs. "paper" = the authors' discrete-time fully connected recipe (plain
# SGD, per-layer rates output layer first, batch 20, constant rate, K = 15, beta = 0.1 one-sided);
# "adam" = this repository's default (Adam, cosine decay from 1e-3, batch 32, K = 10, beta = 0.5 symmetric).
SETTINGS = {
    "paper": dict(batch_size=20, lr=0.04, schedule="constant",
                  opts={"optimizer": "sgd", "lr_layers": (0.04, 0.08), "K": 15}, ep={"beta": 0.1, "nudge": "one_sided"}),
    "adam": dict(batch_size=32, lr=1e-3, schedule="cosine", opts={}, ep={}),
    "paper2": dict(batch_size=20, lr=0.005, schedule="constant",
                   opts={"layers": 2, "optimizer": "sgd", "lr_layers": (0.005, 0.05, 0.2), "K": 20},
                   ep={"beta": 0.5, "nudge": "one_sided"}),
}


def train_row(setting: str, activation: str, method: str, seed: int, epochs: int, extra: dict | None = None) -> dict:
    st = SETTINGS[setting]
    opts = {**st["opts"], "activation": activation, **(st["ep"] if method == "ep" else {"baseline": "bptt"}),
            **(extra or {})}
    cfg = TrainConfig(task="digits_static", rule="ep", epochs=epochs, batch_size=st["batch_size"], lr=st["lr"],
                      schedule=st["schedule"], hidden=256, seed=seed, rule_options=opts)
    tag = "_".join([setting, activation, method, f"s{seed}"] + [f"{k}{v}" for k, v in (extra or {}).items()])
    t0 = time.perf_counter()
    hist = train(cfg, OUT / "ep_runs" / tag, progress=False)["history"]
    return dict(setting=setting, activation=activation, method=method, seed=seed, options=opts,
                test_acc=hist[-1]["test_acc"], best_test_acc=max(r["test_acc"] for r in hist),
                train_acc=hist[-1]["train_acc"], dead_target=hist[-1]["dead_target"],
                s_per_epoch=float(np.mean([r["seconds"] for r in hist])),
                free_steps=float(np.mean([r["free_steps"] for r in hist])),
                unconverged=float(np.mean([r["unconverged"] for r in hist])), wall_s=time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="3 epochs, one seed, for a smoke test")
    ap.add_argument("--part", choices=("all", "gdu", "train"), default="all")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    results: dict = {"gdu": {}, "train": [], "peak_mib": {}}
    if args.part in ("all", "gdu"):
        run_gdu(results)
    if args.part in ("all", "train"):
        epochs, seeds = (3, 1) if args.quick else (30, args.seeds)
        print("\n## training on static digits (1437 train / 360 test, 64-256-10)")
        for seed in range(seeds):
            for setting in ("paper", "adam"):
                for activation in ("sigmoid", "hard"):
                    for method in ("ep", "bptt"):
                        results["train"].append(train_row(setting, activation, method, seed, epochs))
                        print(json.dumps(results["train"][-1]))
        extras = [("paper", "hard", "ep", {"beta": 0.01}), ("paper", "sigmoid", "ep", {"beta": 0.01}),
                  ("paper2", "sigmoid", "ep", None), ("paper2", "sigmoid", "bptt", None)]
        for setting, activation, method, extra in extras:
            results["train"].append(train_row(setting, activation, method, 0, epochs, extra))
            print(json.dumps(results["train"][-1]))
        for layers in (1, 2):
            for baseline in ("ep", "bptt"):
                for K in (10, 40):
                    o = EPOptions(layers=layers, K=K, baseline=baseline, T=500 * layers)
                    results["peak_mib"][f"L{layers} {baseline} K{K}"] = peak_bytes(o, 256) / 2**20
        print(json.dumps(results["peak_mib"]))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"ep_{args.part}.json").write_text(json.dumps(results, indent=1))


def run_gdu(results: dict) -> None:
    print("## GDU: median relative RMSE / sign agreement, per layer (20 digits, float64, K = 15)")
    cases = []
    for layers, T in ((1, 100), (2, 300)):
        for beta, sym in ((0.01, False), (0.001, False), (0.01, True), (0.001, True)):
            tab, data = gdu(256, layers, beta, sym, 15, T)
            key = f"{layers} hidden x 256, beta {beta}, {'symmetric' if sym else 'one-sided'}"
            results["gdu"][key] = tab
            print(f"{key}: " + ", ".join(f"{k} {v['median_rel_rmse']:.2e}/{v['sign']:.3f}" for k, v in tab.items()))
            if beta == 0.01 and not sym:
                cases.append((f"{layers} hidden", data, T, 15, beta))
    tab, _ = gdu(256, 1, 0.001, True, 15, 100, outside=True)
    results["gdu"]["1 hidden x 256, beta 0.001, symmetric, nudge after sigma (authors' code)"] = tab
    print("nudge after sigma: " + ", ".join(f"{k} {v['median_rel_rmse']:.2e}/{v['sign']:.3f}" for k, v in tab.items()))
    plot_curves(cases, OUT / "ep_gdu.png")


if __name__ == "__main__":
    main()

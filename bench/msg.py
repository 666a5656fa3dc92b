"""MSG trained by DvM against its BPTT twin: accuracy, time per epoch and memory against T.

Graphs: training.methods.graphs.sbm defaults (1000 nodes, 4 balanced classes, p_in 0.015, p_out 0.003,
16 features with class means of norm 1 and noise sd 1.0; 20/20/60% train/val/test nodes), one
graph per seed (seed s: graph, initial weights). Network: training.methods.msg.MSGNet, manifold dimension
16, 2 layers, step 0.5, LIF theta 1, beta 0.9, fast-sigmoid surrogate for the twin. Training:
full-batch Adam, lr 0.01, weight decay 5e-4, `--steps` steps (one step = one epoch over the
graph); validation accuracy every 10 steps, the reported test accuracy is the one at the best
validation accuracy. Time per epoch: mean wall time of a training step (forward + backward +
Adam), one torch thread. Memory: peak live tensor bytes of one training step, counted by
training.budget.memory.LiveBytes (the graph's tensors and the parameters, made before, never count).

    python bench/msg.py --T 4 8 16 32 --seeds 0 1 2 --manifolds lorentz euclidean
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from training.methods.graphs import sbm
from training.budget.memory import LiveBytes
from training.methods.msg import Options, build, evaluate, graph_data, train_step

OUT = Path(__file__).resolve().parent / "out"


def run(manifold: str, T: int, mode: str, seed: int, steps: int, hidden: int) -> dict:
    graph = sbm(seed=seed)
    data = graph_data(graph)
    cfg = SimpleNamespace(hidden=hidden, surrogate="fast_sigmoid", seed=seed)
    model = build(cfg, graph, Options(manifold=manifold, T=T, step=0.5))
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
    best, test, seconds = -1.0, 0.0, 0.0
    for i in range(steps):
        t0 = time.perf_counter()
        train_step(model, data, opt, mode)
        seconds += time.perf_counter() - t0
        if i % 10 == 9:
            ev = evaluate(model, data)
            if ev["val_acc"] > best:
                best, test = ev["val_acc"], ev["test_acc"]
    with LiveBytes() as mem:
        train_step(model, data, opt, mode)
    return dict(manifold=manifold, T=T, mode=mode, seed=seed, test_acc=test, val_acc=best,
                sec_per_epoch=seconds / steps, peak_bytes=mem.peak)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--manifolds", nargs="+", default=["lorentz", "euclidean"])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(exist_ok=True)
    rows = []
    for manifold in args.manifolds:
        for T in args.T:
            for seed in args.seeds:
                for mode in ("dvm", "bptt"):
                    rows.append(run(manifold, T, mode, seed, args.steps, args.hidden))
                    print(json.dumps(rows[-1]), flush=True)
                    (OUT / "msg.json").write_text(json.dumps(rows, indent=1))
    table(rows, args)


def table(rows: list[dict], args: argparse.Namespace) -> None:
    def agg(m: str, T: int, mode: str, key: str) -> list[float]:
        return [r[key] for r in rows if r["manifold"] == m and r["T"] == T and r["mode"] == mode]

    print("\n| manifold | T | DvM test acc | BPTT test acc | diff (pts) | DvM s/epoch | BPTT s/epoch | time ratio "
          "| DvM peak MB | BPTT peak MB | memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for m in args.manifolds:
        for T in args.T:
            a, b = agg(m, T, "dvm", "test_acc"), agg(m, T, "bptt", "test_acc")
            ta, tb = statistics.mean(agg(m, T, "dvm", "sec_per_epoch")), statistics.mean(agg(m, T, "bptt", "sec_per_epoch"))
            ma, mb = statistics.mean(agg(m, T, "dvm", "peak_bytes")), statistics.mean(agg(m, T, "bptt", "peak_bytes"))
            sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
            diff = 100 * (statistics.mean(a) - statistics.mean(b))
            summary[m, T] = (statistics.mean(a), statistics.mean(b), ma, mb)
            print(f"| {m} | {T} | {statistics.mean(a):.3f} ± {sd(a):.3f} | {statistics.mean(b):.3f} ± {sd(b):.3f} "
                  f"| {diff:+.1f} | {ta * 1e3:.1f} ms | {tb * 1e3:.1f} ms | {ta / tb:.2f} | {ma / 1e6:.2f} "
                  f"| {mb / 1e6:.2f} | {ma / mb:.3f} |")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4))
    ax1, ax2 = fig.subplots(1, 2)
    for m in args.manifolds:
        Ts = list(args.T)
        ax1.plot(Ts, [summary[m, T][0] for T in Ts], "o-", label=f"{m} DvM")
        ax1.plot(Ts, [summary[m, T][1] for T in Ts], "s--", label=f"{m} BPTT")
        ax2.plot(Ts, [summary[m, T][2] / 1e6 for T in Ts], "o-", label=f"{m} DvM")
        ax2.plot(Ts, [summary[m, T][3] / 1e6 for T in Ts], "s--", label=f"{m} BPTT")
    ax1.set(xscale="log", xlabel="T (steps)", ylabel="test accuracy", title="SBM node classification")
    ax2.set(xscale="log", yscale="log", xlabel="T (steps)", ylabel="peak live MB per step", title="memory")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "msg.png", dpi=110)
    print(f"wrote {OUT / 'msg.png'} and {OUT / 'msg.json'}")


if __name__ == "__main__":
    main()

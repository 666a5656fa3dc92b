"""Sparse Attentive Backtracking against full and truncated BPTT (Ke et al. 2018), on one core.

For each task and length: full BPTT, TBPTT and SAB on the same attention model (same seed, same
initial weights, same batches; only the gradient differs), plus full BPTT and TBPTT of the plain
cell (the paper's baselines), trained through ``training.trainer.train`` (rule sab). Reports test
accuracy (copy: per recalled character), seconds per iteration (median of timed gradient calls on
one batch), peak tensor memory of one gradient computation (``training.budget.memory.LiveBytes``), SAB's
reference memory scheme (whole graph kept) next to ours (recomputed windows), and the transfer of
the copy models to longer delays. Writes bench/out/sab_results.json, bench/out/sab_curves.png.

    OMP_NUM_THREADS=1 PYTHONPATH=. python bench/sab.py --T 100 200 --epochs 20 --n-train 1600
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.budget.memory import LiveBytes  # noqa: E402
from training.methods.sab import build_model, evaluate, gradients, parse_options  # noqa: E402
from training.tasks import make_task  # noqa: E402
from training.runfiles import to_batch as _to_batch  # noqa: E402
from training.trainer import TrainConfig, train  # noqa: E402

VARIANTS = {  # name: rule options beyond the shared ones
    "bptt": dict(method="bptt", attention=1),
    "tbptt": dict(method="tbptt", attention=1),
    "sab": dict(method="sab"),
    "bptt (plain)": dict(method="bptt", attention=0),
    "tbptt (plain)": dict(method="tbptt", attention=0),
}


def cost(cfg: TrainConfig, reps: int = 3) -> tuple[float, int]:
    """(median seconds, peak bytes) of one gradient computation on one batch of the task."""
    task = make_task(cfg.task, seed=cfg.seed, n_train=cfg.batch_size, n_test=10, **cfg.task_options)
    opts = parse_options(dict(cfg.rule_options), cfg.hidden)
    model = build_model(opts, task.n_in, task.n_out, cfg.hidden, seed=cfg.seed, dt=task.dt)
    batch = _to_batch(task.train, np.arange(cfg.batch_size), torch.float32)
    with LiveBytes() as mem:
        gradients(model, batch, opts)
    times = []
    for _ in range(reps):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        gradients(model, batch, opts)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), mem.peak


def timing(cfgs: dict[str, TrainConfig], reps: int) -> dict[str, float]:
    """Median seconds of one gradient computation per variant, the variants interleaved in every
    round (so that a busy machine slows all of them alike)."""
    setups = {}
    for name, cfg in cfgs.items():
        task = make_task(cfg.task, seed=cfg.seed, n_train=cfg.batch_size, n_test=10, **cfg.task_options)
        opts = parse_options(dict(cfg.rule_options), cfg.hidden)
        model = build_model(opts, task.n_in, task.n_out, cfg.hidden, seed=cfg.seed, dt=task.dt)
        setups[name] = (model, _to_batch(task.train, np.arange(cfg.batch_size), torch.float32), opts)
    times: dict[str, list[float]] = {name: [] for name in cfgs}
    for _ in range(reps):
        for name, (model, batch, opts) in setups.items():
            model.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            gradients(model, batch, opts)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="copy", choices=("copy", "adding", "digits"))
    ap.add_argument("--T", type=int, nargs="+", default=[100, 200], help="delays (copy) or lengths (adding)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--n-train", type=int, default=1600)
    ap.add_argument("--n-test", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="shared rule option, e.g. k_trunc=10 (repeatable)")
    ap.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--transfer", type=int, nargs="*", default=[], help="copy: also test at these delays")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    ap.add_argument("--timing", type=int, default=0, metavar="REPS",
                    help="only time the variants (interleaved, median of REPS gradient calls), no training")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from neurosim.cli import key_value

    shared = {**dict(k_trunc=10, k_att=10, k_top=5, att_dim=64), **dict(key_value(o) for o in args.option)}
    task_opts = dict(key_value(o) for o in args.task_option)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / f"sab_{args.task}_results.json"
    results: dict = {}
    if args.timing:
        for T in args.T:
            topts = dict(task_opts, **({"T": T} if args.task != "digits" else {}))
            cfgs = {name: TrainConfig(task=args.task, rule="sab", batch_size=args.batch_size, hidden=args.hidden,
                                      seed=args.seed, task_options=topts, rule_options={**shared, **VARIANTS[name]})
                    for name in args.variants}
            cfgs["sab (memory=graph)"] = TrainConfig(**{**cfgs.get("sab", next(iter(cfgs.values()))).__dict__,
                                                        "rule_options": {**shared, **VARIANTS["sab"], "memory": "graph"}})
            med = timing(cfgs, args.timing)
            base = med.get("bptt", next(iter(med.values())))
            for name, sec in med.items():
                print(f"| {args.task} | {T} | {name} | {sec:.3f} s | {sec / base:.2f} x bptt |", flush=True)
        return
    for T in args.T:
        topts = dict(task_opts, **({"T": T} if args.task != "digits" else {}))
        for name in args.variants:
            cfg = TrainConfig(task=args.task, rule="sab", epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              seed=args.seed, hidden=args.hidden, n_train=args.n_train, n_test=args.n_test, clip=1.0,
                              schedule="constant", task_options=topts, rule_options={**shared, **VARIANTS[name]})
            run = out / "sab_runs" / f"{args.task}_{T}_{name.replace(' (', '_').rstrip(')')}"
            t0 = time.perf_counter()
            res = train(cfg, run, progress=False, device="cpu", resume=(run / "checkpoint.pt").exists())
            wall = time.perf_counter() - t0
            sec, peak = cost(cfg)
            row = dict(task=args.task, T=T, variant=name, options=cfg.rule_options, task_options=topts,
                       test_acc=res["history"][-1]["test_acc"], best_test_acc=max(r["test_acc"] for r in res["history"]),
                       curve=[r["test_acc"] for r in res["history"]], iterations=args.epochs * -(-args.n_train // args.batch_size),
                       train_wall_s=wall, train_epoch_s_sum=sum(r["seconds"] for r in res["history"]),
                       s_per_iter=sec, peak_bytes=peak)
            if name == "sab":
                row["peak_bytes_reference_graph"] = cost(TrainConfig(**{**cfg.__dict__, "rule_options": {
                    **cfg.rule_options, "memory": "graph"}}), reps=1)[1]
            if args.task == "copy" and args.transfer:
                row["transfer"] = {}
                for T2 in args.transfer:
                    longer = make_task("copy", seed=args.seed + 1, n_train=1, n_test=args.n_test, **dict(topts, T=T2))
                    row["transfer"][str(T2)] = evaluate(res["model"], longer.test, longer)[1]
            results = json.loads(results_path.read_text()) if results_path.exists() else {}  # other processes' rows
            results[f"{args.task}/{T}/{name}"] = row
            results_path.write_text(json.dumps(results, indent=1))
            print(json.dumps({k: v for k, v in row.items() if k not in ("curve", "options", "task_options")}), flush=True)
    results = json.loads(results_path.read_text())
    table(results, args.task)
    plot(results, out / f"sab_{args.task}_curves.png", args.task)


def _rank(variant: str) -> int:
    return list(VARIANTS).index(variant) if variant in VARIANTS else len(VARIANTS)


def table(results: dict, task: str) -> None:
    rows = [r for r in results.values() if r["task"] == task]
    print("| task | T | variant | test acc (final / best) | s/iter | x BPTT | peak MB | x BPTT | transfer |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["T"], _rank(r["variant"]))):
        base = results.get(f"{task}/{r['T']}/bptt", r)
        mem = f"{r['peak_bytes'] / 1e6:.1f}"
        if "peak_bytes_reference_graph" in r:
            mem += f" (reference scheme {r['peak_bytes_reference_graph'] / 1e6:.1f})"
        tr = ", ".join(f"T={k}: {v:.3f}" for k, v in r.get("transfer", {}).items())
        print(f"| {task} | {r['T']} | {r['variant']} | {r['test_acc']:.3f} / {r['best_test_acc']:.3f} | "
              f"{r['s_per_iter']:.3f} | {r['s_per_iter'] / base['s_per_iter']:.2f} | {mem} | "
              f"{r['peak_bytes'] / base['peak_bytes']:.2f} | {tr} |")


def plot(results: dict, path: Path, task: str) -> None:
    from matplotlib.figure import Figure

    Ts = sorted({r["T"] for r in results.values() if r["task"] == task})
    fig = Figure(figsize=(4.2 * len(Ts), 3.2))
    axes = np.atleast_1d(fig.subplots(1, len(Ts)))
    for ax, T in zip(axes, Ts):
        colors = dict(zip(VARIANTS, ("C0", "C1", "C3", "C2", "C4")))
        for r in sorted(results.values(), key=lambda r: _rank(r["variant"])):
            if r["task"] == task and r["T"] == T:
                ax.plot(np.arange(1, len(r["curve"]) + 1), r["curve"], label=r["variant"],
                        color=colors.get(r["variant"], "grey"), linestyle="-" if r["variant"] in VARIANTS else ":")
        ax.set(xlabel="epoch", ylabel="test accuracy", title=f"{task}, T = {T}", ylim=(0, 1.02))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()

"""Learning rules side by side: BPTT, memory-budgeted BPTT, OTTT, e-prop, rate-based BP.

Part `cost`: for each T, one fresh subprocess per rule, all on the same network and batch
(recurrent ALIF: 20 inputs, 256 hidden of which half adaptive, 2 LI readouts; batch 16; input
spikes with probability 0.05 per step; loss on the last 10% of steps). Memory: the peak live
tensor bytes of one iteration, counted exactly by bench/bptt_memory.LiveBytes, minus the
batch's own storages (inputs, targets, mask: data, which the tracker counts once a step
indexes them). Time: the median of `--repeats` further iterations without the tracker, one
torch thread. Budgeted BPTT gets `--budget-fraction` of BPTT's measured peak at the same T
(policy mixed). Prints a table of ratios against BPTT and writes a PNG of memory against T.

Part `accuracy`: `training.trainer.train` on sequential digits (rows, T = 80) and evidence
accumulation (T = 450, tau_adapt 2 s, clip 1, the settings BPTT needs there), a fixed number
of epochs per task for every rule, each rule with the learning rate given by `--lr RULE=LR`
(default: the task's). Reports the final and the best test accuracy.

    python bench/rules.py --part cost --T 10 100 1000 3000
    python bench/rules.py --part accuracy --tasks digits evidence
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bptt_memory import LiveBytes  # noqa: E402
from neurosim.atomic import write_text  # noqa: E402

RULES = ("bptt", "budgeted", "ottt", "eprop", "ratebp")
TASKS = {
    "digits": dict(task="digits", epochs=8, lr=3e-3),
    "evidence": dict(task="evidence", epochs=40, lr=3e-3, tau_adapt=2.0, clip=1.0),
}


# ------------------------------------------------------------------------------------ cost


def cost_worker(cfg: dict) -> dict:
    """One rule at one T: peak live bytes of one iteration and median seconds per iteration."""
    import torch

    from training.layers import from_network
    from training.nets import recurrent_network
    from training.rules import Batch, BudgetedBPTT, make_rule, state_nbytes

    torch.set_num_threads(1)
    T, B = cfg["T"], cfg["batch"]
    net = recurrent_network(cfg["n_in"], cfg["hidden"], cfg["n_out"], model="alif", seed=0)
    model = from_network(net)
    g = torch.Generator().manual_seed(0)
    batch = Batch((torch.rand(T, B, cfg["n_in"], generator=g) < 0.05).float(),
                  torch.randint(0, cfg["n_out"], (B,), generator=g), torch.arange(T) >= T - max(T // 10, 1))
    rule = BudgetedBPTT(cfg["slots"], "mixed") if cfg["rule"] == "budgeted" else make_rule(cfg["rule"])
    model.zero_grad()
    with LiveBytes() as mem:
        loss = rule.backward(model, batch).loss
    data = [x.untyped_storage() for x in (batch.inputs, batch.targets, batch.loss_mask)]
    peak = mem.peak - sum(st.nbytes() for st in data if st.data_ptr() in mem._sizes)
    times = []
    for _ in range(cfg["repeats"]):
        model.zero_grad()
        t0 = time.perf_counter()
        rule.backward(model, batch)
        times.append(time.perf_counter() - t0)
    return dict(cfg, loss=loss, peak_bytes=peak, time_s=statistics.median(times),
                state_bytes=state_nbytes(model.initial_state(B)))


def run_worker(cfg: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(cfg)], capture_output=True,
                          text=True, cwd=ROOT, timeout=7200)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed for {cfg}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cost(args: argparse.Namespace) -> list[dict]:
    rows = []
    for T in args.T:
        base = dict(T=T, batch=16, n_in=20, hidden=args.hidden, n_out=2, repeats=args.repeats, slots=0)
        ref = run_worker(dict(base, rule="bptt"))
        rows.append(ref)
        for rule in args.rules:
            if rule == "bptt":
                continue
            slots = max(2, min(T, int(args.budget_fraction * ref["peak_bytes"] // ref["state_bytes"])))
            rows.append(run_worker(dict(base, rule=rule, slots=slots if rule == "budgeted" else 0)))
        print_cost([r for r in rows if r["T"] == T], ref)
    return rows


def print_cost(rows: list[dict], ref: dict) -> None:
    print(f"\nT = {ref['T']}: ALIF {ref['hidden']} hidden, batch {ref['batch']} (BPTT {ref['peak_bytes'] / 1e6:.2f} MB, "
          f"{ref['time_s']:.3f} s/iter)")
    print("| rule | peak MB | memory vs BPTT | s/iter | time vs BPTT |")
    print("|---|---|---|---|---|")
    for r in rows:
        name = r["rule"] + (f" ({r['slots']} states)" if r["rule"] == "budgeted" else "")
        print(f"| {name} | {r['peak_bytes'] / 1e6:.2f} | {r['peak_bytes'] / ref['peak_bytes']:.3f}x | "
              f"{r['time_s']:.3f} | {r['time_s'] / ref['time_s']:.2f}x |")


def plot_cost(rows: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    from neurosim.atomic import write_bytes

    fig = Figure(figsize=(9, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    for rule in RULES:
        pts = sorted((r["T"], r["peak_bytes"] / 1e6, r["time_s"]) for r in rows if r["rule"] == rule)
        if pts:
            ax1.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=rule)
            ax2.plot([p[0] for p in pts], [p[2] for p in pts], "o-", label=rule)
    ax1.set(xscale="log", yscale="log", xlabel="T (steps)", ylabel="peak live MB", title="memory of one iteration")
    ax2.set(xscale="log", yscale="log", xlabel="T (steps)", ylabel="s / iteration", title="time of one iteration")
    ax1.legend()
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_bytes(path, buf.getvalue())


# ------------------------------------------------------------------------------------ accuracy


def accuracy(args: argparse.Namespace) -> list[dict]:
    from training.trainer import TrainConfig, train

    lrs = dict(kv.split("=") for kv in args.lr)
    rows = []
    for task in args.tasks:
        for rule in args.rules:
            kw = dict(TASKS[task])
            if args.epochs:
                kw["epochs"] = args.epochs
            if rule in lrs:
                kw["lr"] = float(lrs[rule])
            extra = {"budget": "4MB", "policy": "mixed"} if rule == "budgeted" else {}
            cfg = TrainConfig(rule=rule, seed=args.seed, hidden=args.train_hidden, **kw, **extra)
            t0 = time.perf_counter()
            res = train(cfg, Path(args.out) / f"{task}_{rule}", progress=False, device="cpu")
            hist = res["history"]
            row = dict(task=task, rule=rule, lr=cfg.lr, epochs=cfg.epochs, final=hist[-1]["test_acc"],
                       best=max(h["test_acc"] for h in hist), seconds=time.perf_counter() - t0)
            rows.append(row)
            print(json.dumps(row), flush=True)
        print_accuracy([r for r in rows if r["task"] == task])
    return rows


def print_accuracy(rows: list[dict]) -> None:
    ref = next((r for r in rows if r["rule"] == "bptt"), None)
    print(f"\n{rows[0]['task']}, {rows[0]['epochs']} epochs")
    print("| rule | lr | final test acc | best | vs BPTT (points) | wall s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        diff = f"{100 * (r['final'] - ref['final']):+.1f}" if ref else "-"
        print(f"| {r['rule']} | {r['lr']:g} | {100 * r['final']:.1f}% | {100 * r['best']:.1f}% | {diff} | {r['seconds']:.0f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("cost", "accuracy", "all"), default="all")
    ap.add_argument("--T", type=int, nargs="+", default=[10, 100, 1000, 3000])
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES)
    ap.add_argument("--hidden", type=int, default=256, help="hidden neurons of the cost network")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budget-fraction", type=float, default=0.05)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--epochs", type=int, default=None, help="override every task's epochs")
    ap.add_argument("--train-hidden", type=int, default=64)
    ap.add_argument("--lr", nargs="*", default=[], metavar="RULE=LR")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/out/rules")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(cost_worker(json.loads(args.worker))))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.part in ("cost", "all"):
        rows = cost(args)
        write_text(out / "cost.json", json.dumps(rows, indent=1))
        plot_cost(rows, out / "memory_vs_T.png")
    if args.part in ("accuracy", "all"):
        rows = accuracy(args)
        write_text(out / "accuracy.json", json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

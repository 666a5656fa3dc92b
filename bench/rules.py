"""Learning rules side by side: BPTT, memory-budgeted BPTT, OTTT, e-prop, rate-based BP.

Part `cost`: for each T, all rules on the same network and batch (recurrent ALIF: 20 inputs,
256 hidden of which half adaptive, 2 LI readouts; batch 16; input spikes with probability 0.05
per step; loss on the last 10% of steps). Memory, one fresh subprocess per rule: the peak live
tensor bytes of one iteration, counted exactly by training.budget.memory.LiveBytes (which counts
only storages created inside it: the batch's data and the parameters never count). Time, one subprocess per T: the rules' iterations interleaved round-robin, `--repeats`
rounds, the median per rule, one torch thread (interleaving keeps the ratios honest on a shared
machine whose load drifts). Budgeted BPTT gets `--budget-fraction` of BPTT's measured peak
(policy mixed). Prints tables of ratios against BPTT and writes a PNG of memory and time
against T.

Part `accuracy`: the training loop of `neurosim train` (Adam, cosine learning-rate decay per
epoch, optional clipping, the same shuffles and initial weights for every rule) on

- digits: sequential digits (rows, T = 80, regular rate code), ALIF network of 128, 30 epochs
  (the setting of issue 3's bar: `neurosim train --task digits --task-option coding=regular
  --hidden 128 --epochs 30`);
- digits_static: the same network on static digits (all pixels for 20 steps), 20 epochs;
- evidence: evidence accumulation (T = 450), tau_adapt 2 s, adaptation strength 35, clip 1, 40 epochs;
- conv: a small convolutional SNN (8 channels of 3x3 kernels on the 8x8 image, LIF, dense LI
  readout) on static digits, 10 epochs;
- digits_step_loss: as digits, with the loss on every step (``loss_steps=80``: OTTT's
  instantaneous loss, the objective its paper trains; the prediction is the mean readout over
  all steps, as for the loss);
- digits_ff: as digits, on a feed-forward LIF network (no recurrent projection, tau_mem 100 ms
  so that the readout and membranes hold earlier rows): the architecture of rate-based BP's and
  OTTT's papers;
- store_recall: the demo's setting (LSNN of 128 ALIF, 2048 trials, 20 epochs), to pick the
  demo's default rule: the one that reaches the task's bar in the least wall time.

Reports the final and the best test accuracy per rule, and the first epoch (and wall seconds
of training up to it) whose test accuracy reaches the task's bar.

    python bench/rules.py --part cost --T 10 100 1000 3000
    python bench/rules.py --part accuracy --experiments digits evidence conv
    python bench/rules.py --part accuracy --experiments digits_step_loss digits_ff --seed 1
"""
from __future__ import annotations

import argparse
import io
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from training.budget.memory import LiveBytes  # noqa: E402

from neurosim.atomic import write_bytes, write_text  # noqa: E402

RULES = ("bptt", "budgeted", "ottt", "eprop", "ratebp")
EXPERIMENTS = {
    "digits": dict(task="digits", task_kw=dict(coding="regular"), epochs=30, lr=3e-3, hidden=128, rules=RULES),
    "digits_static": dict(task="digits", task_kw=dict(mode="static"), epochs=20, lr=3e-3, rules=RULES),
    "evidence": dict(task="evidence", epochs=40, lr=3e-3, clip=1.0, net=dict(tau_adapt=2.0, adapt=35.0), rules=RULES),
    "conv": dict(task="digits", task_kw=dict(mode="static"), epochs=10, lr=3e-3, conv=True, rules=("bptt", "ratebp")),
    # the rules in their papers' settings: OTTT's instantaneous loss on every step; rate-based BP's
    # feed-forward network (its rate graph has no recurrence to carry)
    "digits_step_loss": dict(task="digits", task_kw=dict(coding="regular", loss_steps=80), epochs=30, lr=3e-3,
                             hidden=128, rules=("bptt", "ottt", "ratebp")),
    "digits_ff": dict(task="digits", task_kw=dict(coding="regular"), epochs=30, lr=3e-3, hidden=128,
                      net=dict(recurrent=False, model="lif", tau_mem=0.1), rules=("bptt", "ottt", "ratebp")),
    # the demo's setting (neurosim.cli.demo.DemoConfig): which rule reaches the task's bar first
    "store_recall": dict(task="store_recall", task_kw=dict(n_train=2048), epochs=20, lr=3e-3, hidden=128,
                         rules=RULES),
}


# ------------------------------------------------------------------------------------ cost


def _setup(cfg: dict):
    import torch

    from training.layers import from_network
    from training.nets import recurrent_network
    from training.rules import Batch

    torch.set_num_threads(1)
    T, B = cfg["T"], cfg["batch"]
    net = recurrent_network(cfg["n_in"], cfg["hidden"], cfg["n_out"], model="alif", seed=0)
    g = torch.Generator().manual_seed(0)
    batch = Batch((torch.rand(T, B, cfg["n_in"], generator=g) < 0.05).float(),
                  torch.randint(0, cfg["n_out"], (B,), generator=g), torch.arange(T) >= T - max(T // 10, 1))
    return from_network(net), batch


def _rule(name: str, slots: int):
    from training.rules import BudgetedBPTT, make_rule

    return BudgetedBPTT(slots, "mixed") if name == "budgeted" else make_rule(name)


def memory_worker(cfg: dict) -> dict:
    """Peak live bytes of one iteration of one rule (a fresh process)."""
    from training.rules import state_nbytes

    model, batch = _setup(cfg)
    rule = _rule(cfg["rule"], cfg["slots"])
    with LiveBytes() as mem:
        loss = rule.backward(model, batch).loss
    return dict(cfg, loss=loss, peak_bytes=mem.peak, state_bytes=state_nbytes(model.initial_state(cfg["batch"])))


def time_worker(cfg: dict) -> dict:
    """Median seconds per iteration of every rule, iterations interleaved round-robin."""
    model, batch = _setup(cfg)
    rules = {name: _rule(name, cfg["slots"]) for name in cfg["rules"]}
    for r in rules.values():  # warm-up (budgeted: measures alpha and plans)
        model.zero_grad()
        r.backward(model, batch)
    times: dict[str, list[float]] = {name: [] for name in rules}
    for _ in range(cfg["repeats"]):
        for name, r in rules.items():
            model.zero_grad()
            t0 = time.perf_counter()
            r.backward(model, batch)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def run_worker(kind: str, cfg: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, json.dumps(cfg)], capture_output=True,
                          text=True, cwd=ROOT, timeout=4 * 3600)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed for {cfg}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cost(args: argparse.Namespace) -> list[dict]:
    rows = []
    for T in args.T:
        base = dict(T=T, batch=16, n_in=20, hidden=args.hidden, n_out=2, slots=0)
        mem = {"bptt": run_worker("memory", dict(base, rule="bptt"))}
        ref = mem["bptt"]
        slots = max(2, min(T, int(args.budget_fraction * ref["peak_bytes"] // ref["state_bytes"])))
        for rule in args.rules:
            if rule != "bptt":
                mem[rule] = run_worker("memory", dict(base, rule=rule, slots=slots))
        times = run_worker("time", dict(base, slots=slots, rules=list(args.rules), repeats=args.repeats))
        for rule in args.rules:
            rows.append(dict(mem[rule], slots=slots if rule == "budgeted" else 0, time_s=times[rule]))
        print_cost([r for r in rows if r["T"] == T])
    return rows


def print_cost(rows: list[dict]) -> None:
    ref = next(r for r in rows if r["rule"] == "bptt")
    print(f"\nT = {ref['T']}: ALIF {ref['hidden']} hidden, batch {ref['batch']} (BPTT {ref['peak_bytes'] / 1e6:.2f} MB, "
          f"{ref['time_s']:.3f} s/iter)")
    print("| rule | peak MB | memory vs BPTT | s/iter | time vs BPTT |")
    print("|---|---|---|---|---|")
    for r in rows:
        name = r["rule"] + (f" ({r['slots']} states)" if r["rule"] == "budgeted" else "")
        print(f"| {name} | {r['peak_bytes'] / 1e6:.2f} | {r['peak_bytes'] / ref['peak_bytes']:.3f}x | "
              f"{r['time_s']:.3f} | {r['time_s'] / ref['time_s']:.2f}x |", flush=True)


def plot_cost(rows: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_bytes(path, buf.getvalue())


# ------------------------------------------------------------------------------------ accuracy


def fit(exp: dict, rule_name: str, seed: int, hidden: int) -> tuple[list[float], list[float], float]:
    """(test accuracy after each epoch, training seconds up to the end of each epoch, the task's
    bar); the loop of training.trainer.train (same seeds, shuffles, schedule, clipping), with
    task and network options it does not expose. Evaluation time is not counted."""
    import torch

    from training.layers import from_network
    from training.nets import recurrent_network
    from training.layered import LayeredSNN, parse_arch
    from training.rules import Batch, BudgetedBPTT, make_rule
    from training.tasks import make_task
    from training.runfiles import set_epoch_lr, shuffled
    from training.trainer import TrainConfig, evaluate

    torch.set_num_threads(1)
    task = make_task(exp["task"], seed=seed, **exp.get("task_kw", {}))
    torch.manual_seed(seed)
    if exp.get("conv"):
        beta = math.exp(-task.dt / 20e-3)  # tau_mem 20 ms, as the recurrent networks
        model = LayeredSNN(parse_arch(f"conv(8,k=3,p=1,beta={beta}),flatten,dense({task.n_out},beta={beta})"), (1, 8, 8),
                           seed=seed)
    else:
        net = recurrent_network(task.n_in, exp.get("hidden", hidden), task.n_out, dt=task.dt, seed=seed,
                                **exp.get("net", {}))
        model = from_network(net)
    opt = torch.optim.Adam(model.parameters(), lr=exp["lr"])
    rule = BudgetedBPTT("4MB", "mixed") if rule_name == "budgeted" else make_rule(rule_name, seed=seed)
    schedule = TrainConfig(lr=exp["lr"], epochs=exp["epochs"], seed=seed)
    n, accs, seconds, spent = len(task.train), [], [], 0.0
    for epoch in range(exp["epochs"]):
        t0 = time.perf_counter()
        set_epoch_lr(opt, schedule, epoch)
        order = shuffled(schedule, epoch, n)
        for lo in range(0, n, 32):
            idx = order[lo:lo + 32]
            x = torch.as_tensor(task.train.inputs[idx]).transpose(0, 1).contiguous()
            b = Batch(x, torch.as_tensor(task.train.targets[idx]), torch.as_tensor(task.train.loss_mask))
            opt.zero_grad(set_to_none=True)
            rule.backward(model, b)
            if exp.get("clip"):
                torch.nn.utils.clip_grad_norm_(model.parameters(), exp["clip"])
            opt.step()
        spent += time.perf_counter() - t0
        seconds.append(spent)
        accs.append(evaluate(model, task.test, task)[1])
    return accs, seconds, task.bar


def accuracy(args: argparse.Namespace) -> list[dict]:
    rows = []
    for name in args.experiments:
        exp = dict(EXPERIMENTS[name])
        if args.epochs:
            exp["epochs"] = args.epochs
        for rule in [r for r in exp["rules"] if r in args.rules]:
            t0 = time.perf_counter()
            accs, seconds, bar = fit(exp, rule, args.seed, args.train_hidden)
            reached = next((e for e, a in enumerate(accs) if a >= bar), None)
            row = dict(experiment=name, rule=rule, epochs=exp["epochs"], lr=exp["lr"], final=accs[-1], best=max(accs),
                       curve=[round(a, 4) for a in accs], seconds=time.perf_counter() - t0, bar=bar,
                       bar_epoch=None if reached is None else reached + 1,
                       bar_seconds=None if reached is None else round(seconds[reached], 1))
            rows.append(row)
            print(json.dumps(row), flush=True)
        print_accuracy([r for r in rows if r["experiment"] == name])
    return rows


def print_accuracy(rows: list[dict]) -> None:
    if not rows:
        return
    ref = next((r for r in rows if r["rule"] == "bptt"), None)
    print(f"\n{rows[0]['experiment']}, {rows[0]['epochs']} epochs")
    print(f"| rule | final test acc | best | final vs BPTT (points) | bar {rows[0]['bar']:g} reached at epoch "
          "(training s) | wall s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        diff = f"{100 * (r['final'] - ref['final']):+.1f}" if ref else "-"
        reached = "never" if r["bar_epoch"] is None else f"{r['bar_epoch']} ({r['bar_seconds']:.0f} s)"
        print(f"| {r['rule']} | {100 * r['final']:.1f}% | {100 * r['best']:.1f}% | {diff} | {reached} | "
              f"{r['seconds']:.0f} |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("cost", "accuracy", "all"), default="all")
    ap.add_argument("--T", type=int, nargs="+", default=[10, 100, 1000, 3000])
    ap.add_argument("--rules", nargs="+", default=list(RULES), choices=RULES)
    ap.add_argument("--hidden", type=int, default=256, help="hidden neurons of the cost network")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget-fraction", type=float, default=0.05)
    ap.add_argument("--experiments", nargs="*", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    ap.add_argument("--epochs", type=int, default=None, help="override every experiment's epochs")
    ap.add_argument("--train-hidden", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/out/rules")
    ap.add_argument("--json", default=None, help="accuracy rows file (default OUT/accuracy.json)")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, cfg = args.worker
        print(json.dumps((memory_worker if kind == "memory" else time_worker)(json.loads(cfg))))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.part in ("cost", "all"):
        rows = cost(args)
        write_text(out / "cost.json", json.dumps(rows, indent=1))
        plot_cost(rows, out / "memory_vs_T.png")
    if args.part in ("accuracy", "all"):
        rows = accuracy(args)
        write_text(Path(args.json) if args.json else out / "accuracy.json", json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Memory and time per iteration: full BPTT vs memory-budgeted BPTT (Gruslys et al. 2016) vs
torch.utils.checkpoint's uniform segments, on recurrent LIF and ALIF networks.

Each configuration runs in a fresh subprocess. Memory: the peak bytes of tensor storage alive
during one iteration, counted exactly by a TorchDispatchMode that records every storage an op
creates and a weakref finaliser that subtracts it when freed (training.budget.memory.LiveBytes; parameters
and data exist before and are not counted: this is activation plus temporary memory). Time:
one process per (model, T) runs the iterations of all methods interleaved round-robin,
`--repeats` rounds, and takes each method's median, without the tracker. Ratios are against full BPTT measured in
the same run. The planner's predicted cost (forward step evaluations / T) stands beside the
measured time ratio.

    python bench/bptt_memory.py                       # T in 100 300 1000 3000, lif and alif
    python bench/bptt_memory.py --T 1000 --models alif
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.budget.memory import LiveBytes  # noqa: E402


def setup(cfg: dict):
    import torch

    from training.layers import from_network
    from training.nets import recurrent_network
    from training.rules import Batch

    torch.set_num_threads(1)
    T, B = cfg["T"], cfg["batch"]
    net = recurrent_network(cfg["n_in"], cfg["hidden"], cfg["n_out"], model=cfg["model"], seed=0)
    g = torch.Generator().manual_seed(0)
    batch = Batch((torch.rand(T, B, cfg["n_in"], generator=g) < 0.05).float(),
                  torch.randint(0, cfg["n_out"], (B,), generator=g), torch.arange(T) >= T - max(T // 10, 1))
    return from_network(net), batch


def make_iteration(cfg: dict, model, batch):
    """(function running one iteration and returning its loss, the rule or None)."""
    import torch

    from training.rules import BudgetedBPTT, Objective, flatten_state, make_rule

    method, T = cfg["method"], batch.steps
    if method == "checkpoint":
        seg = cfg["segment"]

        def iteration() -> float:
            from torch.utils.checkpoint import checkpoint

            obj = Objective(model, batch)
            flat, unflatten = flatten_state(model.initial_state(batch.inputs.shape[1]))
            total = batch.inputs.new_zeros(())

            def run(t0: int, *flat_state):
                s = unflatten(flat_state)
                loss = batch.inputs.new_zeros(())
                for t in range(t0, min(t0 + seg, T)):
                    s = model.step(s, batch.inputs[t])
                    loss = loss + obj(s, t)
                return (*flatten_state(s)[0], loss)

            for t0 in range(0, T, seg):
                out = checkpoint(run, t0, *flat, use_reentrant=False)
                flat, total = out[:-1], total + out[-1]
            total.backward()
            return float(total.detach())

        return iteration, None
    rule = (make_rule("bptt") if method == "bptt"
            else BudgetedBPTT(cfg["budget"], cfg["policy"], block=cfg.get("block", 1)))
    torch.manual_seed(0)
    return (lambda: rule.backward(model, batch).loss), rule


def memory_worker(cfg: dict) -> dict:
    """One configuration in a fresh process: peak live bytes of one iteration, loss, plan figures."""
    from training.rules import state_nbytes

    model, batch = setup(cfg)
    iteration, rule = make_iteration(cfg, model, batch)
    if rule is not None and cfg["method"] == "budgeted":
        rule.slots(model, batch)  # measures working memory and alpha outside the tracked iteration
        iteration()
    model.zero_grad()
    with LiveBytes() as mem:
        loss = iteration()
    budgeted = cfg["method"] == "budgeted"
    return dict(cfg, loss=loss, peak_bytes=max(mem.peak, 0), state_bytes=state_nbytes(model.initial_state(cfg["batch"])),
                alpha=rule.alpha if budgeted else None, slots=rule.slots(model, batch) if budgeted else None,
                graph_units=rule.graph_units(model, batch, rule.block) if budgeted else None,
                working_bytes=rule.working_bytes if budgeted else None, chosen_block=rule.block if budgeted else None)


def time_worker(cfgs: list[dict]) -> list[float]:
    """Median seconds per iteration of every configuration (same model and T), iterations
    interleaved round-robin so that a drifting machine load hits all of them alike."""
    import statistics

    model, batch = setup(cfgs[0])
    its = [make_iteration(c, model, batch)[0] for c in cfgs]
    for it in its:  # warm-up: plans, alpha, working memory
        model.zero_grad()
        it()
    times: list[list[float]] = [[] for _ in its]
    for _ in range(cfgs[0]["repeats"]):
        for k, it in enumerate(its):
            model.zero_grad()
            t0 = time.perf_counter()
            it()
            times[k].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def run_worker(kind: str, cfg) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, json.dumps(cfg)], capture_output=True,
                          text=True, cwd=ROOT, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed for {cfg}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", type=int, nargs="+", default=[100, 300, 1000, 3000])
    ap.add_argument("--models", nargs="+", default=["lif", "alif"])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.2],
                    help="budgets as fractions of full BPTT's measured peak memory")
    ap.add_argument("--policies", nargs="+", default=["hsm", "mixed"], choices=("hsm", "ism", "mixed"))
    ap.add_argument("--blocks", type=lambda v: v if v == "auto" else int(v), nargs="+", default=[1, 8],
                    help="block lengths w of the budgeted rule (1: the plain per-step plan; auto: "
                         "BudgetedBPTT.choose_block)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default="bench/out/bptt_memory.json")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, cfg = args.worker
        print(json.dumps((memory_worker if kind == "memory" else time_worker)(json.loads(cfg))))
        return 0
    from training.budget.schedule import plan

    rows = []
    for model in args.models:
        for T in args.T:
            base = dict(T=T, batch=args.batch, n_in=20, hidden=args.hidden, n_out=2, model=model,
                        repeats=args.repeats)
            ref = dict(run_worker("memory", dict(base, method="bptt")), predicted=1.0)
            group = [ref]
            for frac in args.fractions:
                budget = str(int(frac * ref["peak_bytes"]))  # bytes: the rule fits states and working memory
                for policy in args.policies:
                    for w in args.blocks:
                        try:
                            r = run_worker("memory", dict(base, method="budgeted", budget=budget, policy=policy,
                                                          block=w))
                        except RuntimeError as exc:
                            if "below the working memory" not in str(exc):
                                raise
                            print(f"{model} T = {T}: {100 * frac:.0f}% ({int(budget) / 1e6:.2f} MB) is below the "
                                  f"working memory of a {w}-step block: skipped")
                            continue
                        wb = r["chosen_block"]  # w, or what 'auto' chose
                        n = -(-T // wb)
                        p = plan(n, min(r["slots"], n), policy, alpha=r["graph_units"])
                        group.append(dict(r, predicted=p.cost * wb / T, budget_fraction=frac))
            seg = max(1, int(round(math.sqrt(T))))
            group.append(dict(run_worker("memory", dict(base, method="checkpoint", segment=seg)), predicted=2.0))
            times = run_worker("time", [{k: v for k, v in r.items() if k in CONFIG_KEYS} for r in group])
            for r, t in zip(group, times):
                r["time_s"] = t
            rows += group
            print_rows(group, ref)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


CONFIG_KEYS = ("T", "batch", "n_in", "hidden", "n_out", "model", "repeats", "method", "budget", "policy", "block",
               "segment")


def print_rows(rows: list[dict], ref: dict) -> None:
    T, model = ref["T"], ref["model"]
    print(f"\n{model.upper()} recurrent, {ref['hidden']} hidden, batch {ref['batch']}, T = {T} "
          f"(hidden state {ref['state_bytes'] / 1024:.0f} KiB)")
    print("| method | budget | peak MB | memory saved | time s/iter | time ratio | predicted cost ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        budget = (f"{100 * r['budget_fraction']:.0f}%: {r['slots']} states, {r['policy']}, block {r['block']}{'' if r['block'] == r['chosen_block'] else ' -> ' + str(r['chosen_block'])}, "
                  f"alpha {r['alpha']:.2f}"
                  if r["method"] == "budgeted"
                  else f"segments of {r['segment']}" if r["method"] == "checkpoint" else "all")
        saved = 1 - r["peak_bytes"] / max(ref["peak_bytes"], 1)
        print(f"| {r['method']} | {budget} | {r['peak_bytes'] / 1e6:.1f} | {100 * saved:.1f}% | "
              f"{r['time_s']:.3f} | {r['time_s'] / ref['time_s']:.2f}x | {r['predicted']:.2f} |")


if __name__ == "__main__":
    raise SystemExit(main())

"""Conv SNN on the bundled event-digit task (issue 19's bar): accuracy per rule and seed, time
per epoch, and budgeted BPTT's gradient and peak memory against full BPTT.

    python bench/conv_train.py accuracy --rules bptt ottt ratebp --seeds 0 1 2 --epochs 8 --threads 2
    python bench/conv_train.py memory [--saccade-steps 6|20|30] [--budget N|8MB] [--block W|auto]

accuracy: ``neurosim train``'s own loop (training.trainer.train, TrainConfig) per (rule, seed);
the epoch is chosen on the validation split (144 samples drawn from the training data), and the
test accuracy reported is that epoch's (the test split never chooses anything). Time: wall
seconds of training and evaluation per epoch, the whole run's wall time (data generation
included) and its CPU time (all threads of the process; under load, the machine-independent one).
memory: float64, one batch; gradients of budgeted BPTT (`--budget`: stored states, or bytes
such as 8MB; `--block`) against BPTT's (max |difference| / max |gradient| per weight), and the
peak bytes alive during each backward (training.budget.memory.LiveBytes with numpy: torch
storages and numpy arrays created inside, the fused kernels' saved h and z among them; model and
data excluded). Both rules run as `neurosim train` runs them: fused where the layers have
kernels. BPTT through the per-step graph (the fused path off) is measured too, as a reference.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARCH = "conv(16,k=5,s=2,p=2),pool(2),conv(32,k=3,p=1),pool(2),flatten,dense(10)"


def task_options(pairs: list[str]) -> dict:
    """KEY=VALUE strings as task options (numbers parsed)."""
    out = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        out[key] = json.loads(value) if value.replace(".", "", 1).lstrip("-").isdigit() else value
    return out


def accuracy(args: argparse.Namespace) -> list[dict]:
    import torch

    from training.config import TrainConfig
    from training.trainer import train

    torch.set_num_threads(args.threads)
    rows = []
    for rule in args.rules:
        for seed in args.seeds:
            cfg = TrainConfig(task="nmnist_digits", rule=rule, epochs=args.epochs, batch_size=args.batch_size,
                              lr=args.lr, seed=seed, arch=args.arch, task_options=task_options(args.task_option))
            t0, c0 = time.perf_counter(), time.process_time()
            hist: list[dict] = []
            with tempfile.TemporaryDirectory() as d:
                train(cfg, Path(d) / "run", progress=False, device="cpu",
                      on_epoch=lambda r: (hist.append(r), print(json.dumps(dict(rule=rule, seed=seed, **r)), flush=True)))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            best = max(hist, key=lambda r: (r["val_acc"], -r["epoch"]))
            row = dict(rule=rule, seed=seed, epochs=args.epochs, best_epoch=int(best["epoch"]) + 1,
                       val_acc=best["val_acc"], test_acc=best["test_acc"], last_test_acc=hist[-1]["test_acc"],
                       seconds_per_epoch=[round(r["seconds"], 1) for r in hist], wall_s=round(wall, 1),
                       cpu_s=round(cpu, 1), task_options=args.task_option,
                       load_1min=os.getloadavg()[0])
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def memory(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    from training.budget.memory import LiveBytes
    from training.layered import LayeredSNN, parse_arch
    from training.rules import make_rule
    from training.runfiles import to_batch
    from training.tasks import make_task

    torch.set_num_threads(args.threads)
    task = make_task("nmnist_digits", seed=0, n_train=40, n_test=10, n_val=0, saccade_steps=args.saccade_steps)
    batch = to_batch(task.train, np.arange(args.batch_size), torch.float64)
    budget = int(args.budget) if args.budget.isdigit() else args.budget
    block = args.block if args.block == "auto" else int(args.block)
    out = {"T": batch.steps, "batch": args.batch_size, "budget": budget, "block": block}
    grads = {}
    runs = (("bptt_per_step", make_rule("bptt"), False), ("bptt", make_rule("bptt"), True),
            ("budgeted", make_rule("budgeted", budget=budget, block=block), True))
    for name, rule, fused in runs:
        model = LayeredSNN(parse_arch(args.arch), (2, 34, 34), dtype=torch.float64, seed=0)
        model.fused = fused
        rule.backward(model, batch)  # warm: numba's compilation and torch's first calls are not the rule's memory
        t0 = time.perf_counter()
        rule.backward(model, batch)  # timed apart: the memory probe slows every op
        out[f"{name}_seconds"] = round(time.perf_counter() - t0, 3)
        model.zero_grad(set_to_none=True)
        with LiveBytes(numpy=True) as mem:
            rule.backward(model, batch)
        out[f"{name}_peak_bytes"] = mem.peak
        grads[name] = {k: p.grad.clone() for k, p in model.weights.items()}
    if getattr(runs[2][1], "block", None) is not None:
        out["block_used"] = runs[2][1].block
    out["max_rel_grad_diff"] = max(float((grads["budgeted"][k] - g).abs().max() / g.abs().max())
                                   for k, g in grads["bptt"].items())
    out["memory_ratio"] = round(out["bptt_peak_bytes"] / out["budgeted_peak_bytes"], 2)
    out["memory_ratio_per_step"] = round(out["bptt_per_step_peak_bytes"] / out["budgeted_peak_bytes"], 2)
    print(json.dumps(out), flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("accuracy", "memory"))
    p.add_argument("--rules", nargs="+", default=["bptt", "ottt", "ratebp"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--arch", default=ARCH)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--budget", default="1", help="memory: budgeted BPTT's budget, stored states (an integer) or bytes (8MB)")
    p.add_argument("--block", default="1", help="memory: budgeted BPTT's block length, or auto")
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE",
                   help="accuracy: an option of the nmnist_digits task (repeatable)")
    p.add_argument("--saccade-steps", type=int, default=6, help="memory: steps per saccade (T = 3x; 6 is the task's default)")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    args = p.parse_args()
    result = accuracy(args) if args.mode == "accuracy" else memory(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

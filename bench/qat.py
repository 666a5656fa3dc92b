"""Accuracy of the fixed-point (Loihi) network without and with quantisation-aware training
(issue 24, item 2), on the demo's task: the demo's LSNN (128 ALIF, half adaptive, LI readout,
BPTT) on store-and-recall.

Every network is quantised as the mapping path does (``neurosim.fixed_point.quantize``, the
quantisation of mapping.lava_export's fixed_pt) and run by ``simulate_fixed`` (equal to Lava
fixed_pt bit for bit) on a validation set (the task drawn with seed + 1000) and the test set; the
QAT model's own torch accuracy is checked to equal simulate_fixed's. Two protocols:

- from scratch (default): per seed two runs of ``training.trainer.train`` (the code behind
  ``neurosim train``) with the same options and epochs, float (torch float32, the demo's dtype) and
  ``--quantize loihi --dtype float64``; each run's epoch is the one of best validation accuracy of
  the network it deploys (the float network's own for the float run, then quantised: "without
  QAT"; the fixed-point network's for the QAT run):

      OMP_NUM_THREADS=1 python bench/qat.py --seeds 0 1 2 --epochs 6 --n-train 256 --n-val 128

- fine-tuning (``--finetune CHECKPOINT``): the float run's network at its validation-chosen
  epoch, loaded into the QAT model and trained ``--qat-epochs`` more epochs at constant
  ``--qat-lr``; the epoch (0 = as loaded, i.e. without QAT) chosen on the fixed-point validation
  accuracy:

      OMP_NUM_THREADS=1 python bench/qat.py --seeds 0 --finetune RUN/checkpoint.pt --qat-epochs 2 \
          --n-train 256 --n-val 128
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from neurosim.fixed_point import quantize, simulate_fixed  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.runfiles import load_tensors  # noqa: E402
from training.scoring import score  # noqa: E402
from training.tasks import make_task  # noqa: E402
from training.trainer import build_model, evaluate, train  # noqa: E402


def fixed_accuracy(net: Any, split: Any, task: Any) -> float:
    """Accuracy of quantize(net) run by simulate_fixed on `split` (scored as training scores)."""
    fixed = quantize(net)
    spikes = np.ascontiguousarray(np.asarray(split.inputs, bool).transpose(1, 0, 2))  # (T, N, n_in)
    res = simulate_fixed(fixed, {"in": spikes}, task.steps, traces={"out": ["v"]})
    v = torch.as_tensor(res.traces["out"]["v"])
    ok, n = score(task, {int(t): v[t] for t in np.flatnonzero(split.loss_mask)}, torch.as_tensor(split.targets))
    return ok / n


def run_arm(seed: int, qat: bool, args: argparse.Namespace, root: Path) -> list[dict[str, float]]:
    """Train one arm; per epoch: torch test/val accuracy, fixed-point val/test accuracy."""
    cfg = TrainConfig(task="store_recall", rule="bptt", epochs=args.epochs, batch_size=32, lr=3e-3, seed=seed,
                      hidden=args.hidden, model="alif", n_train=args.n_train, n_test=args.n_test, tau_adapt=0.2,
                      dtype="float64" if qat else "float32", quantize="loihi" if qat else None)
    task = make_task("store_recall", seed=seed, n_train=args.n_train, n_test=args.n_test)
    val = make_task("store_recall", seed=seed + 1000, n_train=32, n_test=args.n_val).test
    run = root / f"seed{seed}_{'qat' if qat else 'float'}"
    rows: list[dict[str, float]] = []

    def on_epoch(row: dict[str, float]) -> None:
        model = build_model(cfg, task)
        model.load_state_dict(load_tensors(run / "checkpoint.pt")["model"])
        net = model.to_network()
        _, val_acc = evaluate(model, val, task, 256)
        out = dict(epoch=int(row["epoch"]) + 1, test=float(row["test_acc"]), val=val_acc,
                   fixed_val=fixed_accuracy(net, val, task), fixed_test=fixed_accuracy(net, task.test, task))
        if qat and (out["fixed_val"] != out["val"] or out["fixed_test"] != out["test"]):
            raise AssertionError(f"QAT forward and simulate_fixed disagree: {out}")
        rows.append(out)
        if args.keep:  # every epoch's checkpoint, for --finetune
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run / "checkpoint.pt", Path(args.keep) / f"{run.name}_epoch{out['epoch']}.pt")
        print(f"  seed {seed} {'qat  ' if qat else 'float'} epoch {out['epoch']}: " +
              ", ".join(f"{k} {v:.4f}" for k, v in out.items() if k != "epoch"), flush=True)

    t0 = time.perf_counter()
    train(cfg, run, progress=False, device="cpu", overwrite=True, on_epoch=on_epoch)
    print(f"  seed {seed} {'qat' if qat else 'float'}: {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def finetune(seed: int, ckpt: Path, args: argparse.Namespace) -> list[dict[str, float]]:
    """QAT fine-tuning: the float run's network (checkpoint `ckpt`) loaded into the QAT model of the
    same options and trained `args.qat_epochs` more epochs (bptt, Adam, constant lr `args.qat_lr`,
    batches shuffled by training.runfiles.shuffled); per epoch (0: the float network as loaded)
    the fixed-point validation and test accuracy, checked against the QAT model's own."""
    from training.rules import make_rule
    from training.runfiles import shuffled, to_batch

    cfg = TrainConfig(task="store_recall", rule="bptt", epochs=args.qat_epochs, batch_size=32, lr=args.qat_lr,
                      seed=seed, hidden=args.hidden, model="alif", n_train=args.n_train, n_test=args.n_test,
                      tau_adapt=0.2, dtype="float64", quantize="loihi", schedule="constant")
    task = make_task("store_recall", seed=seed, n_train=args.n_train, n_test=args.n_test)
    val = make_task("store_recall", seed=seed + 1000, n_train=32, n_test=args.n_val).test
    model = build_model(cfg, task)
    state = load_tensors(ckpt)
    model.load_state_dict({k: v for k, v in state["model"].items() if k in dict(model.weights.named_parameters(prefix="weights"))},
                          strict=False)
    opt = torch.optim.Adam(model.parameters(), lr=args.qat_lr)
    rule = make_rule("bptt")
    rows = []
    for epoch in range(args.qat_epochs + 1):
        if epoch:
            t0 = time.perf_counter()
            order = shuffled(cfg, epoch - 1, len(task.train.inputs))
            for lo in range(0, len(order), cfg.batch_size):
                b = to_batch(task.train, order[lo:lo + cfg.batch_size], model.v0.dtype, model.v0.device)
                opt.zero_grad(set_to_none=True)
                rule.backward(model, b)
                opt.step()
            print(f"  seed {seed} qat fine-tune epoch {epoch}: {time.perf_counter() - t0:.0f} s", flush=True)
        net = model.to_network()
        _, val_acc = evaluate(model, val, task, 256)
        _, test_acc = evaluate(model, task.test, task, 256)
        out = dict(epoch=epoch, test=test_acc, val=val_acc, fixed_val=fixed_accuracy(net, val, task),
                   fixed_test=fixed_accuracy(net, task.test, task))
        if out["fixed_val"] != out["val"] or out["fixed_test"] != out["test"]:
            raise AssertionError(f"QAT forward and simulate_fixed disagree: {out}")
        rows.append(out)
        print(f"  seed {seed} qat fine-tune epoch {epoch}: " +
              ", ".join(f"{k} {v:.4f}" for k, v in out.items() if k != "epoch"), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--n-train", type=int, default=512)
    ap.add_argument("--n-test", type=int, default=256)
    ap.add_argument("--n-val", type=int, default=256)
    ap.add_argument("--json", default=None, help="also write the per-epoch rows here")
    ap.add_argument("--keep", default=None, metavar="DIR",
                    help="copy every epoch's checkpoint to DIR/seed{S}_{float|qat}_epoch{E}.pt")
    ap.add_argument("--finetune", default=None, metavar="CHECKPOINT",
                    help="only QAT fine-tuning of this float run's checkpoint (one seed)")
    ap.add_argument("--arms", nargs="+", choices=("float", "qat"), default=["float", "qat"],
                    help="from scratch: which runs (default both; the table needs both)")
    ap.add_argument("--qat-epochs", type=int, default=2)
    ap.add_argument("--qat-lr", type=float, default=1e-3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.finetune:
        rows = finetune(args.seeds[0], Path(args.finetune), args)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        best = max(rows, key=lambda r: r["fixed_val"])
        print(f"seed {args.seeds[0]}: QAT fine-tuned, epoch {best['epoch']} (validation), fixed-point test "
              f"{best['fixed_test']:.4f}")
        return
    table, dump = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            dump[seed] = {arm: run_arm(seed, arm == "qat", args, Path(tmp)) for arm in args.arms}
            if len(dump[seed]) < 2:
                continue
            f_rows, q_rows = dump[seed]["float"], dump[seed]["qat"]
            bf = max(f_rows, key=lambda r: r["val"])   # first epoch of best float validation accuracy
            bq = max(q_rows, key=lambda r: r["fixed_val"])
            table.append((seed, bf["epoch"], bf["test"], bf["fixed_test"], bq["epoch"], bq["fixed_test"]))
    if args.json:
        Path(args.json).write_text(json.dumps(dump, indent=1))
    if not table:
        return
    print("\nseed | float epoch | float32 test | fixed point, no QAT | QAT epoch | fixed point, QAT")
    for s, ef, ft, fx, eq, qx in table:
        print(f"{s:4d} | {ef:11d} | {ft:12.4f} | {fx:19.4f} | {eq:9d} | {qx:16.4f}")
    m = np.mean([r[2:] for r in table], axis=0)
    print(f"mean |             | {m[0]:12.4f} | {m[1]:19.4f} |           | {m[3]:16.4f}")


if __name__ == "__main__":
    main()

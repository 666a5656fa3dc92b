"""Fixed-point accuracy without and with QAT (fine-tuning) on the event-digit conv task (issue 24,
item 2, bar line 1): the conv demo's network (issue 19's, every layer resetting to zero as Lava's
LIF does) on nmnist_digits.

Per seed: a float run of ``training.trainer.train`` (float32, BPTT, the epoch chosen on the task's
validation split); its network at that epoch, quantised ("no QAT"), and then fine-tuned with
``--quantize loihi`` for ``--qat-epochs`` epochs at constant ``--qat-lr`` (epoch 0 = as loaded;
chosen on the fixed-point validation accuracy). The fixed-point accuracy of a network is its
QAT model's torch accuracy: that forward pass is the network's ``simulate_fixed`` run spike for
spike (tests/test_qat.py, the conv case), which on this network's dense CSR lowering would take
minutes per split in numpy; the script checks it on ``--check`` test trials with simulate_fixed.

    OMP_NUM_THREADS=1 python bench/qat_conv.py --seed 0 --epochs 6
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from neurosim.fixed_point import quantize, simulate_fixed  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.layered import to_network  # noqa: E402
from training.rules import make_rule  # noqa: E402
from training.runfiles import load_tensors, shuffled, to_batch  # noqa: E402
from training.trainer import build_model, evaluate, train  # noqa: E402

from neurosim.cli.demo_train import CONV_ARCH as ARCH  # noqa: E402  (the conv demo's network: reset to zero)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--qat-epochs", type=int, default=2)
    ap.add_argument("--qat-lr", type=float, default=1e-3)
    ap.add_argument("--check", type=int, default=4, help="test trials checked against simulate_fixed")
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = dict(task="nmnist_digits", rule="bptt", epochs=args.epochs, batch_size=32, lr=3e-3, seed=args.seed,
                arch=ARCH)
    fcfg = TrainConfig(**base)
    qcfg = TrainConfig(**dict(base, epochs=args.qat_epochs, lr=args.qat_lr, dtype="float64", quantize="loihi",
                              schedule="constant"))
    kept: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as d:
        run = Path(d) / "float"
        t0 = time.perf_counter()
        out = train(fcfg, run, progress=False, device="cpu",
                    on_epoch=lambda r: kept.__setitem__(int(r["epoch"]), copy.deepcopy(
                        load_tensors(run / "checkpoint.pt")["model"])))
        print(f"seed {args.seed} float: {time.perf_counter() - t0:.0f} s", flush=True)
    hist, task = out["history"], out["task"]
    for r in hist:
        print(f"  float epoch {int(r['epoch']) + 1}: val {r['val_acc']:.4f} test {r['test_acc']:.4f}", flush=True)
    best = max(hist, key=lambda r: r["val_acc"])
    model = build_model(qcfg, task)
    model.load_state_dict({k: v for k, v in kept[int(best["epoch"])].items() if k.startswith("weights.")},
                          strict=False)
    net = to_network(model, task.dt)
    x = np.ascontiguousarray(np.asarray(task.test.inputs[:args.check], bool).transpose(1, 0, 2))
    res = simulate_fixed(quantize(net), {"in": x}, task.steps)
    with torch.no_grad():
        z, _ = model(torch.as_tensor(x, dtype=torch.float64), record=("z",))
    for name in model.slices:
        assert np.array_equal(res.spikes[name].dense(), z[name]["z"].numpy().astype(bool)), name
    print(f"  simulate_fixed on {args.check} test trials: spikes equal to the QAT forward", flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=args.qat_lr)
    rule = make_rule("bptt")
    rows = []
    for epoch in range(args.qat_epochs + 1):
        if epoch:
            order = shuffled(qcfg, epoch - 1, len(task.train.inputs))
            for lo in range(0, len(order), qcfg.batch_size):
                b = to_batch(task.train, order[lo:lo + qcfg.batch_size], model.v0.dtype, model.v0.device)
                opt.zero_grad(set_to_none=True)
                rule.backward(model, b)
                opt.step()
        _, val = evaluate(model, task.val, task, 128)
        _, test = evaluate(model, task.test, task, 128)
        rows.append((epoch, val, test))
        print(f"  qat epoch {epoch}: fixed-point val {val:.4f} test {test:.4f}", flush=True)
    q = max(rows, key=lambda r: r[1])
    print(f"seed {args.seed} | float epoch {int(best['epoch']) + 1} | float32 test {best['test_acc']:.4f} | "
          f"fixed point, no QAT {rows[0][2]:.4f} | QAT epoch {q[0]} | fixed point, QAT {q[2]:.4f}", flush=True)


if __name__ == "__main__":
    main()

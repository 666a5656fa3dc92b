"""Peak memory of one training epoch on a cached event dataset, streamed in batches.

A synthetic root in the dataset's genuine format (SHD, N-MNIST or DVS Gesture; tests/event_files.py)
is written and cached by the parent; a fresh child process then builds the task, runs the
trainer once on two samples (one-off imports: matplotlib for the curve, h5py's writer), takes its
resident memory (VmRSS) as the baseline, trains one epoch with training.trainer.train and reads
its high-water mark (VmHWM of /proc/self/status; not ru_maxrss, which Linux carries over exec
from the parent). The bound of issue 22: 2 x one batch's tensors + the model, with

- one batch's tensors = the input batch (T, B, n_in) in the model's dtype + the peak bytes of
  tensors created during one training iteration on it (training.budget.memory.LiveBytes);
- the model = parameters x 4 (weights, gradients, Adam's two moments).

    python bench/event_stream_memory.py                          # 480 samples, T = 200, B = 64
    python bench/event_stream_memory.py --samples 120 --batch 16 --json
    python bench/event_stream_memory.py --dataset nmnist --samples 480 --batch 64
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def vm(field: str) -> int:
    """/proc/self/status `field` (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def child(name: str, root: str, batch: int, hidden: int, dt: float | None) -> dict:
    import numpy as np
    import torch

    from training.budget.memory import LiveBytes
    from training.config import TrainConfig
    from training.rules import make_rule
    from training.runfiles import to_batch
    from training.tasks import make_task
    from training.trainer import train

    torch.set_num_threads(1)
    opts = {"root": root, **({"dt": dt} if dt else {})}
    config = TrainConfig(task=name, epochs=1, batch_size=batch, hidden=hidden, task_options=opts)
    task = make_task(name, **opts)
    with tempfile.TemporaryDirectory() as run:  # warm-up on 2 samples: lazy imports (matplotlib for
        train(replace(config, n_train=2, n_test=2), run, progress=False, device="cpu")  # curve.png), kernels
    base = vm("VmRSS")
    with tempfile.TemporaryDirectory() as run:
        out = train(config, run, progress=False, device="cpu")
    peak = vm("VmHWM")
    model = out["model"]
    b = to_batch(task.train, np.arange(batch), model.v0.dtype)
    with LiveBytes() as mem:
        make_rule("bptt").backward(model, b)
    n = len(task.train)
    item = np.dtype(np.float32).itemsize
    return dict(samples=n, steps=task.steps, n_in=task.n_in, batch=batch, hidden=hidden,
                dense_train_bytes=n * task.steps * task.n_in * item,
                batch_input_bytes=int(b.inputs.numel() * b.inputs.element_size()), iteration_bytes=int(mem.peak),
                model_bytes=4 * sum(p.numel() * p.element_size() for p in model.parameters()),
                baseline_rss=base, peak_hwm=peak, increase=peak - base)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="shd", choices=("shd", "nmnist", "dvs_gesture"))
    ap.add_argument("--samples", type=int, default=480)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--duration", type=float, default=1.0, help="SHD: seconds of events per sample")
    ap.add_argument("--dt", type=float, default=None, help="seconds per step (default: 5e-3 for shd, else the task's)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.dataset, a.child, a.batch, a.hidden, a.dt)))
        return
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    from event_files import write_dvs_gesture, write_nmnist, write_shd

    from training.tasks import make_task

    with tempfile.TemporaryDirectory() as tmp:
        n_test = max(a.samples // 4, 20)
        if a.dataset == "shd":
            a.dt = a.dt or 5e-3
            write_shd(Path(tmp), n_train=a.samples, n_test=n_test, duration=a.duration)
        else:
            (write_nmnist if a.dataset == "nmnist" else write_dvs_gesture)(Path(tmp), n_train=a.samples, n_test=n_test)
        make_task(a.dataset, root=tmp, **({"dt": a.dt} if a.dt else {}))  # caches built here, not in the child
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, __file__, "--child", tmp, "--dataset", a.dataset, "--batch", str(a.batch),
               "--hidden", str(a.hidden)] + (["--dt", str(a.dt)] if a.dt else [])
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    r = json.loads(res.stdout.strip().splitlines()[-1])
    r["bound"] = 2 * (r["batch_input_bytes"] + r["iteration_bytes"]) + r["model_bytes"]
    if a.json:
        print(json.dumps(r))
        return
    mb = lambda x: f"{x / 2**20:.1f} MiB"  # noqa: E731
    print(f"{a.dataset} format, {r['samples']} train samples x {r['steps']} steps x {r['n_in']} channels "
          f"(dense float32: {mb(r['dense_train_bytes'])}), batch {r['batch']}, hidden {r['hidden']}")
    print(f"one batch: input {mb(r['batch_input_bytes'])} + iteration tensors {mb(r['iteration_bytes'])}; "
          f"model x4 {mb(r['model_bytes'])}; bound 2 x batch + model = {mb(r['bound'])}")
    print(f"peak (VmHWM) - baseline (VmRSS) over one epoch: {mb(r['increase'])} "
          f"({'below' if r['increase'] < r['bound'] else 'ABOVE'} the bound)")


if __name__ == "__main__":
    main()

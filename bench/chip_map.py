"""Resource and cost report of a trained network on a chip, on its task's test trials.

    python bench/chip_map.py --run runs/sr --trials 64 --chip loihi2 --out runs/sr/loihi2.md

reads RUN/config.json and RUN/model.h5 (written by `neurosim train`), writes the first --trials
test inputs of the run's task as RUN/map_input.npz ((T, B, n) under the network's input name)
and runs `neurosim map RUN/model.h5 --chip CHIP --steps T --input RUN/map_input.npz --out OUT`,
printing that command first so that it can be rerun by hand.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a `neurosim train` run directory (config.json, model.h5)")
    p.add_argument("--trials", type=int, default=64, help="test trials to simulate (default 64)")
    p.add_argument("--chip", default="loihi2")
    p.add_argument("--out", default=None, help="report file (.md or .json; default RUN/CHIP.md)")
    p.add_argument("--plot", default=None, help="per-core usage PNG")
    args = p.parse_args()

    from neurosim import storage
    from neurosim.cli import main as cli
    from training.tasks import make_task

    with open(os.path.join(args.run, "config.json")) as f:
        cfg = json.load(f)
    task = make_task(cfg["task"], seed=cfg["seed"], n_train=cfg.get("n_train"), n_test=cfg.get("n_test"),
                     **cfg.get("task_options", {}))
    model = os.path.join(args.run, "model.h5")
    net = storage.load(model)
    x = np.asarray(task.test.inputs[: args.trials])  # (B, T, n)
    x = np.ascontiguousarray(x.transpose(1, 0, 2))
    if np.issubdtype(x.dtype, np.floating) and np.all(x == np.round(x)):
        x = x.astype(np.uint16 if x.max() > 1 else bool)
    path = os.path.join(args.run, "map_input.npz")
    np.savez(path, **{net.inputs[0].name: x})
    out = args.out or os.path.join(args.run, f"{args.chip}.md")
    argv = ["map", model, "--chip", args.chip, "--steps", str(x.shape[0]), "--input", path, "--out", out]
    if args.plot:
        argv += ["--plot", args.plot]
    print("neurosim " + " ".join(shlex.quote(a) for a in argv), flush=True)
    return cli(argv)


if __name__ == "__main__":
    sys.exit(main())

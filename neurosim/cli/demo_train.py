"""The demo's training stage: ``neurosim train``'s own loop (training.trainer.train), then the
epoch to keep.

The epoch is chosen on the task's validation split when it has one (``nmnist_digits``: 10% of
the training samples): after every epoch the trainer writes ``checkpoint.pt``, and the state of
the epoch with the highest validation accuracy (the earliest of equals) is kept; the test split
chooses nothing. A task without a validation split keeps the last epoch. The kept model's
Network is what every later stage simulates, exports and checks.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

# the conv SNN of issue 19 (bench/conv_train.py): 2x34x34 events -> 16x17x17 -> 16x8x8 -> 32x8x8 -> 32x4x4 -> 10,
# every spiking layer with the reset to zero that NIR, NetX and Lava's LIF express (a subtractive
# reset is refused by NIR's strict export and by NetX)
CONV_ARCH = ("conv(16,k=5,s=2,p=2,reset=zero),pool(2,reset=zero),conv(32,k=3,p=1,reset=zero),pool(2,reset=zero),"
             "flatten,dense(10)")
ARCH_ALIASES = {"conv": CONV_ARCH}


@dataclass
class Trained:
    """What the training stage hands on: the kept model (torch), its Network, the task, the
    trainer's history, the kept epoch (0-based) and how it was chosen."""

    model: Any
    network: Any
    task: Any
    history: list[dict[str, float]]
    epoch: int
    chosen_by: str
    run_dir: str

    @property
    def test_accuracy(self) -> float:
        """The trainer's test accuracy (training.trainer.evaluate, float32) of the kept epoch."""
        return float(self.history[self.epoch]["test_acc"])


def resolve_arch(arch: Optional[str]) -> Optional[str]:
    """'conv' -> :data:`CONV_ARCH`; any other spec (or JSON file) as given; None stays None."""
    return None if arch is None else ARCH_ALIASES.get(arch, arch)


def train_stage(tc: Any, run_dir: str, *, progress: bool, device: str = "auto") -> Trained:
    """Train `tc` (training.config.TrainConfig) into `run_dir` on `device` ('auto': CUDA when torch
    sees a GPU) and keep the epoch chosen on the validation split (module docstring)."""
    import torch

    from training.runfiles import read_checkpoint
    from training.trainer import network_of, train

    best: dict[str, Any] = {}
    ckpt = Path(run_dir) / "checkpoint.pt"

    def keep_best(row: dict[str, float]) -> None:
        if "val_acc" not in row or ("val_acc" in best and row["val_acc"] <= best["val_acc"]):
            return
        state, _, _ = read_checkpoint(ckpt, tc)  # written by the trainer before it calls on_epoch
        best.update(val_acc=row["val_acc"], epoch=int(row["epoch"]),
                    model={k: v.clone() for k, v in state["model"].items()})

    trained = train(tc, run_dir, progress=progress, device=device, overwrite=True, on_epoch=keep_best)
    model, task, history = trained["model"], trained["task"], trained["history"]
    if best:
        model.load_state_dict(best["model"])
        epoch, how = best["epoch"], f"highest validation accuracy ({best['val_acc']:.4f} on {len(task.val)} trials)"
    else:
        epoch, how = len(history) - 1, "the last epoch (the task has no validation split)"
    model.eval()
    with torch.no_grad():
        net = network_of(model, tc, task)
    return Trained(model, net, task, history, epoch, how, run_dir)

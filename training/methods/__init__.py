"""Training methods that bring their own model and loop, behind the same `neurosim train`.

The rules of `training.rules` compute gradients of the recurrent SNN built from a `Network`.
Some methods change the model itself or its dynamics (Sparse Attentive Backtracking adds an
attention over past states, Equilibrium Propagation needs a convergent energy-based network,
MSG moves manifold states on a graph), so each has a module exposing

    train_run(config: TrainConfig, run_dir: Path, *, resume: bool, progress: bool,
              device: torch.device) -> dict   # keys: history, model, task, bar

that writes the run directory like `training.trainer.train` does (config.json, checkpoint.pt
after every epoch, metrics.csv, curve.png, all atomically) and reads its own options from
`config.rule_options` (``--rule-option KEY=VALUE``). `METHODS` maps the rule name to the module
and the tasks it fits.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neurosim.errors import NeurosimError

from ..config import TrainConfig

if TYPE_CHECKING:
    import torch


# TrainConfig fields every method reads
COMMON_FIELDS = ("task", "rule", "epochs", "lr", "seed", "hidden", "schedule", "task_options", "rule_options")


@dataclass(frozen=True)
class Method:
    """module: dotted module with `train_run`; tasks: the `--task` values it trains on; fields:
    the TrainConfig fields it reads besides COMMON_FIELDS (any other set away from its default is
    refused); hints: field -> where the method takes that setting instead."""

    module: str
    tasks: tuple[str, ...]
    fields: tuple[str, ...] = ()
    hints: tuple[tuple[str, str], ...] = ()


METHODS: dict[str, Method] = {
    # Sparse Attentive Backtracking (Ke et al. 2018)
    "sab": Method("training.methods.sab", ("copy", "adding", "digits"),
                  ("batch_size", "clip", "n_train", "n_test", "surrogate", "tau_adapt", "adapt"),
                  (("k", "its truncation is --rule-option k_trunc=STEPS"),
                   ("model", "its cell is --rule-option cell=lstm|lif|alif"))),
    # Equilibrium Propagation (Ernoult et al. 2019)
    "ep": Method("training.methods.ep", ("digits_static",), ("batch_size", "n_train", "n_test")),
    # spiking GNN on manifolds, DvM (Sun et al. 2024)
    "msg": Method("training.methods.msg", ("sbm", "graph"), ("surrogate",),
                  (("n_train", "the split of an sbm graph is --task-option train_frac=F (and val_frac)"),)),
}


def refuse_unused(config: "TrainConfig", method: Method, unused: tuple[str, ...] = ()) -> None:
    """NeurosimError for the first TrainConfig field that `method` does not read (or that is in
    `unused`) but is set away from its default: a flag that would be silently ignored."""
    from dataclasses import fields

    default, hints = TrainConfig(), dict(method.hints)
    for f in fields(config):
        value = getattr(config, f.name)
        read = f.name in COMMON_FIELDS + method.fields and f.name not in unused
        if not read and value != getattr(default, f.name):
            hint = f"; {hints[f.name]}" if f.name in hints else ""
            raise NeurosimError(f"--{f.name.replace('_', '-')} {value}: rule {config.rule} does not use it{hint}")


def run_method(config: "TrainConfig", run_dir: Path, *, resume: bool, progress: bool,
               device: "torch.device") -> dict[str, Any]:
    """Train `config` with the method named by `config.rule` (a key of METHODS)."""
    method = METHODS[config.rule]
    if config.task not in method.tasks:
        raise NeurosimError(f"--task {config.task}: rule {config.rule} trains on "
                            f"{', '.join(method.tasks)}, not on {config.task}")
    refuse_unused(config, method)
    module = importlib.import_module(method.module)
    return module.train_run(config, run_dir, resume=resume, progress=progress, device=device)


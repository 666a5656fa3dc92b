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

if TYPE_CHECKING:
    import torch

    from .trainer import TrainConfig


@dataclass(frozen=True)
class Method:
    """module: dotted module with `train_run`; tasks: the `--task` values it trains on."""

    module: str
    tasks: tuple[str, ...]


METHODS: dict[str, Method] = {
    "sab": Method("training.sab", ("copy", "adding", "digits")),  # Sparse Attentive Backtracking (Ke et al. 2018)
    "ep": Method("training.ep", ("digits_static",)),  # Equilibrium Propagation (Ernoult et al. 2019)
    "msg": Method("training.msg", ("sbm", "graph")),  # spiking GNN on manifolds, DvM (Sun et al. 2024)
}


def run_method(config: "TrainConfig", run_dir: Path, *, resume: bool, progress: bool,
               device: "torch.device") -> dict[str, Any]:
    """Train `config` with the method named by `config.rule` (a key of METHODS)."""
    method = METHODS[config.rule]
    if config.task not in method.tasks:
        raise NeurosimError(f"--task {config.task}: rule {config.rule} trains on "
                            f"{', '.join(method.tasks)}, not on {config.task}")
    module = importlib.import_module(method.module)
    return module.train_run(config, run_dir, resume=resume, progress=progress, device=device)


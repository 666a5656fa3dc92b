"""The files of a run directory and the epoch helpers every training loop shares (the trainer,
SAB, EP, MSG).

RUN_DIR holds, each written atomically (temporary file + rename): ``checkpoint.pt`` (version,
config, epoch, history and the tensors; loaded with ``weights_only``, never unpickling code),
``metrics.csv``, ``config.json``, ``curve.png``. Epoch e of a run uses the learning rate
`epoch_lr` (a function of the epoch alone) and the sample order `shuffled` (seeded with
(seed, e)), so a resumed run repeats an uninterrupted one.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from neurosim.atomic import remove_stale, write_bytes, write_png
from neurosim.errors import NeurosimError

from .config import TrainConfig
from .layers import SNN
from .rules.base import Batch

CHECKPOINT_VERSION = 1


def epoch_lr(config: "TrainConfig", epoch: int) -> float:
    """Learning rate of `epoch`: constant, or cosine ``lr * (1 + cos(pi * epoch / epochs)) / 2``
    (a function of the epoch alone, so a resumed run uses the same rates)."""
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / max(config.epochs, 1)))
    raise NeurosimError(f"--schedule: expected 'constant' or 'cosine', got {config.schedule!r}")


def set_epoch_lr(opt: torch.optim.Optimizer, config: "TrainConfig", epoch: int) -> None:
    """Every parameter group of `opt` at `epoch_lr(config, epoch)`."""
    for group in opt.param_groups:
        group["lr"] = epoch_lr(config, epoch)


def epoch_bar(config: Any, start: int, per_epoch: int, desc: str, progress: bool, unit: str = "batch") -> Any:
    """tqdm bar over the `per_epoch` updates of each epoch from `start` to config.epochs."""
    from tqdm.auto import tqdm

    return tqdm(total=(config.epochs - start) * per_epoch, desc=desc, unit=unit, disable=not progress, leave=False)


def show_running(bar: Any, epoch: int, loss_sum: float, seen: int, correct: int, counted: int) -> None:
    """The epoch (from 1), its running mean loss over `seen` samples and accuracy over `counted`
    scored items, in the progress bar's postfix (nothing before the first)."""
    if seen and counted:
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / seen:.4f}", acc=f"{correct / counted:.3f}", refresh=False)


def batches_per_epoch(n: int, config: Any) -> int:
    """Mini-batches of config.batch_size in an epoch of `n` samples (the last one may be short)."""
    return (n + config.batch_size - 1) // config.batch_size


@dataclass
class History:
    rows: list[dict[str, float]] = field(default_factory=list)


def to_batch(split: Any, idx: np.ndarray, dtype: torch.dtype, device: torch.device = torch.device("cpu")) -> Batch:
    """Samples `idx` of `split` as a Batch (only those samples are read: `split.inputs` may be a
    lazy view with a ``time_major(idx)`` method, such as
    training.tasks.event_cache.EventFrames): inputs (T, B, S) in `dtype` on `device`, targets (floating ones
    in `dtype`), the split's loss mask as bool."""
    if hasattr(split.inputs, "time_major"):  # a lazy view that reads only these samples, as (T, B, S)
        x = torch.as_tensor(split.inputs.time_major(idx), dtype=dtype, device=device)
    else:
        x = torch.as_tensor(np.asarray(split.inputs)[idx], dtype=dtype, device=device).transpose(0, 1).contiguous()
    y = torch.as_tensor(np.asarray(split.targets)[idx], device=device)
    if y.dtype.is_floating_point:
        y = y.to(dtype)
    return Batch(x, y, torch.as_tensor(np.asarray(split.loss_mask), dtype=torch.bool, device=device))


def resume_checkpoint(path: Path, config: TrainConfig, model: SNN,
            opt: torch.optim.Optimizer) -> tuple[list[dict[str, float]], int]:
    """Load the checkpoint at `path` into `model` and `opt`; (history, first epoch to run)."""
    state, epoch, history = read_checkpoint(path, config)
    if not isinstance(state.get("model"), dict):
        raise NeurosimError(f"{path}: model: expected a state dict")
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        raise NeurosimError(f"{path}: model: does not fit this run ({type(exc).__name__}: {first})") from None
    load_optimizer(path, opt, state.get("optimizer"))
    return history, epoch + 1


def write_checkpoint(run: Path, config: Any, epoch: int, history: list[dict[str, float]], *,
                     bar: Optional[float] = None, **state: Any) -> None:
    """The run's files after epoch `epoch`, each atomically: RUN/checkpoint.pt (version, config,
    epoch, history and the tensors in `state`; `read_checkpoint` reads it back), metrics.csv,
    config.json and curve.png (test accuracy against `bar` if given)."""
    buf = io.BytesIO()
    torch.save({"version": CHECKPOINT_VERSION, "config": asdict(config), "epoch": epoch, "history": history,
                **state}, buf)
    write_bytes(run / "checkpoint.pt", buf.getvalue())
    complete_run_files(run, config, history, bar)


def complete_run_files(run: Path, config: Any, history: list[dict[str, float]], bar: Optional[float] = None) -> None:
    """RUN/metrics.csv, config.json and curve.png of `history` (each atomically), and no temporary
    file of a killed writer left in RUN. Written after every checkpoint, and again when a run
    resumes: a kill between checkpoint.pt and these files leaves them an epoch short, and the
    resumed run (even one with no epoch left to train) completes them."""
    remove_stale(run)
    if history:
        write_metrics(run / "metrics.csv", history)
    write_bytes(run / "config.json", json.dumps(asdict(config), indent=1).encode())
    plot_curve(run / "curve.png", history, config, bar)


def read_checkpoint(path: Path, config: Any) -> tuple[dict[str, Any], int, list[dict[str, float]]]:
    """(state, epoch, history) of the checkpoint at `path` written for `config` (a dataclass).

    The file is data, never code: torch.load with weights_only (no unpickling of arbitrary
    objects), then version, config, epoch and history are type-checked; any defect is a
    NeurosimError naming the file and the field. The caller checks its own weights."""
    state = load_tensors(path)
    if not isinstance(state, dict):
        raise NeurosimError(f"{path}: not a neurosim checkpoint (expected a dict of tensors)")
    if state.get("version") != CHECKPOINT_VERSION:
        raise NeurosimError(f"{path}: version: expected checkpoint version {CHECKPOINT_VERSION}, got "
                            f"{str(state.get('version'))[:40]}; start a new run directory")
    saved, wanted = state.get("config"), asdict(config)
    if isinstance(saved, dict) and "dtype" not in saved and "dtype" in wanted:
        saved = dict(saved, dtype="float32")  # written before --dtype existed: always float32
    if isinstance(saved, dict) and "reset" not in saved and "readout" not in saved and "reset" in wanted:
        saved = dict(saved, reset="subtract", readout="li")  # written before --reset/--readout existed
    if isinstance(saved, dict) and "arch" not in saved and "arch" in wanted:
        saved = dict(saved, arch=None)  # written before --arch existed: the recurrent network
    if isinstance(saved, dict) and saved.get("schedule") == wanted.get("schedule") == "constant" and "epochs" in wanted:
        saved = dict(saved, epochs=wanted["epochs"])  # a constant rate's run may be extended (or end sooner)
    if saved != wanted:
        if not isinstance(saved, dict):
            raise NeurosimError(f"{path}: config: expected the run's options as a dict")
        diffs = [f"--{k.replace('_', '-')} {saved.get(k, '(absent)')!r} there, {v!r} here"
                 for k, v in wanted.items() if saved.get(k, "(absent)") != v]
        diffs += [f"{k} (unknown here)" for k in saved if k not in wanted]
        hint = (" (a cosine schedule sets every epoch's rate from --epochs; a constant one can be extended)"
                if saved.get("epochs") != wanted.get("epochs") and wanted.get("schedule") == "cosine" else "")
        raise NeurosimError(f"{path}: config: the checkpoint was written with other options ("
                            f"{'; '.join(diffs[:4])}{'; ...' if len(diffs) > 4 else ''}){hint}; resume with "
                            "the same options or use a new run directory"[:700])
    epoch, history = state.get("epoch"), state.get("history")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise NeurosimError(f"{path}: epoch: expected a whole number >= 0, got {epoch!r}"[:300])
    if epoch >= config.epochs:
        raise NeurosimError(f"{path}: epoch: the run has done {epoch + 1} epochs, more than --epochs "
                            f"{config.epochs}; resume with --epochs {epoch + 1} or more")
    if not (isinstance(history, list) and len(history) == epoch + 1 and all(
            isinstance(r, dict) and all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in r.items())
            for r in history)):
        raise NeurosimError(f"{path}: history: expected {epoch + 1} rows of named numbers")
    return state, epoch, [dict(r) for r in history]


def load_tensors(path: Path) -> Any:
    """torch.load(path) with weights_only (data, never code); a missing or unreadable file is a
    NeurosimError naming it."""
    if not path.exists():
        raise NeurosimError(f"{path}: no checkpoint to resume from")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        first = (str(exc).splitlines() or [""])[0][:200]
        raise NeurosimError(f"{path}: not a readable neurosim checkpoint ({type(exc).__name__}: {first})") from None


def shuffled(config: Any, epoch: int, n: int) -> np.ndarray:
    """The order of the n training samples in `epoch`: a generator seeded with (seed, epoch), so
    a run resumed at any epoch sees the same batches as an uninterrupted one."""
    return np.random.default_rng([config.seed, epoch]).permutation(n)


def load_optimizer(path: Path, opt: torch.optim.Optimizer, state: Any) -> None:
    """`opt.load_state_dict(state)` with errors naming `path`; every moment must have its
    parameter's shape (torch does not check)."""
    if not isinstance(state, dict):
        raise NeurosimError(f"{path}: optimizer: expected a state dict")
    try:
        opt.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        raise NeurosimError(f"{path}: optimizer: does not fit this run ({type(exc).__name__}: {first})") from None
    for param, slots in opt.state.items():  # Adam's moments must have their parameter's shape
        for name, value in slots.items():
            if isinstance(value, torch.Tensor) and value.ndim and value.shape != param.shape:
                raise NeurosimError(f"{path}: optimizer: state {name!r} of shape {tuple(value.shape)} does not fit "
                                    f"a parameter of shape {tuple(param.shape)}")


def write_metrics(path: Path, history: list[dict[str, float]]) -> None:
    """history (one dict of numbers per epoch) as CSV at `path`, atomically. Its 'epoch' column
    counts from 1, as the console and curve.png do (a history row's 'epoch' is the 0-based index
    the checkpoint stores)."""
    buf = io.StringIO()
    columns = list(dict.fromkeys(k for row in history for k in row))  # rows of an older run may lack some
    w = csv.DictWriter(buf, fieldnames=columns, restval="")
    w.writeheader()
    w.writerows([dict(r, epoch=int(r["epoch"]) + 1) if "epoch" in r else r for r in history])
    write_bytes(path, buf.getvalue().encode())


def plot_curve(path: Path, history: list[dict[str, float]], config: TrainConfig,
                bar: Optional[float] = None) -> None:
    """Loss and accuracy per epoch (train and test; rows need epoch, train_loss, test_loss,
    train_acc, test_acc) as a PNG at `path`, atomically; the task's bar as a dashed line."""
    if not history:
        return
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    ep = [r["epoch"] + 1 for r in history]  # numbered from 1, as in metrics.csv and on the console
    ax1.plot(ep, [r["train_loss"] for r in history], label="train")
    ax1.plot(ep, [r["test_loss"] for r in history], label="test")
    ax1.set(xlabel="epoch", ylabel="loss", title="loss")
    ax1.legend()
    ax2.plot(ep, [r["train_acc"] for r in history], label="train")
    ax2.plot(ep, [r["test_acc"] for r in history], label="test")
    if bar is not None:
        ax2.axhline(bar, color="grey", linestyle="--", linewidth=1, label=f"task bar {bar:g}")
    ax2.set(xlabel="epoch", ylabel="accuracy", title=f"{config.task}, rule {config.rule}", ylim=(0, 1.02))
    ax2.legend()
    fig.tight_layout()
    write_png(path, fig, dpi=110)

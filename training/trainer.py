"""Training loop behind `neurosim train`: task -> network -> rule -> checkpoints, metrics, model.

Everything random derives from `seed` and the epoch number (shuffles use a generator seeded
with (seed, epoch)), so resuming from the checkpoint of epoch e gives the same final weights
as an uninterrupted run. Files in RUN_DIR, each written atomically (temporary file + rename):
``checkpoint.pt`` (after every epoch), ``metrics.csv``, ``curve.png``, ``model.h5``, ``config.json``.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from neurosim.atomic import write_bytes
from neurosim.errors import NeurosimError
from neurosim.paths import output_directory

from . import distributed
from .layers import SNN, from_network
from .nets import recurrent_network
from .rules import Batch, Objective, make_rule
from .scoring import score

CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run; stored in config.json and in every checkpoint."""

    task: str = "evidence"
    rule: str = "bptt"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    hidden: int = 64
    model: str = "alif"
    surrogate: str = "fast_sigmoid"
    k: Optional[int] = None
    budget: Optional[str] = None
    policy: str = "hsm"
    block: Union[int, str] = "auto"
    n_train: Optional[int] = None
    n_test: Optional[int] = None
    tau_adapt: float = 0.2
    clip: Optional[float] = None
    update: str = "sequence"
    feedback: str = "symmetric"
    adapt: float = 1.8
    schedule: str = "cosine"
    task_options: dict[str, Any] = field(default_factory=dict)
    rule_options: dict[str, Any] = field(default_factory=dict)


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


def batches_per_epoch(n: int, config: Any) -> int:
    """Mini-batches of config.batch_size in an epoch of `n` samples (the last one may be short)."""
    return (n + config.batch_size - 1) // config.batch_size


@dataclass
class History:
    rows: list[dict[str, float]] = field(default_factory=list)


def _to_batch(split: Any, idx: np.ndarray, dtype: torch.dtype, device: torch.device = torch.device("cpu")) -> Batch:
    x = torch.as_tensor(np.asarray(split.inputs)[idx], dtype=dtype, device=device).transpose(0, 1).contiguous()
    y = torch.as_tensor(np.asarray(split.targets)[idx], device=device)
    if y.dtype.is_floating_point:
        y = y.to(dtype)
    return Batch(x, y, torch.as_tensor(np.asarray(split.loss_mask), dtype=torch.bool, device=device))


def evaluate(model: SNN, split: Any, task: Any, batch_size: int = 256) -> tuple[float, float]:
    """(mean loss, accuracy per training.scoring.score) of `model` on `split` of `task`, without
    gradients."""
    losses, correct, total = [], 0, 0
    with torch.no_grad():
        for lo in range(0, len(split.inputs), batch_size):
            idx = np.arange(lo, min(lo + batch_size, len(split.inputs)))
            b = _to_batch(split, idx, model.v0.dtype, model.v0.device)
            obj = Objective(model, b, skip_without_grad=False)
            state = model.initial_state(len(idx))
            loss = 0.0
            for t in range(b.steps):
                state = model.step(state, b.inputs[t])
                loss += float(obj(state, t))
            losses.append(loss * len(idx))
            ok, counted = score(task, obj.readouts, b.targets)
            correct, total = correct + ok, total + counted
    return float(np.sum(losses) / len(split.inputs)), correct / total


def pick_device(name: str = "auto") -> torch.device:
    """'auto': CUDA when torch sees a GPU, else CPU; 'cuda' without a GPU is an error."""
    if name not in ("auto", "cpu", "cuda"):
        raise NeurosimError(f"--device: expected auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise NeurosimError("--device cuda: torch sees no CUDA device here (this torch build: "
                            f"{torch.__version__}); use --device cpu")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def train(config: TrainConfig, run_dir: str | os.PathLike, *, resume: bool = False, progress: bool = True,
          device: str = "auto", on_epoch: Optional[Callable[[dict[str, float]], None]] = None,
          overwrite: bool = False) -> dict[str, Any]:
    """Train per `config` into `run_dir` on `device`; with `resume`, continue from run_dir/checkpoint.pt.

    A run_dir that holds a checkpoint is refused unless `resume` (continue it) or `overwrite`
    (start afresh). What this call creates in run_dir (and run_dir itself, if it made it) is
    removed again if it fails before its first checkpoint (neurosim.paths.output_directory), so
    a refused option or an early interrupt leaves nothing behind.

    Started by torchrun (or ``neurosim train --nproc N``), each rank trains on its shard of every
    batch with gradients averaged to the global batch's (training.distributed); rank 0 writes the
    files. A checkpoint resumes with any number of ranks."""
    run = Path(run_dir)
    ckpt = run / "checkpoint.pt"
    if resume and not ckpt.is_file():
        raise NeurosimError(f"{ckpt}: no checkpoint to resume from (train without --resume to start the run)")
    if not resume and not overwrite and ckpt.exists():
        raise NeurosimError(f"{run}: holds a run already ({ckpt.name}); continue it with --resume, start afresh "
                            "with --overwrite, or use a new --out directory")
    if os.environ.get("RANK", "0") != "0":  # rank 0 owns the directory
        return _dispatch(config, run, resume, progress, device, on_epoch)
    with output_directory(str(run), "--out", keep=(ckpt.name,)):  # removes what a failed start made
        return _dispatch(config, run, resume, progress, device, on_epoch)


def _dispatch(config: TrainConfig, run: Path, resume: bool, progress: bool, device: str,
              on_epoch: Optional[Callable[[dict[str, float]], None]]) -> dict[str, Any]:
    from .methods import METHODS, run_method

    if config.rule in METHODS:  # a method with its own model and loop (SAB, EP, MSG)
        return run_method(config, run, resume=resume, progress=progress, device=pick_device(device))
    from .tasks import TASKS

    owners = [name for name, m in METHODS.items() if config.task in m.tasks]
    if owners and config.task not in TASKS:  # a task only a method's own model trains on (sbm, ...)
        raise NeurosimError(f"--task {config.task}: trained by --rule {' or '.join(owners)}, not by {config.rule}")
    if config.rule_options:
        raise NeurosimError(f"--rule-option {', '.join(sorted(config.rule_options))}: rule {config.rule!r} takes "
                            "no rule options (its options have their own flags)")
    world, dev = distributed.init(pick_device(device))
    try:
        result = _train(config, run, resume, progress and world.main, dev, world, on_epoch)
        world.barrier()  # no rank tears its connections down while another still uses them
        return result
    finally:
        world.close()


def _train(config: TrainConfig, run: Path, resume: bool, progress: bool, dev: torch.device,
           world: distributed.World, on_epoch: Optional[Callable[[dict[str, float]], None]]) -> dict[str, Any]:
    from neurosim.storage import save

    from .tasks import make_task

    task = make_task(config.task, seed=config.seed, n_train=config.n_train, n_test=config.n_test,
                     **config.task_options)
    run.mkdir(parents=True, exist_ok=True)
    ckpt_path = run / "checkpoint.pt"
    torch.manual_seed(config.seed)
    net = recurrent_network(task.n_in, config.hidden, task.n_out, model=config.model, dt=task.dt,
                            tau_adapt=config.tau_adapt, adapt=config.adapt, seed=config.seed)
    model = from_network(net, surrogate=config.surrogate).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    stepper = distributed.Stepper(opt, world, config.clip)  # (all-reduce,) clip, step
    rule = make_rule(config.rule, k=config.k, budget=_budget(config.budget), policy=config.policy,
                     update=config.update, feedback=config.feedback, seed=config.seed, block=config.block)
    online = bool(getattr(rule, "updates_online", False))  # the rule steps the optimizer itself
    if online:
        rule.bind(stepper)  # type: ignore[attr-defined]
    history: list[dict[str, float]] = []
    start = 0
    if resume:
        history, start = _resume(ckpt_path, config, model, opt)
    world.broadcast(model)

    n = len(task.train.inputs)
    bar = epoch_bar(config, start, batches_per_epoch(n, config), f"train {config.task} ({config.rule})", progress)
    out_of_memory = False
    try:
        for epoch in range(start, config.epochs):
            t0 = time.perf_counter()
            order = shuffled(config, epoch, n)
            set_epoch_lr(opt, config, epoch)
            loss_sum, correct, counted = 0.0, 0, 0
            for lo in range(0, n, config.batch_size):
                idx, stepper.weight = world.shard(order[lo:lo + config.batch_size])
                count = len(idx) if stepper.weight else 0  # 0: a weight-0 stand-in for an empty shard
                b = _to_batch(task.train, idx, model.v0.dtype, model.v0.device)
                opt.zero_grad(set_to_none=True)
                out = rule.backward(model, b)
                if not online:
                    stepper.step()
                loss_sum += out.loss * count
                if count:
                    ok, cnt = score(task, out.readouts, b.targets)
                    correct, counted = correct + ok, counted + cnt
                bar.update(1)
            test_loss, test_acc = evaluate(model, task.test, task) if world.main else (0.0, 0.0)
            loss_sum, correct, counted, test_loss, test_acc = world.sum(
                [loss_sum, correct, counted, test_loss, test_acc], dev)
            row = dict(epoch=epoch, train_loss=loss_sum / n, train_acc=correct / counted,
                       test_loss=test_loss, test_acc=test_acc, seconds=time.perf_counter() - t0)
            history.append(row)
            if world.main:
                write_checkpoint(run, config, epoch, history, bar=getattr(task, "bar", None), model=model.state_dict(),
                                 optimizer=opt.state_dict())
            if on_epoch:
                on_epoch(row)
    except torch.cuda.OutOfMemoryError:
        out_of_memory = True  # advice below, once this frame no longer holds the failed graph
    finally:
        bar.close()
    if out_of_memory:
        from .oom import out_of_memory_message

        opt.zero_grad(set_to_none=True)
        idx, _ = world.shard(np.arange(min(n, config.batch_size)))
        batch = _to_batch(task.train, idx, model.v0.dtype, model.v0.device)
        raise NeurosimError(out_of_memory_message(model, batch, config.rule, dev))
    if world.main:
        save(model.to_network(), run / "model.h5")
    return {"history": history, "model": model, "task": task, "bar": getattr(task, "bar", None)}


def _resume(path: Path, config: TrainConfig, model: SNN,
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


def _budget(text: Optional[str]) -> Any:
    if text is None:
        return None
    return int(text) if str(text).isdigit() else str(text)


def write_metrics(path: Path, history: list[dict[str, float]]) -> None:
    """history (one dict of numbers per epoch) as CSV at `path`, atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(history[0]))
    w.writeheader()
    w.writerows(history)
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
    ep = [r["epoch"] + 1 for r in history]
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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    write_bytes(path, buf.getvalue())

"""Training loop behind `neurosim train`: task -> network -> rule -> checkpoints, metrics, model.

Everything random derives from `seed` and the epoch number (shuffles use a generator seeded
with (seed, epoch)), so resuming from the checkpoint of epoch e gives the same final weights
as an uninterrupted run (training.runfiles). Files in RUN_DIR, each written atomically (temporary file + rename):
``checkpoint.pt`` (after every epoch), ``metrics.csv``, ``curve.png``, ``model.h5``, ``config.json``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from neurosim.errors import NetworkError, NeurosimError
from neurosim.paths import output_directory

from . import distributed
from .config import TrainConfig
from .layers import SNN, from_network
from .nets import recurrent_network
from .rules import Objective, make_rule
from .runfiles import (batches_per_epoch, complete_run_files, epoch_bar, resume_checkpoint, set_epoch_lr, show_running,
                       shuffled, to_batch, write_checkpoint)
from .scoring import score
from .split_metrics import split_metrics


def evaluate(model: SNN, split: Any, task: Any, batch_size: int = 256) -> tuple[float, float]:
    """(mean loss, accuracy per training.scoring.score) of `model` on `split` of `task`, without
    gradients."""
    losses, correct, total = [], 0, 0
    with torch.no_grad():
        for lo in range(0, len(split.inputs), batch_size):
            idx = np.arange(lo, min(lo + batch_size, len(split.inputs)))
            b = to_batch(split, idx, model.v0.dtype, model.v0.device)
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
    """'auto': CUDA when torch sees a GPU, else CPU; 'cuda' without a GPU is an error.

    On CUDA, TF32 is switched off for matrix products and cuDNN convolutions: float32 training
    then rounds as on the CPU (a 24-bit significand, not TF32's 11), which the exported network's
    spikes and the float64 cross-check assume."""
    if name not in ("auto", "cpu", "cuda"):
        raise NeurosimError(f"--device: expected auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise NeurosimError("--device cuda: torch sees no CUDA device here (this torch build: "
                            f"{torch.__version__}); use --device cpu")
    device = torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return device


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
    model = build_model(config, task).to(dev)
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
        history, start = resume_checkpoint(ckpt_path, config, model, opt)
        complete_run_files(run, config, history, getattr(task, "bar", None))  # what a kill left undone
    world.broadcast(model)

    n = len(task.train.inputs)
    bar = epoch_bar(config, start, batches_per_epoch(n, config), f"train {config.task} ({config.rule})", progress)
    out_of_memory = False
    try:
        for epoch in range(start, config.epochs):
            t0 = time.perf_counter()
            order = shuffled(config, epoch, n)
            set_epoch_lr(opt, config, epoch)
            loss_sum, correct, counted, seen = 0.0, 0, 0, 0
            for lo in range(0, n, config.batch_size):
                idx, stepper.weight = world.shard(order[lo:lo + config.batch_size])
                count = len(idx) if stepper.weight else 0  # 0: a weight-0 stand-in for an empty shard
                b = to_batch(task.train, idx, model.v0.dtype, model.v0.device)
                opt.zero_grad(set_to_none=True)
                out = rule.backward(model, b)
                if not online:
                    stepper.step()
                loss_sum, seen = loss_sum + out.loss * count, seen + count
                if count:
                    ok, cnt = score(task, out.readouts, b.targets)
                    correct, counted = correct + ok, counted + cnt
                bar.update(1)
                show_running(bar, epoch, loss_sum, seen, correct, counted)  # this process's shard
            # evaluation in batches of the training size: a streamed split is read as such
            test_loss, test_acc = (evaluate(model, task.test, task, config.batch_size) if world.main else (0.0, 0.0))
            val = getattr(task, "val", None)
            val_loss, val_acc = (evaluate(model, val, task, config.batch_size) if world.main and val is not None
                                 else (0.0, 0.0))
            loss_sum, correct, counted, test_loss, test_acc, val_loss, val_acc = world.sum(
                [loss_sum, correct, counted, test_loss, test_acc, val_loss, val_acc], dev)
            row = dict(epoch=epoch, train_loss=loss_sum / n, train_acc=correct / counted,
                       test_loss=test_loss, test_acc=test_acc, seconds=time.perf_counter() - t0)
            if val is not None:  # model selection on the validation split (the CLI reports its best epoch)
                row.update(val_loss=val_loss, val_acc=val_acc)
            if world.main:  # NeuroBench's metrics of the network as it stands, run in neurosim on the test split
                row.update({f"test_{k}": v for k, v in split_metrics(
                    network_of(model, config, task), task.test, max(1, config.batch_size // 4),  # a quarter batch: the
                    config.dtype).as_dict().items()})  # peak of a streamed epoch stays training's
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
        from .rules.budgeted import out_of_memory_message

        opt.zero_grad(set_to_none=True)
        idx, _ = world.shard(np.arange(min(n, config.batch_size)))
        batch = to_batch(task.train, idx, model.v0.dtype, model.v0.device)
        raise NeurosimError(out_of_memory_message(model, batch, config.rule, dev))
    files = ["model.h5", "metrics.csv", "curve.png", "checkpoint.pt"]
    if world.main:
        save(network_of(model, config, task), run / "model.h5")  # the exact Network of the model
        if config.arch is not None:  # and the layered model's spec to rebuild the torch module
            from neurosim.atomic import write_bytes

            from .layered import arch_json

            write_bytes(run / "arch.json", arch_json(model.specs).encode())
            files.insert(1, "arch.json")
    return {"history": history, "model": model, "task": task, "bar": getattr(task, "bar", None), "files": files}


def network_of(model: Any, config: TrainConfig, task: Any) -> Any:
    """The neurosim Network of the torch `model` (layered models through training.layered)."""
    if config.arch is None:
        return model.to_network()
    from .layered import to_network

    return to_network(model, task.dt, name=f"{config.task}_{config.rule}")


def build_model(config: TrainConfig, task: Any) -> Any:
    """The model `config` trains on `task`: the layered model of ``config.arch`` on the task's
    input shape (``task.params['shape']``, else (n_in,)), or input -> recurrent LIF/ALIF -> LI."""
    dtype = getattr(torch, config.dtype)
    if config.arch is None:
        net = recurrent_network(task.n_in, config.hidden, task.n_out, model=config.model, dt=task.dt,
                                tau_adapt=config.tau_adapt, adapt=config.adapt, seed=config.seed,
                                reset=config.reset, readout=config.readout)  # type: ignore[arg-type]
        if config.quantize is not None:  # quantisation-aware: the forward pass is the fixed-point run
            from .quantized import quantized_model

            try:
                return quantized_model(net, config.quantize, surrogate=config.surrogate, dtype=dtype)
            except NeurosimError as e:
                raise NeurosimError(f"--quantize {config.quantize}: {e}") from None
        return from_network(net, surrogate=config.surrogate, dtype=dtype)
    if (config.reset, config.readout) != ("subtract", "li"):
        raise NeurosimError("--reset/--readout: a layered model (--arch) names each layer's reset and neuron "
                            "in its spec (e.g. 'dense(10,neuron=lif,reset=zero)'); drop --reset/--readout")
    from .layered import LayeredSNN, parse_arch

    try:
        layers = parse_arch(config.arch)
    except NetworkError as e:
        raise NeurosimError(f"--arch: {e}") from None
    if config.rule == "eprop" and not any(s.kind == "rdense" for s in layers):
        raise NeurosimError("--arch: rule eprop needs a recurrent layer (rdense): e-prop's eligibility traces "
                            "are for recurrent LIF/ALIF layers; train a feed-forward or conv model with "
                            "bptt, tbptt, budgeted, ottt or ratebp")
    if layers[-1].size != task.n_out:
        raise NeurosimError(f"--arch: the last layer has {layers[-1].size} neurons, task {config.task} has "
                            f"{task.n_out} classes")
    shape = tuple(task.params.get("shape", (task.n_in,)))
    if config.quantize is not None:  # quantisation-aware: the forward pass is the fixed-point run
        from .quantized import QuantizedLayeredSNN

        try:
            return QuantizedLayeredSNN(layers, shape, dt=task.dt, surrogate=config.surrogate, dtype=dtype,
                                       seed=config.seed)
        except NeurosimError as e:
            raise NeurosimError(f"--quantize {config.quantize} --arch: {e}") from None
    try:
        return LayeredSNN(layers, shape, surrogate=config.surrogate, dtype=dtype, seed=config.seed)
    except NetworkError as e:
        raise NeurosimError(f"--arch: {e}") from None


def _budget(text: Optional[str]) -> Any:
    if text is None:
        return None
    return int(text) if str(text).isdigit() else str(text)

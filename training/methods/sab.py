"""Sparse Attentive Backtracking (Ke et al., NeurIPS 2018) and its baselines, behind
``neurosim train --rule sab`` (tasks copy, adding, digits). The model is :mod:`training.methods.sab_models`.

Gradients (:func:`gradients`), all of the loss ``L = sum over masked t of l(y_t) / n_masked``:

- ``bptt``: full backpropagation through time, one graph of the whole sequence.
- ``tbptt``: the recurrent state (and, with attention, each microstate) detached every ``k_trunc``
  steps (at t = 0, k, 2k, ...); one graph per window, freed after its backward.
- ``sab``: the recurrent state detached every ``k_trunc`` steps, the microstates never: gradients
  reach the past only through the selected skip connections (at most k_top microstates a step),
  then run locally back to the start of the microstate's window, and on through the skip
  connections of that window. The reference code gets this by keeping the whole sequence's graph
  alive (``memory=graph`` here). Default ``memory=recompute``: a forward pass without graph keeps
  the cell state at each window start and the microstates' values only; then the windows are
  processed last to first, each recomputed with graph from its stored start, with the earlier
  microstates as leaf tensors, and backpropagated from its own losses plus the gradients its
  microstates received from later windows (``sum_j <dL/dm^j, m^j>``). Exact (the same gradient,
  tests/test_sab.py) with one window's graph (k_trunc steps) instead of T steps, for one extra
  forward pass.

Rule options (``--rule-option KEY=VALUE``):

| key | values | default |
|---|---|---|
| method | sab, bptt, tbptt | sab |
| cell | lstm, lif, alif | lstm |
| k_trunc | steps >= 1 (tbptt, sab) | 10 |
| k_att | microstate every k_att steps, >= 1 | 10 |
| k_top | microstates attended per step, >= 1 | 5 |
| attention | 0 or 1: attention model (sab needs 1) | 1 for sab, 0 for bptt and tbptt (plain cell as in the paper) |
| sparsifier | topk, shift, none (see training.methods.sab_models.sparsify) | topk |
| memory | recompute, graph (sab) | recompute |
| att_dim | attention width >= 1 | --hidden |
| forget_bias | LSTM forget gate bias at start | 1.0 |

``--hidden``, ``--lr``, ``--batch-size``, ``--epochs``, ``--clip``, ``--schedule``, ``--seed`` and,
for lif/alif, ``--surrogate``, ``--tau-adapt``, ``--adapt`` have their usual meaning. Accuracy is
training.scoring.score's: per recalled character (copy), per sequence within the task's tolerance
(adding), or of the mean readout over the masked steps (digits).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from neurosim.errors import NeurosimError

from ..rules.base import Batch
from ..scoring import score
from .sab_models import SPARSIFIERS, Attention, LSTMCell, SABNet, SpikingCell, detach_tree

METHODS = ("sab", "bptt", "tbptt")
CELLS = ("lstm", "lif", "alif")
DEFAULTS: dict[str, Any] = dict(method="sab", cell="lstm", k_trunc=10, k_att=10, k_top=5, attention=None,
                                sparsifier="topk", memory="recompute", att_dim=None, forget_bias=1.0)


def parse_options(options: dict[str, Any], hidden: int) -> dict[str, Any]:
    """The resolved rule options; errors name the option and the expected form."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise NeurosimError(f"--rule-option {unknown[0]}: not an option of rule sab; expected one of "
                            f"{', '.join(DEFAULTS)}")
    o = {**DEFAULTS, **options}

    def choice(key: str, allowed: tuple[str, ...]) -> None:
        if o[key] not in allowed:
            raise NeurosimError(f"--rule-option {key}={o[key]!r}: expected one of {', '.join(allowed)}")

    def whole(key: str, lo: int = 1) -> None:
        v = o[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise NeurosimError(f"--rule-option {key}={v!r}: expected a whole number >= {lo}")

    choice("method", METHODS)
    choice("cell", CELLS)
    choice("sparsifier", SPARSIFIERS)
    choice("memory", ("recompute", "graph"))
    for key in ("k_trunc", "k_att", "k_top"):
        whole(key)
    if o["att_dim"] is None:
        o["att_dim"] = hidden
    whole("att_dim")
    if o["attention"] is None:
        o["attention"] = 1 if o["method"] == "sab" else 0
    if o["attention"] not in (0, 1) or isinstance(o["attention"], float):
        raise NeurosimError(f"--rule-option attention={o['attention']!r}: expected 0 or 1")
    if o["method"] == "sab" and not o["attention"]:
        raise NeurosimError("--rule-option attention=0: method sab backtracks through the attention; "
                            "use attention=1 (or method bptt/tbptt for the plain cell)")
    fb = o["forget_bias"]
    if isinstance(fb, bool) or not isinstance(fb, (int, float)) or not np.isfinite(fb):
        raise NeurosimError(f"--rule-option forget_bias={fb!r}: expected a finite number")
    return o


def build_model(opts: dict[str, Any], n_in: int, n_out: int, hidden: int, *, seed: int = 0, dt: float = 1e-3,
                tau_adapt: float = 0.2, adapt: float = 1.8, surrogate: str = "fast_sigmoid") -> SABNet:
    """The SAB network for resolved options `opts` (weights from torch's generator seeded with `seed`)."""
    torch.manual_seed(seed)
    if opts["cell"] == "lstm":
        cell: torch.nn.Module = LSTMCell(n_in, hidden, float(opts["forget_bias"]))
    else:
        cell = SpikingCell(n_in, hidden, opts["cell"], dt=dt, tau_adapt=tau_adapt, adapt=adapt,
                           surrogate=surrogate, seed=seed)
    att = Attention(hidden, opts["att_dim"], opts["k_top"], opts["sparsifier"]) if opts["attention"] else None
    return SABNet(cell, n_out, att, opts["k_att"])


# ------------------------------------------------------------------------------------------------
# losses and gradients


def _masked(batch: Batch) -> list[int]:
    return [int(t) for t in torch.nonzero(batch.loss_mask).flatten()]


def step_loss(y: torch.Tensor, batch: Batch, t: int, n_masked: int) -> torch.Tensor:
    """l(y_t) / n_masked: cross-entropy with the step's one-hot target or the sequence's label
    (classification), squared error (regression, per-step float targets of width n_out)."""
    tgt = batch.targets
    if tgt.ndim == 1:
        return F.cross_entropy(y, tgt) / n_masked
    if tgt.shape[2] == y.shape[1] and tgt.shape[2] > 1:
        return F.cross_entropy(y, tgt[:, t].argmax(1)) / n_masked
    return F.mse_loss(y, tgt[:, t]) / n_masked


def forward_graph(model: SABNet, batch: Batch, k_trunc: Optional[int] = None,
                  detach_mem: bool = False) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """(loss, {masked t: y_t}) as one autograd graph: the cell state detached at t = k, 2k, ... for
    k = k_trunc (None: never), microstates too with `detach_mem`. Backward of this loss is full BPTT
    (k_trunc None), the reference code's SAB (k_trunc, microstates attached) or TBPTT."""
    steps, masked = batch.steps, set(_masked(batch))
    c = model.carry(batch.inputs.shape[1])
    loss = batch.inputs.new_zeros(())
    outs = {}
    for t in range(steps):
        if k_trunc is not None and t > 0 and t % k_trunc == 0:
            c.state = detach_tree(c.state)
        y = model.step(t, batch.inputs[t], c, detach_mem=detach_mem)
        if t in masked:
            loss = loss + step_loss(y, batch, t, len(masked))
            outs[t] = y
    return loss, outs


def trainable_params(model: SABNet) -> list[torch.nn.Parameter]:
    """The parameters of `model` that gradients are taken for (requires_grad), in model order."""
    return [p for p in model.parameters() if p.requires_grad]


def _accumulate(params: list[torch.nn.Parameter], grads: tuple[Optional[torch.Tensor], ...]) -> None:
    for p, g in zip(params, grads):
        if g is not None:
            p.grad = g.clone() if p.grad is None else p.grad + g


def tbptt_backward(model: SABNet, batch: Batch, k_trunc: int) -> tuple[float, dict[int, torch.Tensor]]:
    """Truncated BPTT: one graph per window of k_trunc steps, backpropagated and freed at its end;
    microstates stored without graph. Adds into .grad; returns (loss, {masked t: y_t detached})."""
    steps, masked = batch.steps, set(_masked(batch))
    params = trainable_params(model)
    c = model.carry(batch.inputs.shape[1])
    total, outs = 0.0, {}
    for t0 in range(0, steps, k_trunc):
        c = model.carry(batch.inputs.shape[1], c.mems, detach_tree(c.state))
        loss = None  # (the keys are recomputed from the stored values: the last window's graph is gone)
        for t in range(t0, min(steps, t0 + k_trunc)):
            y = model.step(t, batch.inputs[t], c, detach_mem=True)
            if t in masked:
                term = step_loss(y, batch, t, len(masked))
                loss = term if loss is None else loss + term
                outs[t] = y.detach()
        if loss is not None:
            _accumulate(params, torch.autograd.grad(loss, params, allow_unused=True))
            total += float(loss.detach())
    return total, outs


def sab_backward(model: SABNet, batch: Batch, k_trunc: int) -> tuple[float, dict[int, torch.Tensor]]:
    """SAB's gradient with one window's graph at a time (see the module docstring: forward without
    graph, then windows last to first, recomputed, with earlier microstates as leaves). Equals the
    gradient of ``forward_graph(model, batch, k_trunc)``. Adds into .grad; returns (loss, outputs)."""
    steps, masked = batch.steps, set(_masked(batch))
    params = trainable_params(model)
    starts = list(range(0, steps, k_trunc))
    bsz = batch.inputs.shape[1]
    saved, outs, total = [], {}, 0.0
    with torch.no_grad():  # 1. the values: the state at each window start, the microstates
        c = model.carry(bsz)
        for t in range(steps):
            if t % k_trunc == 0:
                saved.append((c.state, len(c.mems)))
            y = model.step(t, batch.inputs[t], c)
            if t in masked:
                total += float(step_loss(y, batch, t, len(masked)))
                outs[t] = y
    mems = c.mems
    mem_grad: list[Optional[torch.Tensor]] = [None] * len(mems)
    for w in reversed(range(len(starts))):  # 2. windows last to first, recomputed with graph
        t0, t1 = starts[w], min(steps, starts[w] + k_trunc)
        state, n0 = saved[w]
        leaves = [m.detach().requires_grad_() for m in mems[:n0]]
        c = model.carry(bsz, leaves, state)
        objective = None
        for t in range(t0, t1):
            y = model.step(t, batch.inputs[t], c)
            if t in masked:
                term = step_loss(y, batch, t, len(masked))
                objective = term if objective is None else objective + term
        for j in range(n0, len(c.mems)):  # what later windows sent back into this window's microstates
            g = mem_grad[j]
            if g is not None:
                term = (g * c.mems[j]).sum()
                objective = term if objective is None else objective + term
        if objective is None or not objective.requires_grad:
            continue
        grads = torch.autograd.grad(objective, params + leaves, allow_unused=True)
        _accumulate(params, grads[:len(params)])
        for j, g in enumerate(grads[len(params):]):
            if g is not None:
                mem_grad[j] = g if mem_grad[j] is None else mem_grad[j] + g
    return total, outs


def gradients(model: SABNet, batch: Batch, opts: dict[str, Any]) -> tuple[float, dict[int, torch.Tensor]]:
    """Add the gradient of `opts['method']` to the parameters' .grad; (loss, {masked t: y_t})."""
    method, k = opts["method"], opts["k_trunc"]
    if method == "tbptt":
        return tbptt_backward(model, batch, k)
    if method == "sab" and opts["memory"] == "recompute":
        return sab_backward(model, batch, k)
    loss, outs = forward_graph(model, batch, k if method == "sab" else None)
    loss.backward()
    return float(loss.detach()), {t: y.detach() for t, y in outs.items()}


# ------------------------------------------------------------------------------------------------
# evaluation


def evaluate(model: SABNet, split: Any, task: Any, batch_size: int = 256) -> tuple[float, float]:
    """(mean loss, accuracy) on a split, without gradients."""
    from ..runfiles import to_batch

    loss, correct, total, n = 0.0, 0, 0, len(split.inputs)
    dtype, dev = model.readout.weight.dtype, model.readout.weight.device
    with torch.no_grad():
        for lo in range(0, n, batch_size):
            b = to_batch(split, np.arange(lo, min(lo + batch_size, n)), dtype, dev)
            value, outs = forward_graph(model, b)
            loss += float(value) * b.inputs.shape[1]
            ok, cnt = score(task, outs, b.targets)
            correct, total = correct + ok, total + cnt
    return loss / n, correct / total


# ------------------------------------------------------------------------------------------------
# the run


def train_run(config: Any, run_dir: Path, *, resume: bool, progress: bool, device: torch.device) -> dict[str, Any]:
    """Train per `config` (rule sab, options in config.rule_options) into `run_dir`; see
    training.methods for the contract (config.json, checkpoint.pt after every epoch, metrics.csv,
    curve.png, all atomically; `resume` continues from the checkpoint to the same final weights)."""
    from ..runfiles import (batches_per_epoch, complete_run_files, epoch_bar, resume_checkpoint, set_epoch_lr,
                            show_running, shuffled, to_batch, write_checkpoint)
    from ..tasks import make_task
    from . import METHODS, refuse_unused

    opts = parse_options(dict(config.rule_options), config.hidden)
    if opts["cell"] == "lstm":  # the spiking cells' settings mean nothing to an LSTM
        refuse_unused(config, METHODS["sab"], ("surrogate", "tau_adapt", "adapt"))
    task = make_task(config.task, seed=config.seed, n_train=config.n_train, n_test=config.n_test,
                     **config.task_options)
    model = build_model(opts, task.n_in, task.n_out, config.hidden, seed=config.seed, dt=task.dt,
                        tau_adapt=config.tau_adapt, adapt=config.adapt, surrogate=config.surrogate).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "checkpoint.pt"
    history: list[dict[str, float]] = []
    start = 0
    if resume:
        history, start = resume_checkpoint(ckpt, config, model, opt)  # type: ignore[arg-type]
        complete_run_files(run_dir, config, history, task.bar)  # what a kill left undone
    n = len(task.train.inputs)
    bar = epoch_bar(config, start, batches_per_epoch(n, config), f"train {config.task} (sab: {opts['method']})",
                    progress)
    dtype = model.readout.weight.dtype
    try:
        for epoch in range(start, config.epochs):
            t0 = time.perf_counter()
            order = shuffled(config, epoch, n)
            set_epoch_lr(opt, config, epoch)
            loss_sum, correct, counted = 0.0, 0, 0
            for lo in range(0, n, config.batch_size):
                b = to_batch(task.train, order[lo:lo + config.batch_size], dtype, device)
                opt.zero_grad(set_to_none=True)
                loss, outs = gradients(model, b, opts)
                if config.clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
                opt.step()
                ok, cnt = score(task, outs, b.targets)
                loss_sum, correct, counted = loss_sum + loss * b.inputs.shape[1], correct + ok, counted + cnt
                bar.update(1)
                show_running(bar, epoch, loss_sum, min(lo + config.batch_size, n), correct, counted)
            seconds = time.perf_counter() - t0
            test_loss, test_acc = evaluate(model, task.test, task)
            history.append(dict(epoch=epoch, train_loss=loss_sum / n, train_acc=correct / counted,
                                test_loss=test_loss, test_acc=test_acc, seconds=seconds))
            write_checkpoint(run_dir, config, epoch, history, bar=task.bar, model=model.state_dict(),
                             optimizer=opt.state_dict())
    finally:
        bar.close()
    return {"history": history, "model": model, "task": task, "bar": task.bar, "options": opts,
            "files": ("checkpoint.pt", "metrics.csv", "curve.png", "config.json")}

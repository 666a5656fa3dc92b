"""`neurosim train --rule ep`: Equilibrium Propagation in discrete time (Ernoult et al. 2019) on
static 8x8 digits, or BPTT on the same network for comparison. Model: training.methods.ep_net.

Task ``digits_static``: sklearn's bundled 8x8 digits (``load_digits``, 1797 images) as a static
64-dimensional input ``x = intensity / 16`` in [0, 1], one-hot target y (10 outputs), split
``train_test_split(stratify=label, random_state=seed)``, 1437 / 360 by default.

Rule options (``--rule-option KEY=VALUE``):

| key | default | meaning |
|---|---|---|
| layers | 1 | hidden layers, 1 or 2, each of ``--hidden`` units |
| T | 500 per hidden layer | cap on the free-phase steps from s = 0 (it stops at the first step whose residual is <= tol) |
| K | 10 | nudged-phase steps (EP) / steps backpropagated from s_* (BPTT) |
| beta | 0.5 | nudging strength, > 0 |
| nudge | symmetric | ``one_sided`` (+beta, the paper) or ``symmetric`` (+-beta) |
| baseline | ep | ``ep``, or ``bptt``: the same network, loss l(s_K) after K steps from s_*, autograd |
| tol | 1e-3 | free-phase convergence tolerance on ||s_t - s_(t-1)||_inf (checked every step and batch) |
| activation | sigmoid | ``sigmoid``: 1/(1+exp(-4(u-1/2))), the authors' default for fully connected nets; ``hard``: clamp(u, 0, 1) (an exact primitive function in its linear range: the GDU check's setting; BPTT stalls on outputs pushed below 0, see bench/EP.md) |
| optimizer | adam | ``adam``, or ``sgd``: plain SGD (the authors') |
| lr_layers | --lr for every layer | per-layer learning rates, output layer first (the authors' lr_tab), e.g. ``lr_layers=(0.04,0.08)``; scaled by ``--schedule`` |

EP's update of theta after one batch: ``(dPhi/dtheta(s^beta_K) - dPhi/dtheta(s_*)) / beta``
(symmetric: ``(dPhi/dtheta(s^+beta_K) - dPhi/dtheta(s^-beta_K)) / (2 beta)``), the sum over t
of dEP_theta(beta, t), used as the negative gradient of the optimizer (``--lr`` or ``lr_layers``,
``--schedule``). The authors' recipe for 64-256-10: ``--batch-size 20 --schedule constant
--rule-option optimizer=sgd --rule-option "lr_layers=(0.04,0.08)" --rule-option K=15
--rule-option beta=0.1 --rule-option nudge=one_sided --rule-option activation=sigmoid``.
Free phases that miss ``tol`` within T steps are counted per epoch (metrics.csv ``unconverged``,
a warning); ``free_steps`` is the mean number of free steps used per batch, ``dead_target`` the
fraction of training samples whose target output has input <= 0 at s_* (for the hard sigmoid its
derivative is 0 there: BPTT gets no signal to raise that output).
Prediction: argmax of s^0 at the end of the free phase. Files in RUN_DIR: config.json,
checkpoint.pt (every epoch), metrics.csv, curve.png, weights.pt (``load_weights``); train_run
returns their names under "files".
"""
from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurosim.atomic import write_bytes
from neurosim.errors import NeurosimError

from . import ep_net as E
from ..runfiles import CHECKPOINT_VERSION  # checkpoint.pt and weights.pt: the trainer's version

N_DIGITS = 1797
BAR = 0.90  # the static digits criterion of training.tasks.digits


@dataclass(frozen=True)
class EPOptions:
    layers: int = 1
    T: int = 50
    K: int = 10
    beta: float = 0.5
    nudge: str = "symmetric"
    baseline: str = "ep"
    tol: float = 1e-3
    activation: str = "sigmoid"
    optimizer: str = "adam"
    lr_layers: tuple[float, ...] | None = None


def parse_options(options: dict[str, Any]) -> EPOptions:
    """EPOptions from --rule-option pairs; a NeurosimError names the bad option and its form."""
    known = {"layers", "T", "K", "beta", "nudge", "baseline", "tol", "activation", "optimizer", "lr_layers"}
    for key in options:
        if key not in known:
            raise NeurosimError(f"--rule-option {key}: rule ep has no option {key!r}; expected one of "
                                f"{', '.join(sorted(known))}")

    def whole(key: str, default: int, lo: int, hi: int | None = None) -> int:
        v = options.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise NeurosimError(f"--rule-option {key}={v!r}: expected a whole number {rng}")
        return v

    def positive(key: str, default: float) -> float:
        v = options.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf"):
            raise NeurosimError(f"--rule-option {key}={v!r}: expected a finite number > 0")
        return float(v)

    def choice(key: str, default: str, allowed: tuple[str, ...]) -> str:
        v = options.get(key, default)
        if v not in allowed:
            raise NeurosimError(f"--rule-option {key}={v!r}: expected one of {', '.join(allowed)}")
        return v

    layers = whole("layers", 1, 1, 2)
    lr_layers = options.get("lr_layers")
    if lr_layers is not None:
        if isinstance(lr_layers, (int, float)) and not isinstance(lr_layers, bool):
            lr_layers = (lr_layers,)
        if not (isinstance(lr_layers, (tuple, list)) and len(lr_layers) == layers + 1 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < float("inf") for v in lr_layers)):
            raise NeurosimError(f"--rule-option lr_layers={lr_layers!r}: expected {layers + 1} learning rates > 0, "
                                "output layer first, e.g. lr_layers=(0.04,0.08)")
        lr_layers = tuple(float(v) for v in lr_layers)
    return EPOptions(layers=layers, T=whole("T", 500 * layers, 1), K=whole("K", 10, 1),
                     beta=positive("beta", 0.5), nudge=choice("nudge", "symmetric", ("one_sided", "symmetric")),
                     baseline=choice("baseline", "ep", ("ep", "bptt")), tol=positive("tol", 1e-3),
                     activation=choice("activation", "sigmoid", tuple(E.ACTIVATIONS)),
                     optimizer=choice("optimizer", "adam", ("adam", "sgd")), lr_layers=lr_layers)


def digits_static(seed: int, n_train: int | None = None, n_test: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, label_train, x_test, label_test): x (n, 64) float32 in [0, 1], labels int64."""
    from ..tasks import digit_images

    n_tr = 1437 if n_train is None else n_train
    n_te = 360 if n_test is None else n_test
    if n_tr < 10 or n_te < 10 or n_tr + n_te > N_DIGITS:
        raise NeurosimError(f"--n-train/--n-test: expected each >= 10 and a sum <= {N_DIGITS}, got {n_tr} + {n_te}")
    images, labels, tr, te = digit_images(seed, n_tr, n_te)
    x = images.reshape(N_DIGITS, 64)
    return x[tr], labels[tr], x[te], labels[te]


def batch_gradient(x: torch.Tensor, y: torch.Tensor, p: E.Params, o: EPOptions
                   ) -> tuple[E.Params, E.State, float, int]:
    """(gradient estimate per parameter, free steady state s_*, free-phase residual, free steps used)
    for one batch. The free phase runs until its residual is <= tol, at most T steps."""
    with torch.no_grad():
        s_star, res, used = E.free_phase_until(x, p, o.T, o.tol, o.activation)
        if o.baseline == "bptt":
            grads = E.bptt_gradients(x, y, p, s_star, o.K, o.activation).synapses
            return {k: g.sum(0) for k, g in grads.items()}, s_star, res, used
        plus = E.nudged_state(x, y, p, s_star, o.beta, o.K, o.activation)
        if o.nudge == "symmetric":
            ref, scale = E.nudged_state(x, y, p, s_star, -o.beta, o.K, o.activation), 2 * o.beta
        else:
            ref, scale = s_star, o.beta
        a, b = E.dphi_dtheta(x, plus), E.dphi_dtheta(x, ref)
        return {k: -(a[k] - b[k]) / scale for k in a}, s_star, res, used


def evaluate(p: E.Params, x: torch.Tensor, labels: torch.Tensor, o: EPOptions, batch: int = 512
             ) -> tuple[float, float, float]:
    """(mean loss l(s_*), accuracy of argmax s^0_*, max free-phase residual) on a split."""
    loss, correct, res = 0.0, 0, 0.0
    with torch.no_grad():
        for lo in range(0, len(x), batch):
            xb, lb = x[lo:lo + batch], labels[lo:lo + batch]
            s, r, _ = E.free_phase_until(xb, p, o.T, o.tol, o.activation)
            loss += float(E.loss_fn(s[0], one_hot(lb, s[0].dtype)) * len(xb))
            correct += int((s[0].argmax(1) == lb).sum())
            res = max(res, r)
    return loss / len(x), correct / len(x), res


def one_hot(labels: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, 10).to(dtype)


def train_run(config: Any, run_dir: Path, *, resume: bool, progress: bool, device: torch.device) -> dict[str, Any]:
    """Train per `config` (a training.config.TrainConfig) into `run_dir`; see the module docstring."""
    from ..runfiles import batches_per_epoch, complete_run_files, epoch_bar, epoch_lr, shuffled, write_checkpoint

    o = parse_options(config.rule_options)
    if config.task_options:
        raise NeurosimError(f"--task-option {', '.join(sorted(config.task_options))}: task digits_static takes "
                            "no task options")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    xtr, ltr, xte, lte = digits_static(config.seed, config.n_train, config.n_test)
    xtr_t, ltr_t = torch.as_tensor(xtr, device=device), torch.as_tensor(ltr, device=device)
    xte_t, lte_t = torch.as_tensor(xte, device=device), torch.as_tensor(lte, device=device)
    sizes = [10] + [config.hidden] * o.layers + [64]
    params = E.init_params(sizes, config.seed, torch.float32, device)
    opt, base_lr = make_optimizer(params, config.lr, o)
    history: list[dict[str, float]] = []
    start = 0
    ckpt = run_dir / "checkpoint.pt"
    if resume:
        history, start = _resume(ckpt, config, params, opt)
        complete_run_files(run_dir, config, history, BAR)  # what a kill left undone
    n = len(xtr)
    batches = batches_per_epoch(n, config)
    bar = epoch_bar(config, start, batches, f"train digits_static ({o.baseline})", progress)
    try:
        for epoch in range(start, config.epochs):
            t0 = time.perf_counter()
            order = shuffled(config, epoch, n)
            factor = epoch_lr(config, epoch) / config.lr
            for group, lr in zip(opt.param_groups, base_lr):
                group["lr"] = lr * factor
            loss_sum, correct, res_max, missed, steps, dead = 0.0, 0, 0.0, 0, 0, 0
            for lo in range(0, n, config.batch_size):
                idx = torch.as_tensor(order[lo:lo + config.batch_size], device=device)
                xb, lb = xtr_t[idx], ltr_t[idx]
                yb = one_hot(lb, params["W0"].dtype)
                grads, s_star, res, used = batch_gradient(xb, yb, params, o)
                with torch.no_grad():  # target output with input <= 0: hard sigma' = 0, no BPTT signal
                    u0 = E.dphi_ds(xb, s_star, params)[0]
                    dead += int((u0.gather(1, lb[:, None]) <= 0).sum())
                for k, g in grads.items():
                    params[k].grad = g
                opt.step()
                loss_sum += float(E.loss_fn(s_star[0], yb)) * len(idx)
                correct += int((s_star[0].argmax(1) == lb).sum())
                res_max, missed = max(res_max, res), missed + (not res <= o.tol)
                steps += used
                bar.update(1)
            test_loss, test_acc, test_res = evaluate(params, xte_t, lte_t, o)
            if missed:
                warnings.warn(f"rule ep, epoch {epoch}: the free phase missed tol {o.tol:g} within T = {o.T} steps in "
                              f"{missed} of {batches} batches (max residual {res_max:.3g}); raise --rule-option T",
                              stacklevel=2)
            history.append(dict(epoch=epoch, train_loss=loss_sum / n, train_acc=correct / n, test_loss=test_loss,
                                test_acc=test_acc, seconds=time.perf_counter() - t0, residual=max(res_max, test_res),
                                unconverged=missed / batches, free_steps=steps / batches, dead_target=dead / n))
            write_checkpoint(run_dir, config, epoch, history, bar=BAR, optimizer=opt.state_dict(),
                             params={k: v.detach().cpu() for k, v in params.items()})
    finally:
        bar.close()
    save_weights(run_dir / "weights.pt", params, o)
    task = {"name": "digits_static", "n_in": 64, "n_out": 10, "n_train": n, "n_test": len(xte)}
    return {"history": history, "model": params, "task": task, "bar": BAR,
            "files": ("checkpoint.pt", "metrics.csv", "curve.png", "weights.pt", "config.json")}


def make_optimizer(params: E.Params, lr: float, o: EPOptions) -> tuple[torch.optim.Optimizer, list[float]]:
    """(optimizer, base learning rate of each param group): one group per layer n (W_n, b_n), rate
    lr_layers[n] (output layer first, the authors' lr_tab) or --lr; Adam or plain SGD (the authors')."""
    n = sum(k.startswith("W") for k in params)
    rates = list(o.lr_layers) if o.lr_layers is not None else [lr] * n
    groups = [{"params": [params[f"W{i}"], params[f"b{i}"]], "lr": rates[i]} for i in range(n)]
    opt = torch.optim.SGD(groups, lr=rates[0]) if o.optimizer == "sgd" else torch.optim.Adam(groups, lr=rates[0])
    return opt, rates


def save_weights(path: Path, params: E.Params, o: EPOptions) -> None:
    """The trained parameters, the free-phase cap T, tol and the activation, atomically (torch format)."""
    buf = io.BytesIO()
    torch.save({"version": CHECKPOINT_VERSION, "T": o.T, "tol": o.tol, "activation": o.activation,
                "params": {k: v.detach().cpu() for k, v in params.items()}}, buf)
    write_bytes(path, buf.getvalue())


def load_weights(path: str | Path) -> tuple[E.Params, int, float, str]:
    """(params, T, tol, activation) from a weights.pt written by `save_weights`; predict with
    ``ep_net.free_phase_until(x, params, T, tol, activation)[0][0].argmax(1)``."""
    state = _load(Path(path))
    params, T = state.get("params"), state.get("T")
    tol, act = state.get("tol", 1e-3), state.get("activation", "hard")
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise NeurosimError(f"{path}: T: expected a whole number >= 1, got {T!r}"[:300])
    if isinstance(tol, bool) or not isinstance(tol, float) or not 0 < tol < float("inf"):
        raise NeurosimError(f"{path}: tol: expected a number > 0, got {tol!r}"[:300])
    if act not in E.ACTIVATIONS:
        raise NeurosimError(f"{path}: activation: expected one of {', '.join(E.ACTIVATIONS)}, got {act!r}"[:300])
    _check_params(Path(path), params)
    return params, T, tol, act


def _load(path: Path) -> dict[str, Any]:
    from ..runfiles import load_tensors

    state = load_tensors(path)
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise NeurosimError(f"{path}: not an EP checkpoint of version {CHECKPOINT_VERSION}")
    return state


def _check_params(path: Path, params: Any, like: E.Params | None = None) -> None:
    if not (isinstance(params, dict) and params and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                        for k, v in params.items())):
        raise NeurosimError(f"{path}: params: expected a dict of named tensors")
    n = sum(k.startswith("W") for k in params)
    if set(params) != {f"{c}{i}" for c in "Wb" for i in range(n)}:
        raise NeurosimError(f"{path}: params: expected W0..W{n - 1} and b0..b{n - 1}, got {sorted(params)}")
    if like is not None:
        for k, v in like.items():
            if params.get(k) is None or params[k].shape != v.shape:
                raise NeurosimError(f"{path}: params: {k} does not fit this run")
    else:
        sizes = [params["W0"].shape[0]] + [params[f"W{i}"].shape[1] for i in range(n)]
        for i in range(n):
            if params[f"W{i}"].shape != (sizes[i], sizes[i + 1]) or params[f"b{i}"].shape != (sizes[i],):
                raise NeurosimError(f"{path}: params: W{i}/b{i} shapes do not chain")


def _resume(path: Path, config: Any, params: E.Params, opt: torch.optim.Optimizer
            ) -> tuple[list[dict[str, float]], int]:
    """Load the checkpoint at `path` into `params` and `opt`; (history, first epoch to run)."""
    from ..runfiles import load_optimizer, read_checkpoint

    state, epoch, history = read_checkpoint(path, config)
    _check_params(path, state.get("params"), params)
    with torch.no_grad():
        for k, v in params.items():
            v.copy_(state["params"][k])
    load_optimizer(path, opt, state.get("optimizer"))
    return history, epoch + 1

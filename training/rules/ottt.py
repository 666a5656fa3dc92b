"""Online training through time (OTTT, Xiao et al., NeurIPS 2022); the per-step local
quantities it shares with e-prop and rate-based BP live in training.rules.local.

OTTT keeps, for every projection ``P: q -> p`` (delay d), the presynaptic trace filtered by the
postsynaptic membrane's own kernel::

    c[t] = alpha_p * c[t-1] + z_q[t-d]          (c = z_q[t-d] when alpha_p = 0)
    a[t] = beta_p  * a[t-1] + c[t]              (a = lambda a + s of the paper, lambda = beta)

which is ``dv_p[t]/dW`` with the reset and all spike-to-spike paths ignored, and the
instantaneous loss ``l_t`` of the readout. At each step with a loss, the error is propagated
spatially only, along feed-forward projections (each costs its delay, so a population ``lag``
steps upstream of the readout receives the error of its step ``t - lag``)::

    dx_out[t]      = gain_out * dl_t / dv_out[t]
    dz_q[t-lag_q]  = sum_P  dx_p[t-lag_p] @ W_P^T               (P: q -> p feed-forward)
    dx_q[t-lag_q]  = gain_q * psi_q[t-lag_q] * dz_q[t-lag_q]    (psi: the surrogate dz/dv)
    grad W_P      += a_P[t-lag_p]^T @ dx_p[t-lag_p]

No autograd graph is built (the loss derivative uses one tiny graph inside the step), and only
``max lag + 1`` steps of traces are kept: memory does not grow with T. For the readout the rule
is exact (an LI readout has no reset). ``update='sequence'`` accumulates over the sequence and
leaves the update to the caller (OTTT_A); ``update='step'`` applies the optimizer after every
step with a loss (OTTT_O). Recurrent projections (those that close a cycle) are trained with
their trace but carry no error (the paper's networks are feed-forward).
"""
from __future__ import annotations

from collections import deque
from typing import Any, Optional

import torch

from neurosim.errors import NetworkError

from ..layers import SNN
from .base import Batch, Objective, Rule, RuleOutput
from .local import KernelTrace, LocalView, psi, readout_error, step_with_u


def _check_optimizer(optimizer: Any) -> None:
    if optimizer is None or not callable(getattr(optimizer, "step", None)):
        raise NetworkError("optimizer", "update='step' applies the optimizer after every step: pass one "
                                        "(rule.bind(optimizer)) before calling backward")


# --------------------------------------------------------------------------------------------
# OTTT


class OTTT(Rule):
    """OTTT (module docstring). `update`: 'sequence' (OTTT_A, accumulate ``.grad``) or 'step'
    (OTTT_O: ``optimizer.step()`` after every step with a loss; bind the optimizer first)."""

    name = "ottt"

    def __init__(self, update: str = "sequence", readout: str = "out") -> None:
        if update not in ("sequence", "step"):
            raise NetworkError("update", f"expected 'sequence' or 'step', got {update!r}")
        self.update, self.readout = update, readout
        self.optimizer: Any = None
        self.clip: Optional[float] = None

    @property
    def updates_online(self) -> bool:
        return self.update == "step"

    def bind(self, optimizer: Any, clip: Optional[float] = None) -> None:
        """The optimizer (and gradient-norm clip) that update='step' applies after every step."""
        self.optimizer, self.clip = optimizer, clip

    def backward(self, model: SNN, batch: Batch) -> RuleOutput:
        if self.updates_online:
            _check_optimizer(self.optimizer)
        view = LocalView(model, self.readout)
        lag = view.lag
        live = [r for r in view.routes if r.post_pop in lag]
        traces = {r.name: KernelTrace(*view.kernel(r.post_pop)) for r in live}
        gain = {p: view.param("gain", p) for p in lag}
        upstream = sorted((p for p in lag if lag[p] > 0), key=lambda p: lag[p])
        keep = max(lag.values()) + 1
        past: deque = deque(maxlen=keep)  # (psi (B, N) or None, {route: trace}) of the last steps
        obj = Objective(model, batch, self.readout)
        mask = batch.loss_mask.tolist()
        state = model.initial_state(batch.inputs.shape[1])
        loss = 0.0
        for t in range(batch.steps):
            with torch.no_grad():
                prev = state
                state, u = step_with_u(model, prev, batch.inputs[t])
                a = {r.name: traces[r.name].update(prev.history[r.delay - 1][:, r.pre]) for r in live}
                past.append((psi(model, u, prev.neurons) if upstream else None, a))
            if not mask[t]:
                continue
            loss_t, dv = readout_error(obj, state, t)
            loss += float(loss_t)
            with torch.no_grad():
                dx = {self.readout: gain[self.readout] * dv[:, view.slices[self.readout]]}
                for p in upstream:
                    if lag[p] >= len(past):
                        continue  # the error would concern a step before 0
                    dz = None
                    for r in view.routes:
                        if r.feedforward and r.pre_pop == p and r.post_pop in dx and lag[r.post_pop] + r.delay == lag[p]:
                            term = r.backprop(dx[r.post_pop])
                            dz = term if dz is None else dz + term
                    if dz is not None:
                        dx[p] = gain[p] * past[-1 - lag[p]][0][:, view.slices[p]] * dz
                for r in live:
                    if r.post_pop in dx:
                        r.accumulate(past[-1 - lag[r.post_pop]][1][r.name], dx[r.post_pop])
            if self.updates_online:
                if self.clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        return RuleOutput(loss, obj.readouts)

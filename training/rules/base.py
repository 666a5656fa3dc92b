"""The interface every learning rule here implements, and the hidden-state helpers they share.

A rule takes a model and a batch, accumulates the parameters' `.grad` and returns the loss and
the readout.

Loss (decomposable over time, as every rule here needs)::

    L = sum_t mask[t] * l(v_out[t], y) / sum_t mask[t]

with l the cross-entropy of the readout potentials (class labels y of shape (B,)) or the
squared error (targets of shape (B, T, n_out)); v_out is the LI readout population.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from neurosim.errors import NetworkError

from ..layers import SNN, SNNState


@dataclass(frozen=True)
class Batch:
    """inputs: (T, B, S) spikes in network.inputs order; targets: (B,) labels or (B, T, n_out);
    loss_mask: (T,) bool, steps whose readout enters the loss."""

    inputs: torch.Tensor
    targets: torch.Tensor
    loss_mask: torch.Tensor

    @property
    def steps(self) -> int:
        return int(self.inputs.shape[0])


@dataclass(frozen=True)
class RuleOutput:
    """loss: the batch loss; readouts: the readout potential (B, n_out) at each masked step."""

    loss: float
    readouts: dict[int, torch.Tensor]

    @property
    def readout(self) -> torch.Tensor:
        """Mean readout potential over the masked steps, (B, n_out)."""
        return torch.stack([self.readouts[t] for t in sorted(self.readouts)]).mean(0)


class Objective:
    """Per-step loss of the readout population `readout` of `model` for a batch."""

    def __init__(self, model: SNN, batch: Batch, readout: str = "out", skip_without_grad: bool = True) -> None:
        if readout not in model.slices:
            raise NetworkError("readout", f"the network has no population {readout!r} to read out")
        self.lo, self.hi = model.slices[readout]
        self.batch = batch
        self.weight = 1.0 / max(int(batch.loss_mask.sum()), 1)
        self.readouts: dict[int, torch.Tensor] = {}
        self.skip_without_grad = skip_without_grad

    def __call__(self, state: SNNState, t: int) -> torch.Tensor:
        """loss_t; zero (not computed) outside the mask, and in no-grad recomputation sweeps when
        `skip_without_grad` (no rule reads those: each step's loss comes from its graph evaluation)."""
        v = state.neurons.v[:, self.lo:self.hi]
        if not bool(self.batch.loss_mask[t]) or (self.skip_without_grad and not torch.is_grad_enabled()):
            return v.new_zeros(())
        self.readouts[t] = v.detach().clone()  # a view would keep the whole state alive
        y = self.batch.targets
        if y.ndim == 1:
            return F.cross_entropy(v, y, reduction="mean") * self.weight
        return F.mse_loss(v, y[:, t].to(v.dtype), reduction="mean") * self.weight


    def stacked(self, vs: dict[int, torch.Tensor]) -> torch.Tensor:
        """The whole loss from the readout potentials `vs` {t: (B, n_out)} of the masked steps, in
        one call (equal to the sum of :meth:`__call__` over those steps)."""
        if not vs:
            return self.batch.inputs.new_zeros(())
        steps = sorted(vs)
        v = torch.stack([vs[t] for t in steps])  # (M, B, n_out)
        for t in steps:
            self.readouts[t] = vs[t].detach().clone()
        y = self.batch.targets
        m, b = v.shape[:2]
        if y.ndim == 1:
            return F.cross_entropy(v.reshape(m * b, -1), y.repeat(m), reduction="sum") * (self.weight / b)
        target = y[:, steps].transpose(0, 1).to(v.dtype)
        return F.mse_loss(v, target, reduction="sum") * (self.weight / (b * v.shape[2]))

    def masked_steps(self) -> list[int]:
        """The steps whose readout enters the loss."""
        return [int(t) for t in torch.nonzero(self.batch.loss_mask).flatten()]


class Rule(ABC):
    """A credit-assignment rule: `backward` accumulates `.grad` of the model's parameters."""

    name: str = ""

    @abstractmethod
    def backward(self, model: SNN, batch: Batch) -> RuleOutput:
        ...



def detach_state(state: SNNState) -> SNNState:
    """`state` with every tensor detached from its graph (same values, no gradient history)."""
    return SNNState(type(state.neurons)(*(x.detach() for x in state.neurons)),
                    tuple(h.detach() for h in state.history))


def flatten_state(state: SNNState):
    """(tuple of tensors, function rebuilding an SNNState from such a tuple).

    The spikes z are not stored: they are the neurons' part of history[0] (a view, so gradients
    flow through it), which keeps a stored hidden state as small as the step really needs.
    """
    i, v, a, z, r = state.neurons
    n = z.shape[1]
    cls = type(state.neurons)

    def unflatten(flat: tuple[torch.Tensor, ...]) -> SNNState:
        history = tuple(flat[4:])
        return SNNState(cls(flat[0], flat[1], flat[2], history[0][:, :n], flat[3]), history)

    return (i, v, a, r) + tuple(state.history), unflatten


def differentiable_flags(flat: tuple[torch.Tensor, ...]) -> tuple[bool, ...]:
    """Which tensors of a :func:`flatten_state` tuple carry gradient: all but the refractory
    counter r (index 3), which the step reads through comparisons only."""
    return tuple(k != 3 for k in range(len(flat)))


def state_nbytes(state: SNNState) -> int:
    """Bytes of the tensors of `state` as :func:`flatten_state` lays them out (unpacked)."""
    flat, _ = flatten_state(state)
    return int(sum(t.numel() * t.element_size() for t in flat))


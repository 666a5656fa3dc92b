"""Backpropagation through time: full (one graph over all T steps) and truncated every k steps."""
from __future__ import annotations

from neurosim.errors import NetworkError

from ..layers import SNN
from .base import Batch, Objective, Rule, RuleOutput, detach_state


class BPTT(Rule):
    """Full backpropagation through time: one autograd graph over all T steps."""

    name = "bptt"

    def backward(self, model: SNN, batch: Batch) -> RuleOutput:
        obj = Objective(model, batch)
        state = model.initial_state(batch.inputs.shape[1])
        total = batch.inputs.new_zeros(())
        for t in range(batch.steps):
            state = model.step(state, batch.inputs[t])
            total = total + obj(state, t)
        total.backward()
        return RuleOutput(float(total.detach()), obj.readouts)


class TruncatedBPTT(Rule):
    """BPTT truncated every `k` steps: the state entering each chunk is detached."""

    name = "tbptt"

    def __init__(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise NetworkError("k", f"expected a truncation length >= 1 step, got {k!r}")
        self.k = k

    def backward(self, model: SNN, batch: Batch) -> RuleOutput:
        obj = Objective(model, batch)
        state = model.initial_state(batch.inputs.shape[1])
        loss = 0.0
        for t0 in range(0, batch.steps, self.k):
            state = detach_state(state)
            chunk = batch.inputs.new_zeros(())
            for t in range(t0, min(t0 + self.k, batch.steps)):
                state = model.step(state, batch.inputs[t])
                chunk = chunk + obj(state, t)
            if chunk.requires_grad:
                chunk.backward()
            loss += float(chunk.detach())
        return RuleOutput(loss, obj.readouts)

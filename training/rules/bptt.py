"""Backpropagation through time: full (one graph over all T steps) and truncated every k steps."""
from __future__ import annotations

from neurosim.errors import NetworkError

from ..fused.layered import applies, readout_block, readout_sequence
from ..layers import SNN
from .base import Batch, Objective, Rule, RuleOutput, detach_state


class BPTT(Rule):
    """Full backpropagation through time: one autograd graph over all T steps."""

    name = "bptt"

    def backward(self, model: SNN, batch: Batch) -> RuleOutput:
        """One graph; the loss is evaluated once, on the masked steps' readouts. A layered model
        whose layers all have fused kernels runs its whole sequence fused (training.fused)."""
        obj = Objective(model, batch)
        keep = set(obj.masked_steps())
        seq = readout_sequence(model, batch.inputs, "out")
        if seq is not None:
            vs = {t: seq[t] for t in sorted(keep)}
        else:
            state = model.initial_state(batch.inputs.shape[1])
            vs = {}
            for t in range(batch.steps):
                state = model.step(state, batch.inputs[t])
                if t in keep:
                    vs[t] = state.neurons.v[:, obj.lo:obj.hi]
        total = obj.stacked(vs)
        if total.requires_grad:
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
        """Chunk after chunk from the detached state; a layered model whose layers all have
        fused kernels runs each chunk as one fused call from that state (training.fused)."""
        obj = Objective(model, batch)
        keep = set(obj.masked_steps())
        state = model.initial_state(batch.inputs.shape[1])
        fused = applies(model, batch.inputs, "out", from_state=True)
        loss = 0.0
        for t0 in range(0, batch.steps, self.k):
            state = detach_state(state)
            t1 = min(t0 + self.k, batch.steps)
            vs = {}
            if fused:
                seq, state = readout_block(model, batch.inputs[t0:t1], "out", state)
                vs = {t: seq[t - t0] for t in range(t0, t1) if t in keep}
            else:
                for t in range(t0, t1):
                    state = model.step(state, batch.inputs[t])
                    if t in keep:
                        vs[t] = state.neurons.v[:, obj.lo:obj.hi]
            chunk = obj.stacked(vs)  # the chunk's loss, evaluated once on its masked steps
            if chunk.requires_grad:
                chunk.backward()
            loss += float(chunk.detach())
        return RuleOutput(loss, obj.readouts)

"""Learning rules behind one interface: a rule takes a model and a batch, accumulates the
parameters' `.grad` and returns the loss and the readout.

Loss (decomposable over time, as every rule here needs)::

    L = sum_t mask[t] * l(v_out[t], y) / sum_t mask[t]

with l the cross-entropy of the readout potentials (class labels y of shape (B,)) or the
squared error (targets of shape (B, T, n_out)); v_out is the LI readout population.

| rule | gradient | memory in T |
|---|---|---|
| ``bptt`` | exact (surrogate) gradient, one graph over all steps | O(T) |
| ``tbptt`` | truncated every k steps (state detached between chunks) | O(k) |
| ``budgeted`` | exact, recomputation schedule of Gruslys et al. 2016 for a budget | O(budget) |
| ``ottt`` | presynaptic traces, spatial error only (Xiao et al. 2022; training.ottt) | O(1) |
| ``eprop`` | eligibility traces, readout learning signal (Bellec et al. 2020; training.eprop) | O(1) |
| ``ratebp`` | spike pass, then one backward through the rate graph (Yu et al. 2024; training.ratebp) | O(1) |
"""
from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import torch
import torch.nn.functional as F

from neurosim.errors import NetworkError

from .layers import SNN, SNNState


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


class Rule(ABC):
    """A credit-assignment rule: `backward` accumulates `.grad` of the model's parameters."""

    name: str = ""

    @abstractmethod
    def backward(self, model: SNN, batch: Batch) -> RuleOutput:
        ...


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


class BudgetedBPTT(Rule):
    """Exact BPTT under a memory budget (Gruslys et al. 2016): `budget` is a number of stored
    hidden states (int) or bytes ('64MB', '1.5GB', or an int with `unit='bytes'`);
    `policy` is 'hsm', 'ism' or 'mixed'.

    `block` = w > 1 plans over blocks of w steps: the schedule's unit step is w SNN steps run
    with one graph and backpropagated by one autograd call (the coarser RNN whose step is w of
    ours; the plan is Gruslys's DP on ceil(T / w) such steps). It trades w steps' graph as
    working memory (subtracted from a byte budget) for w times fewer autograd calls and
    stored-state boundaries; gradients stay exact. ``block='auto'`` picks w on the first batch
    by the cost model of :meth:`choose_block`."""

    name = "budgeted"

    def __init__(self, budget: Union[int, str], policy: str = "hsm", block: Union[int, str] = 1) -> None:
        if policy not in ("hsm", "ism", "mixed"):
            raise NetworkError("policy", f"expected 'hsm', 'ism' or 'mixed', got {policy!r}")
        if block != "auto" and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
            raise NetworkError("block", f"expected a block length >= 1 step or 'auto', got {block!r}")
        self.budget = budget
        self.policy = policy
        self.auto = block == "auto"
        self.block: int = 1 if self.auto else int(block)  # 'auto': chosen on the first batch (choose_block)
        self.alpha: Optional[float] = None  # measured: bytes of one step's graph / hidden state
        self.working_bytes: Optional[int] = None  # measured: peak of one block's graph and backward
        self.estimates: dict[int, float] = {}  # 'auto': estimated time per candidate block, no-graph steps
        self._shape: Optional[tuple[Any, ...]] = None  # the batch shape alpha and working_bytes are for
        self._measured: dict[tuple[Any, ...], tuple[Optional[float], Optional[int]]] = {}

    def _measure_for(self, batch: Batch) -> None:
        """Point `alpha` and `working_bytes` at `batch`'s shape (trials, steps, dtype, device):
        both scale with the batch, so a larger batch than the first is measured anew."""
        x = batch.inputs
        shape = (x.shape[1], x.shape[0], x.dtype, x.device, self.block)
        if shape != self._shape:
            if self._shape is not None:
                self._measured[self._shape] = (self.alpha, self.working_bytes)
            self._shape = shape
            self.alpha, self.working_bytes = self._measured.get(shape, (None, None))

    def measure_alpha(self, model: SNN, batch: Batch) -> float:
        """Internal-state size of one step (bytes autograd saves, storages counted once) over
        the stored hidden-state size (:class:`StateCodec`), for the plan's cost model."""
        sizes: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            st = t.untyped_storage()
            sizes[st.data_ptr()] = st.nbytes()
            return t

        state = model.initial_state(batch.inputs.shape[1])
        flat, unflatten = flatten_state(state)
        flat = tuple(x.detach().requires_grad_(x.is_floating_point()) for x in flat)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model.step(unflatten(flat), batch.inputs[0])
        for x in flatten_state(out)[0]:  # a kept step graph also keeps its output state
            sizes[x.untyped_storage().data_ptr()] = x.untyped_storage().nbytes()
        existing = [*flat, *model.parameters(), *model.buffers(), batch.inputs]  # not per-step memory
        known = {x.untyped_storage().data_ptr() for x in existing}
        internal = sum(n for k, n in sizes.items() if k not in known)
        return max(internal / stored_state_nbytes(model, batch), 1.0)

    def graph_units(self, model: SNN, batch: Batch, block: int) -> float:
        """Units (stored hidden states) one stored graph of `block` steps keeps alive:
        ``block * alpha`` (each step's saved tensors and output state, :meth:`measure_alpha`)
        plus the unpacked input state the graph holds as its leaves. Consecutive stored graphs
        share that state with their predecessor's output, so a chain is counted conservatively."""
        self._measure_for(batch)
        if self.alpha is None:
            self.alpha = self.measure_alpha(model, batch)
        leaves = state_nbytes(model.initial_state(batch.inputs.shape[1]))
        return self.alpha * block + leaves / stored_state_nbytes(model, batch)

    def measure_working(self, model: SNN, batch: Batch, block: Optional[int] = None) -> int:
        """Peak live bytes (training.memory.LiveBytes) of the work every schedule does besides
        its stored states: one block of `block` (default: the rule's) steps run with its graph
        from a state, and its backward (graph, autograd temporaries, parameter gradients). The
        parameters' `.grad` are left as they were."""
        block = self.block if block is None else block
        from .memory import LiveBytes

        from .budgeted import _backprop, _Graph

        saved = [(p, p.grad) for p in model.parameters()]
        for p, _ in saved:
            p.grad = None
        obj = Objective(model, batch)
        flat, unflatten = flatten_state(model.initial_state(batch.inputs.shape[1]))
        try:
            with LiveBytes() as mem:
                leaves = tuple(x.detach().requires_grad_(d) for x, d in zip(flat, differentiable_flags(flat)))
                s, loss = unflatten(leaves), leaves[1].sum() * 0
                for t in range(min(block, batch.steps)):
                    s = model.step(s, batch.inputs[t])
                    loss = loss + obj(s, t)
                out = flatten_state(s)[0]
                _backprop(_Graph(leaves, out, loss), tuple(torch.ones_like(o) if o.requires_grad else None
                                                          for o in out))
                del s, out, loss, leaves
            return int(mem.peak)
        finally:
            for p, g in saved:
                p.grad = g

    def working_memory(self, model: SNN, batch: Batch, block: Optional[int] = None) -> int:
        """Bytes a byte budget pays before any stored state: the measured block
        (:meth:`measure_working`) plus 5 full states (the running state and its successor in a
        no-grad sweep, the gradient carried between blocks, an unpacked stored state and one
        being packed); measured once per rule for its own block."""
        self._measure_for(batch)
        block = self.block if block is None else block
        if block == self.block and self.working_bytes is not None:
            return self.working_bytes
        working = self.measure_working(model, batch, block) + 5 * state_nbytes(model.initial_state(batch.inputs.shape[1]))
        if block == self.block:
            self.working_bytes = working
        return working

    def slots(self, model: SNN, batch: Batch, block: Optional[int] = None) -> int:
        """Hidden-state slots that fit the budget for this model and batch size with blocks of
        `block` steps (default: the rule's). A byte budget first pays for the measured working
        memory (:meth:`measure_working`), so that it bounds the iteration's peak: stored states +
        working memory <= budget."""
        self._measure_for(batch)
        block = self.block if block is None else block
        counted = isinstance(self.budget, int) and not isinstance(self.budget, bool)
        return self._slots(model, batch, block, None if counted else self.working_memory(model, batch, block))

    def _slots(self, model: SNN, batch: Batch, block: int, working: Optional[int]) -> int:
        state_bytes = stored_state_nbytes(model, batch)
        if working is None:
            slots = int(self.budget)
        else:
            total = parse_bytes(str(self.budget))
            slots = int((total - working) // state_bytes) - 1  # h_0 is stored too
            if slots < 1:
                raise NetworkError("budget", f"{self.budget!r} is below the working memory of one "
                                             f"{block}-step block ({working / 1e6:.2f} MB) plus "
                                             f"one stored state ({state_bytes} bytes)")
        if slots < 1:
            raise NetworkError("budget", f"{self.budget!r} holds no hidden state ({state_bytes} bytes each)")
        return slots

    def choose_block(self, model: SNN, batch: Batch) -> int:
        """The block length w in BLOCK_CANDIDATES with the least estimated time for this budget::

            time(w) ~ cost(w) * w + CALL_COST * ceil(T / w)      (units: one no-graph step)

        cost(w): the plan's forward evaluations in w-step units with the slots left after w
        steps' working memory (a longer block stores fewer states, so recomputes more);
        CALL_COST: one autograd call plus a stored state's pack and unpack, in no-graph steps
        (fitted on bench/bptt_memory.py's T = 1000 runs). The working memory is measured for
        blocks of 1, 2 and 4 steps and extrapolated linearly from 2 and 4 (the first step also
        pays the parameters' gradients). Candidates whose working memory leaves no slot are
        skipped; the estimates are kept in `estimates`. A budget given as a number of states
        bounds stored states, not the working memory a longer block adds: 1."""
        self._measure_for(batch)
        T = batch.steps
        counted = isinstance(self.budget, int) and not isinstance(self.budget, bool)
        working: Optional[Callable[[int], int]] = None
        if not counted:  # measured at 1, 2 and 4 steps, linear beyond: measuring long blocks could pass the budget
            one, two, four = (self.working_memory(model, batch, min(w, T)) for w in (1, 2, 4))
            working = lambda w: one if w == 1 else two + (w - 2) * max(four - two, 0) // 2  # noqa: E731
        self.estimates = {}
        for w in (c for c in BLOCK_CANDIDATES if c == 1 or (c <= T and not counted)):
            try:
                slots = self._slots(model, batch, w, None if working is None else working(w))
            except NetworkError:
                continue
            n_blocks = -(-T // w)
            plan = _cached_plan(n_blocks, min(slots, n_blocks), self.policy, self.graph_units(model, batch, w))
            self.estimates[w] = plan.cost * w + CALL_COST * n_blocks
        if not self.estimates:
            self.slots(model, batch, 1)  # raises the budget error for the smallest block
        return min(self.estimates, key=self.estimates.__getitem__)

    def backward(self, model: SNN, batch: Batch) -> RuleOutput:
        from .budgeted import budgeted_backward

        obj = Objective(model, batch)
        state0 = model.initial_state(batch.inputs.shape[1])
        flat0, unflatten = flatten_state(state0)

        if self.auto and not self.estimates:
            self.block = self.choose_block(model, batch)
        self._measure_for(batch)
        w, T = self.block, batch.steps

        def step(flat: tuple[torch.Tensor, ...], k: int) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
            s, loss = unflatten(flat), None
            for t in range(k * w, min((k + 1) * w, T)):
                s = model.step(s, batch.inputs[t])
                loss = obj(s, t) if loss is None else loss + obj(s, t)
            return flatten_state(s)[0], loss

        n_blocks = -(-T // w)
        schedule = _cached_plan(n_blocks, min(self.slots(model, batch), n_blocks), self.policy,
                                self.graph_units(model, batch, w))
        codec = StateCodec(model, batch)
        loss = budgeted_backward(step, flat0, n_blocks, schedule, differentiable=differentiable_flags(flat0),
                                 codec=(codec.pack, codec.unpack))
        return RuleOutput(float(loss), obj.readouts)


class StateCodec:
    """A stored hidden state of :func:`flatten_state`'s form ``(i, v, a, r, *history)``, kept as
    small as the next step needs: i only if some alpha != 0 (else ``alpha * i`` is 0 whatever
    i), a only on the columns with adapt != 0 (elsewhere it never reaches v or z), r only if
    some neuron is refractory, and the spike history as bool when the batch's inputs are 0/1.
    ``unpack(pack(h))`` gives back every value the step reads; the rest as zeros."""

    def __init__(self, model: SNN, batch: Batch) -> None:
        p = model.params
        self.keep_i = bool((p.alpha != 0).any())
        self.keep_r = bool((p.refractory != 0).any())
        self.a_cols = torch.nonzero(p.adapt != 0).flatten()
        self.all_a = len(self.a_cols) == p.adapt.numel()
        x = batch.inputs
        self.binary = bool(((x == 0) | (x == 1)).all())

    def pack(self, flat: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        i, v, a, r, *hist = flat
        a_kept = a if self.all_a else a[:, self.a_cols]
        return (v, i if self.keep_i else None, a_kept, r if self.keep_r else None,
                *(h.bool() if self.binary else h for h in hist))

    def unpack(self, stored: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        v, i, a_kept, r, *hist = stored
        if self.all_a:
            a = a_kept
        else:
            a = torch.zeros_like(v)
            a[:, self.a_cols] = a_kept
        return (i if i is not None else torch.zeros_like(v), v, a, r if r is not None else torch.zeros_like(v),
                *(h.to(v.dtype) for h in hist))

    def nbytes(self, flat: tuple[torch.Tensor, ...]) -> int:
        return int(sum(t.numel() * t.element_size() for t in self.pack(flat) if t is not None))


BLOCK_CANDIDATES = (1, 2, 4, 8, 16, 32, 64)
CALL_COST = 3.0  # one block's autograd call + state pack/unpack, in no-graph steps (choose_block)


@functools.lru_cache(maxsize=32)
def _cached_plan(T: int, slots: int, policy: str, alpha: float) -> Any:
    """Plans depend only on these four numbers; the dynamic program is O(T^2 m), seconds at T = 3000."""
    from .checkpoint_plan import plan

    return plan(T, slots, policy, alpha=alpha)


def detach_state(state: SNNState) -> SNNState:
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


def stored_state_nbytes(model: SNN, batch: Batch) -> int:
    """Bytes of one hidden state of `model` for `batch` as the budgeted rule stores it
    (:class:`StateCodec`)."""
    flat = flatten_state(model.initial_state(batch.inputs.shape[1]))[0]
    return StateCodec(model, batch).nbytes(flat)


def state_nbytes(state: SNNState) -> int:
    flat, _ = flatten_state(state)
    return int(sum(t.numel() * t.element_size() for t in flat))


_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_bytes(text: str) -> float:
    """'64MB' -> 64e6, '1.5GiB' -> 1.5 * 2**30, '1000' -> 1000."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?i?[bB]?)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise NetworkError("budget", f"expected a number of states or bytes like '64MB' or '1.5GiB', got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


RULE_NAMES = ("bptt", "tbptt", "budgeted", "ottt", "eprop", "ratebp")


def make_rule(name: str, *, k: Optional[int] = None, budget: Union[int, str, None] = None,
              policy: str = "hsm", update: str = "sequence", feedback: str = "symmetric",
              seed: int = 0, block: Union[int, str] = 1) -> Rule:
    """The rule called `name` (one of RULE_NAMES) with its options: `k` (tbptt), `budget` and
    `policy` and `block` (budgeted), `update` 'sequence' or 'step' (ottt), `feedback` 'symmetric' or
    'random' and its `seed` (eprop)."""
    if name == "bptt":
        return BPTT()
    if name == "tbptt":
        if k is None:
            raise NetworkError("k", "rule 'tbptt' needs a truncation length k (steps)")
        return TruncatedBPTT(k)
    if name == "budgeted":
        if budget is None:
            raise NetworkError("budget", "rule 'budgeted' needs a budget: a number of states or bytes like '64MB'")
        return BudgetedBPTT(budget, policy, block)
    if name == "ottt":
        from .ottt import OTTT

        return OTTT(update)
    if name == "eprop":
        from .eprop import EProp

        return EProp(feedback, seed)
    if name == "ratebp":
        from .ratebp import RateBP

        return RateBP()
    raise NetworkError("rule", f"expected one of {sorted(RULE_NAMES)}, got {name!r}")

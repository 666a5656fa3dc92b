"""Exact BPTT under a memory budget (Gruslys et al. 2016): the rule, its stored-state codec and
cost model, and the advice given when training runs out of GPU memory.

The plan is training.budget.schedule's dynamic program, executed by training.budget.execute.

Out of GPU memory (:func:`out_of_memory_message`): a one-line message with a budget that fits.

Measured on the model and the batch that failed (:class:`BudgetedBPTT` conventions):

    s      bytes of one stored (packed) hidden state   (StateCodec)
    alpha  bytes autograd keeps per step / s           (BudgetedBPTT.measure_alpha)
    W      working memory a byte budget pays first     (BudgetedBPTT.working_memory)
    T      steps of the batch

Full BPTT keeps about ``T * alpha * s``. A byte budget bounds the budgeted rule's whole peak
(its stored states plus W). With ``F`` bytes free on the device after the failure
(``torch.cuda.mem_get_info``), the suggestion is::

    budget = min(0.9 * F, W + T * s)      rounded down to MB, if it holds W and 2 states

(10% left to the allocator's fragmentation; more than T states is never used). When not even
that fits, or the rule's memory does not grow with T (ottt, eprop), a smaller batch is the
remedy instead.
"""
from __future__ import annotations

import functools
import re
from typing import Any, Callable, Optional, Union

import torch

from neurosim.errors import NetworkError

from ..budget.execute import StepGraph, backprop_step, budgeted_backward
from ..budget.memory import LiveBytes
from ..budget.schedule import plan
from ..fused.layered import applies, readout_block
from ..layers import SNN
from .base import Batch, Objective, Rule, RuleOutput, differentiable_flags, flatten_state, state_nbytes


class BudgetedBPTT(Rule):
    """Exact BPTT under a memory budget (Gruslys et al. 2016): `budget` is a number of stored
    hidden states (int) or bytes ('64MB', '1.5GB', or an int with `unit='bytes'`);
    `policy` is 'hsm', 'ism' or 'mixed'.

    `block` = w > 1 plans over blocks of w steps: the schedule's unit step is w SNN steps run
    with one graph and backpropagated by one autograd call (the coarser RNN whose step is w of
    ours; the plan is Gruslys's DP on ceil(T / w) such steps). It trades w steps' graph as
    working memory (subtracted from a byte budget) for w times fewer autograd calls and
    stored-state boundaries; gradients stay exact. ``block='auto'`` picks w on the first batch
    by the cost model of :meth:`choose_block`.

    A layered model whose layers all have fused kernels runs each block of 2 steps or more as one
    fused call from its stored state (:func:`block_step`), so a block's graph keeps each layer's
    h and z, not a per-step autograd graph; the parts of the state the model never reads (i
    when every alpha is 0, a when every adapt is 0, r when no neuron is refractory:
    :class:`StateCodec`) are carried as expanded zeros, out of the graph and out of memory."""

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
        """Internal-state size of one step over the stored hidden-state size (:class:`StateCodec`),
        for the plan's cost model: the bytes a one-step graph of the per-step chain keeps alive
        (what autograd saves and its output state; training.budget.memory.LiveBytes) from a state
        made before. Fused blocks keep less per step (1.5-2.6x less measured on conv, recurrent
        and LIF stacks for blocks of 2-16 steps), so for them the plan's stored-graph cost is an
        overestimate: safe for a budget, not the cheapest ism / mixed plan."""
        codec, flat, unflatten = carried_start(model, batch)
        leaves = tuple(x.detach().requires_grad_(d) for x, d in zip(flat, codec.differentiable(flat)))
        step = block_step(model, batch, Objective(model, batch), 1, unflatten)
        with LiveBytes() as mem, torch.enable_grad():
            kept = step(leaves, 0)
            internal = mem.now()
        del kept
        return max(internal / codec.nbytes(flat), 1.0)

    def graph_units(self, model: SNN, batch: Batch, block: int) -> float:
        """Units (stored hidden states) one stored graph of `block` steps keeps alive:
        ``block * alpha`` (each step's saved tensors and output state, :meth:`measure_alpha`)
        plus the unpacked input state the graph holds as its leaves. Consecutive stored graphs
        share that state with their predecessor's output, so a chain is counted conservatively."""
        self._measure_for(batch)
        if self.alpha is None:
            self.alpha = self.measure_alpha(model, batch)
        codec, flat, _ = carried_start(model, batch)
        return self.alpha * block + codec.carried_nbytes(flat) / codec.nbytes(flat)

    def measure_working(self, model: SNN, batch: Batch, block: Optional[int] = None) -> int:
        """Peak live bytes (training.budget.memory.LiveBytes) of the work every schedule does besides
        its stored states: one block of `block` (default: the rule's) steps run with its graph
        from a state, and its backward (graph, autograd temporaries, parameter gradients). The
        parameters' `.grad` are left as they were."""
        block = self.block if block is None else block
        saved = [(p, p.grad) for p in model.parameters()]
        codec, flat, unflatten = carried_start(model, batch)
        step = block_step(model, batch, Objective(model, batch), min(block, batch.steps), unflatten)
        numpy = fused_blocks(model, batch, min(block, batch.steps))
        try:
            peak = 0
            for measured in (False, True):  # first unmeasured: compilation and first-call caches are not working memory
                for p, _ in saved:
                    p.grad = None
                with LiveBytes(numpy=numpy and measured) as mem, torch.enable_grad():
                    leaves = tuple(x.detach().requires_grad_(d) for x, d in zip(flat, codec.differentiable(flat)))
                    out, loss = step(leaves, 0)
                    backprop_step(StepGraph(leaves, out, loss), tuple(torch.ones_like(o) if o.requires_grad else None
                                                                      for o in out))
                    del out, loss, leaves
                peak = int(mem.peak)
            return peak
        finally:
            for p, g in saved:
                p.grad = g

    def working_memory(self, model: SNN, batch: Batch, block: Optional[int] = None) -> int:
        """Bytes a byte budget pays before any stored state: the measured block
        (:meth:`measure_working`) plus the running state and its successor in a no-grad sweep
        (2 full states, as the step makes them) and 3 carried states
        (:meth:`StateCodec.carried_nbytes`: the gradient carried between blocks, an unpacked
        stored state and one being packed); measured once per rule for its own block."""
        self._measure_for(batch)
        block = self.block if block is None else block
        if block == self.block and self.working_bytes is not None:
            return self.working_bytes
        codec, flat, _ = carried_start(model, batch)
        full = state_nbytes(model.initial_state(batch.inputs.shape[1]))
        working = self.measure_working(model, batch, block) + 2 * full + 3 * codec.carried_nbytes(flat)
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
        obj = Objective(model, batch)
        codec, flat0, unflatten = carried_start(model, batch)
        flat0 = tuple(_one_row(x) for x in flat0)

        if self.auto and not self.estimates:
            self.block = self.choose_block(model, batch)
        self._measure_for(batch)
        w, T = self.block, batch.steps
        inner = block_step(model, batch, obj, w, unflatten)

        def step(flat: tuple[torch.Tensor, ...], k: int) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
            out, loss = inner(flat, k)
            return codec.trim(out), loss

        n_blocks = -(-T // w)
        schedule = _cached_plan(n_blocks, min(self.slots(model, batch), n_blocks), self.policy,
                                self.graph_units(model, batch, w))
        loss = budgeted_backward(step, flat0, n_blocks, schedule, differentiable=codec.differentiable(flat0),
                                 codec=(codec.pack, codec.unpack))
        return RuleOutput(float(loss), obj.readouts)


BlockFn = Callable[[tuple[torch.Tensor, ...], int], tuple[tuple[torch.Tensor, ...], torch.Tensor]]


def fused_blocks(model: SNN, batch: Batch, w: int) -> bool:
    """Whether :func:`block_step` runs `model`'s blocks of `w` steps fused (their saved arrays
    are numpy's, so measuring them counts numpy allocations: training.budget.memory.LiveBytes):
    blocks of 2 steps or more of a layered model whose layers all have fused kernels. A one-step
    block has no sequence to fuse, and its fused call's fixed arrays (the kernels' per-layer
    initial-state copies and backward temporaries) outweigh a one-step graph: measured on issue
    19's conv net (float64, batch 16, T = 18, 2 stored states), blocks of 1, 2, 4 and 8 steps
    peak at 18.7, 28.6, 40.0 and 61.8 MB with per-step graphs and at 25.9, 29.9, 38.2 and
    53.9 MB fused, and take 0.43, 0.36, 0.30 and 0.30 s per backward with per-step graphs and
    0.50, 0.28, 0.20 and 0.17 s fused."""
    return w > 1 and applies(model, batch.inputs, "out", from_state=True)


def block_step(model: SNN, batch: Batch, obj: Objective, w: int,
               unflatten: Callable[[tuple[torch.Tensor, ...]], Any]) -> BlockFn:
    """The executor's unit step (training.budget.execute): ``step(flat, k)`` runs steps
    k*w .. (k+1)*w - 1 from the flattened state `flat`, giving (the next flattened state, the
    block's loss). Where :func:`fused_blocks` holds, the block is one fused call from the state
    (training.fused.layered.readout_block): its graph keeps each layer's h and z instead of a
    per-step graph; the loss is then 0 when no gradient is being recorded (no rule reads the
    loss of a recomputation sweep, as Objective). Otherwise the block is the chain of model.step
    calls."""
    T = batch.steps
    if fused_blocks(model, batch, w):
        def fused(flat: tuple[torch.Tensor, ...], k: int) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
            t0, t1 = k * w, min((k + 1) * w, T)
            v, s = readout_block(model, batch.inputs[t0:t1], "out", unflatten(flat))
            if not torch.is_grad_enabled():
                return flatten_state(s)[0], v.new_zeros(())
            loss = obj.stacked({t: v[t - t0] for t in range(t0, t1) if bool(batch.loss_mask[t])})
            return flatten_state(s)[0], loss
        return fused

    def chain(flat: tuple[torch.Tensor, ...], k: int) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        s, loss = unflatten(flat), None
        for t in range(k * w, min((k + 1) * w, T)):
            s = model.step(s, batch.inputs[t])
            loss = obj(s, t) if loss is None else loss + obj(s, t)
        return flatten_state(s)[0], loss
    return chain


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
        """The flat state; a part left out is zeros of one element expanded to its shape (read
        as zeros, no memory)."""
        v, i, a_kept, r, *hist = stored
        zeros = v.new_zeros(()).expand_as(v)
        if self.all_a:
            a = a_kept
        elif len(self.a_cols):
            a = torch.zeros_like(v)
            a[:, self.a_cols] = a_kept
        else:
            a = zeros
        return (i if i is not None else zeros, v, a, r if r is not None else zeros, *(h.to(v.dtype) for h in hist))

    def trim(self, flat: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """`flat` with the parts the next step never reads (as :meth:`pack` leaves out: i, a, r)
        as expanded zeros, so a block's graph does not keep them alive."""
        i, v, a, r, *hist = flat
        zeros = v.new_zeros(()).expand_as(v)
        return (i if self.keep_i else zeros, v, a if len(self.a_cols) else zeros, r if self.keep_r else zeros, *hist)

    def carried_nbytes(self, flat: tuple[torch.Tensor, ...]) -> int:
        """Bytes of the state as blocks carry it (:meth:`trim`; an expanded zero takes one
        element)."""
        return int(sum(t.untyped_storage().nbytes() for t in self.trim(flat)))

    def differentiable(self, flat: tuple[torch.Tensor, ...]) -> tuple[bool, ...]:
        """training.rules.base.differentiable_flags, less the parts the step never reads: i when
        every alpha is 0 (``alpha * i``), a when every adapt is 0 (``theta + adapt * a``); their
        gradients are exactly 0, so leaving them out of the graph changes no gradient."""
        flags = list(differentiable_flags(flat))
        flags[0] = flags[0] and self.keep_i
        flags[2] = flags[2] and len(self.a_cols) > 0
        return tuple(flags)

    def nbytes(self, flat: tuple[torch.Tensor, ...]) -> int:
        return int(sum(t.numel() * t.element_size() for t in self.pack(flat) if t is not None))


BLOCK_CANDIDATES = (1, 2, 4, 8, 16, 32, 64)
CALL_COST = 3.0  # one block's autograd call + state pack/unpack, in no-graph steps (choose_block)


@functools.lru_cache(maxsize=32)
def _cached_plan(T: int, slots: int, policy: str, alpha: float) -> Any:
    """Plans depend only on these four numbers; the dynamic program is O(T^2 m), seconds at T = 3000."""
    return plan(T, slots, policy, alpha=alpha)


def carried_start(model: SNN, batch: Batch) -> tuple[StateCodec, tuple[torch.Tensor, ...], Callable[..., Any]]:
    """(the batch's StateCodec, the initial state flattened and trimmed as blocks carry it, the
    function rebuilding an SNNState from such a tuple)."""
    codec = StateCodec(model, batch)
    flat, unflatten = flatten_state(model.initial_state(batch.inputs.shape[1]))
    return codec, codec.trim(flat), unflatten


def _one_row(x: torch.Tensor) -> torch.Tensor:
    """`x` (B, ...) as its first row expanded over the batch when every row equals it (the
    initial state, the same for every trial): equal values, one row of memory."""
    first = x[:1]
    return first.clone().expand_as(x) if bool((x == first).all()) else x


def stored_state_nbytes(model: SNN, batch: Batch) -> int:
    """Bytes of one hidden state of `model` for `batch` as the budgeted rule stores it
    (:class:`StateCodec`)."""
    flat = flatten_state(model.initial_state(batch.inputs.shape[1]))[0]
    return StateCodec(model, batch).nbytes(flat)



_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_bytes(text: str) -> float:
    """'64MB' -> 64e6, '1.5GiB' -> 1.5 * 2**30, '1000' -> 1000."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?i?[bB]?)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise NetworkError("budget", f"expected a number of states or bytes like '64MB' or '1.5GiB', got {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


# --------------------------------------------------------------------------------------------
# out of GPU memory: a budget that fits (was training.oom; see the module docstring)

HEADROOM = 0.9
ONLINE = ("ottt", "eprop")  # memory independent of T: a budget does not help


def free_bytes(device: torch.device) -> int:
    """Bytes free on `device` now (after returning cached blocks to the driver)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return int(torch.cuda.mem_get_info(device)[0])


def suggested_budget(model: SNN, batch: Batch, free: int) -> tuple[int, int, float]:
    """(budget in bytes, or 0 when none fits; packed state bytes s; alpha) for `free` bytes."""
    s = stored_state_nbytes(model, batch)
    rule = BudgetedBPTT(1)
    alpha = rule.measure_alpha(model, batch)
    working = rule.working_memory(model, batch)
    budget = int(min(HEADROOM * free, working + batch.steps * s))
    budget = budget // 10**6 * 10**6 if budget >= 10**6 else budget
    return (budget if budget >= working + 2 * s else 0), s, alpha


def out_of_memory_message(model: SNN, batch: Batch, rule: str, device: torch.device) -> str:
    """The one-line advice after torch.cuda.OutOfMemoryError while training `batch`."""
    free = free_bytes(device)
    size, steps = int(batch.inputs.shape[1]), batch.steps
    budget, s, alpha = suggested_budget(model, batch, free)
    head = (f"CUDA out of memory training with --rule {rule} (batch {size} x {steps} steps; {_fmt(free)} free "
            f"on {device})")
    if rule in ONLINE or budget == 0:
        smaller = max(1, size // 2)
        return f"{head}; use a smaller batch, e.g. --batch-size {smaller} (one hidden state takes {_fmt(s)})"
    return (f"{head}; full BPTT keeps about {_fmt(steps * alpha * s)}: --rule budgeted --budget {_budget_text(budget)} "
            "fits and gives the same gradients, recomputing instead of storing")


def _budget_text(budget: int) -> str:
    """What --budget reads back as bytes: 'NMB' for whole megabytes, else 'NB'."""
    return f"{budget // 10**6}MB" if budget % 10**6 == 0 else f"{budget}B"


def _fmt(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"

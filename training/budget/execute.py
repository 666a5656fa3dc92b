"""Memory-budgeted BPTT (Gruslys et al. 2016): execute a `schedule.Plan` with torch autograd.

Contract of a step (the same step function full BPTT, the simulator's training rules and this
executor use)::

    step(state, t) -> (next_state, loss_t)      t = 0 .. T-1

`state` and `next_state` are tuples of tensors of the same structure (floating tensors carry
gradient; integer or bool tensors, e.g. refractory counters, are carried without). `loss_t` is
a scalar tensor (it may be a constant 0). The step closes over the parameters and the inputs,
and must be

- deterministic: a recomputation must reproduce the first evaluation exactly (no unseeded
  dropout; sample any noise outside, indexed by `t`);
- free of in-place writes to its input state;
- built on leaf tensors only (parameters, detached inputs, or inputs whose own graph is
  retained), because each step's graph is backpropagated on its own.

The total loss is ``L = sum_t loss_t``. `budgeted_backward` accumulates into ``.grad`` exactly
what ``L.backward()`` on the full unrolled graph accumulates (`full_bptt_backward`), also into
``state0`` when it requires grad, and returns ``L`` (detached, summed the same way as the
reference, so both are bitwise equal). Gradients agree to rounding: only the order in which
the per-step contributions are added to ``.grad`` differs.

Memory accounting (`ExecStats`, same units as the plan): the live stored hidden states
(``h_0`` included, 1 unit each) and stored internal states (step graphs kept for a later
backward, ``plan.internal_units`` each). The running state of a no-grad forward sweep and the
graph of the single step being backpropagated are working memory and are not counted.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Optional

import torch
from torch import Tensor

from .schedule import Plan

State = tuple[Tensor, ...]
StepFn = Callable[[State, int], tuple[State, Tensor]]


@dataclass
class ExecStats:
    """Counters filled by `budgeted_backward`: ``forward_evals`` step evaluations (equals
    ``plan.cost``), ``peak_units`` the peak of ``live_hidden + a * live_internal`` (at most
    ``plan.memory``), ``peak_hidden`` and ``peak_internal`` the peak counts of each kind."""

    forward_evals: int = 0
    live_hidden: int = 0
    live_internal: int = 0
    peak_units: int = 0
    peak_hidden: int = 0
    peak_internal: int = 0


@dataclass
class StepGraph:
    """One step evaluated with autograd: detached input leaves, outputs and loss."""

    inputs: State
    outputs: State
    loss: Tensor


def full_bptt_backward(step: StepFn, state0: State, T: int) -> Tensor:
    """Reference: unroll all `T` steps into one graph, ``L = stack(losses).sum()``,
    ``L.backward()``; returns ``L`` detached."""
    _check_T(T)
    state = tuple(state0)
    losses = []
    for t in range(T):
        state, loss = step(state, t)
        losses.append(loss)
    total = torch.stack(losses).sum()
    if total.requires_grad:
        total.backward()
    return total.detach()


def budgeted_backward(step: StepFn, state0: State, T: int, plan: Plan,
                      stats: Optional[ExecStats] = None,
                      differentiable: Optional[tuple[bool, ...]] = None,
                      codec: Optional[tuple[Callable[[State], State], Callable[[State], State]]] = None) -> Tensor:
    """Backpropagate ``L = sum_t loss_t`` through `T` steps following `plan`'s schedule.

    Never holds more than ``plan.memory`` units of stored states (module docstring); every
    forward evaluation beyond the first sweep is a recomputation the plan chose. `stats`, if
    given, is reset and filled. `differentiable` marks the state tensors that carry gradient
    (default: every floating tensor); marking one False that the loss does depend on drops that
    gradient path, so mark False only what the step uses through comparisons alone (e.g. a
    refractory counter). `codec` = (pack, unpack) stores hidden states in a compact form:
    ``unpack(pack(h))`` must give back every value the steps read (e.g. spikes as bool, state
    that a zero parameter makes irrelevant left out). Returns ``L`` detached.
    """
    _check_T(T)
    if differentiable is None:
        differentiable = tuple(_carries_grad(s) for s in state0)
    elif len(differentiable) != len(state0):
        raise ValueError(f"differentiable: {len(differentiable)} flags for {len(state0)} state tensors")
    if plan.T != T:
        raise ValueError(f"plan: made for T = {plan.T}, called with T = {T}")
    a = plan.internal_units
    st = stats if stats is not None else ExecStats()
    for f in fields(st):
        setattr(st, f.name, 0)
    pack, unpack = codec if codec is not None else (_same, _same)
    hidden: dict[int, State] = {0: pack(tuple(s.detach() for s in state0))}
    internal: dict[int, StepGraph] = {}
    losses: list[Optional[Tensor]] = [None] * T
    grad_out: tuple[Optional[Tensor], ...] = (None,) * len(state0)  # dL/dh_{nxt+1}
    nxt = T - 1
    run_pos: Optional[int] = None
    run: Optional[State] = None

    def account() -> None:
        st.live_hidden, st.live_internal = len(hidden), len(internal)
        st.peak_hidden = max(st.peak_hidden, st.live_hidden)
        st.peak_internal = max(st.peak_internal, st.live_internal)
        st.peak_units = max(st.peak_units, st.live_hidden + a * st.live_internal)

    def with_graph(state: State, t: int) -> StepGraph:
        st.forward_evals += 1
        inputs = tuple(s.detach().requires_grad_(True) if d else s.detach()
                       for s, d in zip(state, differentiable))
        with torch.enable_grad():
            outputs, loss = step(inputs, t)
        return StepGraph(inputs, tuple(outputs), loss)

    account()
    for act in plan.schedule():
        op = act[0]
        if op == "load":
            s = act[1]
            if s in hidden:
                run = unpack(hidden[s])
            elif (s - 1) in internal:
                run = tuple(o.detach() for o in internal[s - 1].outputs)
            else:
                raise RuntimeError(f"budgeted_backward: {act}: state {s} is not stored")
            run_pos = s
        elif op == "forward":
            _, t0, t1, store = act
            if run_pos != t0 or run is None:
                raise RuntimeError(f"budgeted_backward: {act} with the running state at {run_pos}")
            last = t1 - 1 if store == "internal" else t1
            with torch.no_grad():
                for t in range(t0, last):
                    run, _ = step(run, t)
                    run = tuple(run)
                    st.forward_evals += 1
            if store == "internal":
                g = with_graph(run, t1 - 1)
                internal[t1 - 1] = g
                run = tuple(o.detach() for o in g.outputs)
            elif store == "hidden":
                hidden[t1] = pack(run)
            run_pos = t1
        elif op == "backward":
            i = act[1]
            if i != nxt:
                raise RuntimeError(f"budgeted_backward: {act} out of order, expected step {nxt}")
            if i in internal:
                g = internal.pop(i)
            elif run_pos == i and run is not None:
                g = with_graph(run, i)
            else:
                raise RuntimeError(f"budgeted_backward: {act} needs h_{i}, running state at {run_pos}")
            losses[i] = g.loss.detach()
            grad_out = backprop_step(g, grad_out)
            del g
            run_pos, run = None, None
            nxt -= 1
        elif op == "free":
            del hidden[act[1]]
        else:
            raise RuntimeError(f"budgeted_backward: unknown action {act}")
        account()
    if nxt != -1:
        raise RuntimeError(f"budgeted_backward: steps 0..{nxt} were never backpropagated")
    hidden.clear()
    account()
    pairs = [(s, g) for s, g in zip(state0, grad_out) if g is not None and s.requires_grad]
    if pairs:
        torch.autograd.backward([p[0] for p in pairs], [p[1] for p in pairs])
    return torch.stack(losses).sum()  # type: ignore[arg-type]


def _same(state: State) -> State:
    return state


def _carries_grad(s: Tensor) -> bool:
    return s.is_floating_point() or s.is_complex()


def backprop_step(g: StepGraph, grad_out: tuple[Optional[Tensor], ...]) -> tuple[Optional[Tensor], ...]:
    """Backpropagate one step graph: seeds ``1`` for its loss and `grad_out` for its outputs
    (``None``: no gradient, i.e. zero); accumulates parameter ``.grad``; returns dL/d(inputs)."""
    if len(g.outputs) != len(grad_out):
        raise ValueError(f"step: returned {len(g.outputs)} state tensors, expected {len(grad_out)}")
    tensors: list[Tensor] = []
    grads: list[Tensor] = []
    if g.loss.requires_grad:
        tensors.append(g.loss)
        grads.append(torch.ones_like(g.loss))
    for o, go in zip(g.outputs, grad_out):
        if go is not None and o.requires_grad:
            tensors.append(o)
            grads.append(go)
    if tensors:
        torch.autograd.backward(tensors, grads)
    return tuple(x.grad if x.requires_grad else None for x in g.inputs)


def _check_T(T: int) -> None:
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T: expected an integer >= 1, got {T!r}")

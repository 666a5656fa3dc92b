"""Optimal recompute schedules for memory-budgeted BPTT (Gruslys, Munos, Danihelka, Lanctot and
Graves, "Memory-Efficient Backpropagation Through Time", NeurIPS 2016). Pure Python and NumPy.

Model
-----
A sequence of ``T`` steps; step ``i`` (0-based) maps the hidden state ``h_i`` to ``h_{i+1}``.
The *hidden state* is what the next step needs (1 memory unit). The *internal state* of step
``i`` is everything its backward pass needs (its autograd graph, including its output
``h_{i+1}``), ``alpha`` units. Backpropagating step ``i`` needs either its stored internal state,
or ``h_i`` and one forward evaluation of step ``i`` that rebuilds the graph and is backpropagated
at once.

Cost convention (the paper's): ``C`` counts *forward step evaluations in total*, the initial
forward sweep and every recomputation included, the graph-building evaluation just before a
step's backward included. Full BPTT (every internal state kept) costs ``T``; backward
evaluations are ``T`` under every policy and are not counted.

Memory convention (one unit for all three policies, in hidden-state sizes): the live stored
items, i.e. the initial state ``h_0`` (1 unit, live for the whole run: the caller owns it),
every stored hidden state (1 unit) and every stored internal state (``a = ceil(alpha)`` units).
Not counted, as in the paper: the running state of a forward sweep and the graph of the single
step being backpropagated (working memory of one step, the same under every policy).
``C(t, m)`` below is the cost of backpropagating a sub-sequence of ``t`` steps whose start state
is live, with ``m`` units that include that start state.

BPTT-HSM (hidden states only; the paper's eq. for HSM, its boundary conditions)::

    C(0, m) = 0,  C(1, m) = 1,  C(t, 1) = t (t + 1) / 2,
    C(t, m) = min_{1 <= y < t} [ y + C(t - y, m - 1) + C(y, m) ]

(forward ``y`` steps and keep ``h_y``; solve the right part with one unit less; free ``h_y``;
solve the left part with ``m``). Equivalent to Griewank's binomial optimum for checkpointing
(REVOLVE): with ``r`` the integer with ``binom(m + r - 1, r - 1) < t <= binom(m + r, r)``,
``C(t, m) = t + r t - binom(m + r, r - 1)``.

BPTT-ISM (internal states only). The paper states it with ``n`` internal-state slots, the slot of
the step being backpropagated included and the start state free::

    C_I(0, n) = 0,  C_I(t, 1) = t (t + 1) / 2,  C_I(t, n) = t for n >= t,
    C_I(t, n) = min_{1 <= y <= t} [ y + C_I(t - y, n - 1) + C_I(y - 1, n) ]

(forward ``y`` steps, the last with its graph kept; solve the right part, which starts from the
output stored in that internal state, with one slot less; backpropagate step ``y`` from memory at
no forward cost; solve the left part with ``n``). In the units above this is
``C_ISM(t, m) = C_I(t, 1 + (m - 1) // a)``, computed as

    C(t, m) = min( t + C(t - 1, m),                                         # y = t: no store
                   min_{1 <= y < t} [ y + C(t - y, m - a) + C(y - 1, m) ] )  # internal at y

BPTT-MSM (mixed; at each split either kind, whichever is cheaper)::

    Q_H(t, m) = min_{1 <= y < t} [ y + C(t - y, m - 1) + C(y, m) ]
    Q_I(t, m) = min_{1 <= y <= t} [ y + C(t - y, m - a) + C(y - 1, m) ]
    C(t, m)   = min(Q_H(t, m), Q_I(t, m)),   C(0, m) = 0, C(1, m) = 1, C(t, 1) = t (t + 1) / 2

with ``C(t, m) = inf`` for ``m < 1``. ``Q_I``'s ``y = t`` term (keep the last step's graph) is the
same as backpropagating it as working memory, so it is taken as ``t + C(t - 1, m)`` at no
storage. The accounting is exact: during the right part of ``Q_I`` the parent's start (1),
the internal state (a) and the right part's own stores (``<= m - a - 1``) add up to ``<= m``.

Optimality (checked by exhaustive search in tests/test_budgeted_bptt.py, T <= 8): all three
DPs are optimal over every schedule that keeps each stored state until it can no longer be
used. Dropping a state earlier cannot help HSM or ISM, but can beat the mixed recursion by one
memory unit: drop a sub-sequence's start ``h_s`` once step ``s`` is kept as an internal state
(e.g. ``a = 3, T = 7, m = 4``: 13 instead of 14). That saves memory only when the step's graph
does not itself save its input (a matmul with ``h_s`` does), so the paper's recursion is kept.

Example, T = 1000: HSM with 50 hidden states costs 2948 forward evaluations (2.95 T); ISM with
50 internal states (5% of full BPTT's 1000; ``m = 1 + 49 a``) costs 1950 (1.95 T), i.e. 1.32
times full BPTT's time if a backward step costs two forward steps; mixed is never worse.

Ties are broken towards storing nothing, then towards a hidden state (less memory).
Non-integer ``alpha`` is rounded up (``a = ceil(alpha)``) so the budget is never exceeded.

Schedule actions (tuples; state indices 0..T, step indices 0..T-1):

- ``('load', s)``: the running state becomes ``h_s`` (a stored hidden state, or the output of the
  stored internal state of step ``s - 1``).
- ``('forward', t0, t1, store)``: run steps ``t0 .. t1-1`` from the running state ``h_{t0}``;
  ``store`` is ``None``, ``'hidden'`` (keep ``h_{t1}``) or ``'internal'`` (evaluate step
  ``t1 - 1`` with its graph and keep it). Costs ``t1 - t0``.
- ``('backward', i)``: backpropagate step ``i``: from its stored internal state (cost 0, which
  frees it) or else from the running state ``h_i`` (cost 1).
- ``('free', s)``: drop the stored hidden state ``h_s``.

``h_0`` is stored before the first action and released by the executor at the end.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional, Union

import numpy as np

Policy = Literal["hsm", "ism", "mixed"]
Store = Optional[Literal["hidden", "internal"]]
Action = Union[tuple[str, int], tuple[str, int, int, Store]]

NONE, HIDDEN, INTERNAL = 0, 1, 2
"""Codes of ``Plan.choice``: at ``(t, m)`` store nothing (``split = t``), a hidden state or an
internal state after ``split`` steps."""

_POLICIES = ("hsm", "ism", "mixed")


def internal_units(alpha: float) -> int:
    """Memory units of one internal state: ``ceil(alpha)`` (``alpha >= 1``)."""
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 1):
        raise ValueError(f"alpha: expected a finite number >= 1 (an internal state holds its "
                         f"output hidden state), got {alpha!r}")
    return int(math.ceil(alpha - 1e-9))


def useful_memory(T: int, policy: Policy, a: int) -> int:
    """Units beyond which more memory cannot lower the cost: ``h_0 .. h_{T-1}`` for HSM,
    ``h_0`` plus ``T - 1`` internal states otherwise."""
    return T if policy == "hsm" else 1 + (T - 1) * a


def cost_tables(T: int, slots: int, policy: Policy, alpha: float = 5.0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Solve the dynamic program of `policy` (module docstring) for every ``t <= T``, ``m <= slots``.

    Returns ``(cost, choice, split)``, arrays of shape ``(T + 1, slots + 1)``: ``cost[t, m]`` is
    ``C(t, m)`` (float, ``inf`` where infeasible, i.e. ``m = 0``), ``choice`` the kind of store
    (`NONE`, `HIDDEN`, `INTERNAL`) and ``split`` the ``y`` of the optimal first split.
    O(T^2 slots) time, vectorised over ``y`` and ``m``.
    """
    _check(T, slots, policy)
    a = internal_units(alpha)
    M = slots
    # float32 is exact for integers below 2**24; every finite sum below is <= T (T + 2)
    dt = np.float32 if T * (T + 2) < 2 ** 24 else np.float64
    C = np.full((T + 1, M + 1), np.inf, dt)
    choice = np.zeros((T + 1, M + 1), np.int8)
    split = np.zeros((T + 1, M + 1), np.int32)
    C[0, 1:] = 0
    if T >= 1:
        C[1, 1:] = 1
        split[1, 1:] = 1
    use_h = policy in ("hsm", "mixed") and M >= 2
    use_i = policy in ("ism", "mixed") and M >= a + 1
    cols = np.arange(M)
    ys_all = np.arange(T + 1, dtype=dt)[:, None]
    buf = np.empty((max(T - 1, 1), M), dt)
    for t in range(2, T + 1):
        ys = ys_all[1:t]
        best = t + C[t - 1, 1:]                       # store nothing: t + C(t-1, m)
        kind = np.full(M, NONE, np.int8)
        arg = np.full(M, t, np.int32)
        if use_h:                                     # rows y = 1..t-1, columns m = 1..M
            tot = np.add(C[t - 1:0:-1, 0:M], C[1:t, 1:M + 1], out=buf[:t - 1])
            tot += ys
            idx = tot.argmin(axis=0)
            val = tot[idx, cols]
            better = val < best
            best = np.where(better, val, best)
            kind[better] = HIDDEN
            arg[better] = idx[better] + 1
        if use_i:                                     # rows y = 1..t-1, columns m = a+1..M
            tot = np.add(C[t - 1:0:-1, 1:M - a + 1], C[0:t - 1, a + 1:M + 1],
                         out=buf[:t - 1, :M - a])
            tot += ys
            idx = tot.argmin(axis=0)
            val = tot[idx, cols[: M - a]]
            sub = best[a:]
            better = val < sub
            best[a:] = np.where(better, val, sub)
            kind[a:][better] = INTERNAL
            arg[a:][better] = idx[better] + 1
        C[t, 1:] = best
        choice[t, 1:] = kind
        split[t, 1:] = arg
    C = C.astype(np.float64)
    return C, choice, split


@dataclass(frozen=True, eq=False)
class Plan:
    """An optimal schedule for ``T`` steps under a budget of ``slots`` hidden-state units.

    ``cost``: forward step evaluations (module docstring; full BPTT = T). ``memory``: peak live
    units of the schedule (``<= slots``). ``internal_units``: units of one internal state.
    ``costs``, ``choice``, ``split``: the DP tables, shape ``(T + 1, M + 1)`` with
    ``M = min(slots, useful_memory(T))``.
    """

    T: int
    slots: int
    policy: Policy
    alpha: float
    internal_units: int
    cost: int
    memory: int
    costs: np.ndarray = field(repr=False)
    choice: np.ndarray = field(repr=False)
    split: np.ndarray = field(repr=False)

    @property
    def table_slots(self) -> int:
        return self.costs.shape[1] - 1

    def schedule(self) -> list[Action]:
        """The schedule as a flat list of actions (module docstring)."""
        a = self.internal_units
        out: list[Action] = []
        # explicit stack (recursion would be T deep): ('solve', s, t, m) or ('emit', action)
        stack: list[tuple] = [("solve", 0, self.T, self.table_slots)]
        while stack:
            item = stack.pop()
            if item[0] == "emit":
                out.append(item[1])
                continue
            _, s, t, m = item
            if t == 0:
                continue
            kind, y = int(self.choice[t, m]), int(self.split[t, m])
            todo: list[tuple]
            if kind == NONE:
                todo = [("emit", ("load", s))]
                if t > 1:
                    todo.append(("emit", ("forward", s, s + t - 1, None)))
                todo += [("emit", ("backward", s + t - 1)), ("solve", s, t - 1, m)]
            elif kind == HIDDEN:
                todo = [("emit", ("load", s)), ("emit", ("forward", s, s + y, "hidden")),
                        ("solve", s + y, t - y, m - 1), ("emit", ("free", s + y)),
                        ("solve", s, y, m)]
            else:
                todo = [("emit", ("load", s)), ("emit", ("forward", s, s + y, "internal")),
                        ("solve", s + y, t - y, m - a), ("emit", ("backward", s + y - 1)),
                        ("solve", s, y - 1, m)]
            stack.extend(reversed(todo))
        return out


def simulate(actions: list[Action], T: int, internal_units: int = 1) -> tuple[int, int]:
    """Run a schedule abstractly, checking that every action is legal; returns
    ``(forward_evaluations, peak_memory_units)`` under the module's conventions."""
    hidden = {0}
    internal: set[int] = set()
    running: Optional[int] = 0
    nxt = T - 1                       # the next step to backpropagate
    cost = 0
    peak = 1
    for act in actions:
        op = act[0]
        if op == "load":
            s = act[1]
            if s not in hidden and (s - 1) not in internal:
                raise RuntimeError(f"schedule: {act} loads a state that is not stored")
            running = s
        elif op == "forward":
            _, t0, t1, store = act
            if running != t0 or not t0 < t1 <= T:
                raise RuntimeError(f"schedule: {act} with the running state at {running}")
            cost += t1 - t0
            running = t1
            if store == "hidden":
                hidden.add(t1)
            elif store == "internal":
                internal.add(t1 - 1)
            elif store is not None:
                raise RuntimeError(f"schedule: {act} has an unknown store")
        elif op == "backward":
            i = act[1]
            if i != nxt:
                raise RuntimeError(f"schedule: {act} out of order, expected step {nxt}")
            if i in internal:
                internal.discard(i)
            elif running == i:
                cost += 1
            else:
                raise RuntimeError(f"schedule: {act} needs h_{i}, running state at {running}")
            running = None
            nxt -= 1
        elif op == "free":
            if act[1] not in hidden:
                raise RuntimeError(f"schedule: {act} frees a state that is not stored")
            hidden.discard(act[1])
        else:
            raise RuntimeError(f"schedule: unknown action {act}")
        peak = max(peak, len(hidden) + internal_units * len(internal))
    if nxt != -1:
        raise RuntimeError(f"schedule: steps 0..{nxt} were never backpropagated")
    return cost, peak


def plan(T: int, slots: int, policy: Policy, alpha: float = 5.0) -> Plan:
    """The optimal schedule of `policy` for ``T`` steps and ``slots`` memory units.

    `slots` counts hidden-state sizes (``h_0`` included, module docstring); `alpha` is the size
    of an internal state in hidden-state sizes (only 'ism' and 'mixed' use it; the default 5
    is only an illustration: measure yours, e.g. with `slots_for_bytes`). 'ism' needs
    ``slots >= 1 + ceil(alpha)`` to store any internal state; below that it recomputes from
    ``h_0`` for every step (cost ``T (T + 1) / 2``), like every policy at ``slots = 1``.
    """
    _check(T, slots, policy)
    a = internal_units(alpha)
    M = min(slots, useful_memory(T, policy, a))
    C, choice, split = cost_tables(T, M, policy, alpha)
    p = Plan(T=T, slots=slots, policy=policy, alpha=float(alpha), internal_units=a,
             cost=int(C[T, M]), memory=0, costs=C, choice=choice, split=split)
    cost, peak = simulate(p.schedule(), T, a)
    if cost != p.cost or peak > slots:
        raise RuntimeError(f"plan: schedule costs {cost} (DP {p.cost}), peak {peak} > {slots}")
    object.__setattr__(p, "memory", peak)
    return p


def slots_for_bytes(budget_bytes: int, bytes_per_hidden_state: int,
                    bytes_per_internal_state: int) -> tuple[int, float]:
    """``(slots, alpha)`` for `plan` from a byte budget for stored states (``h_0`` included; the
    graph of the step being backpropagated is working memory outside the budget):
    ``slots = budget // hidden``, ``alpha = max(1, internal / hidden)``."""
    for name, v in (("budget_bytes", budget_bytes), ("bytes_per_hidden_state", bytes_per_hidden_state),
                    ("bytes_per_internal_state", bytes_per_internal_state)):
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name}: expected a non-negative integer, got {v!r}")
    if bytes_per_hidden_state == 0:
        raise ValueError("bytes_per_hidden_state: expected > 0, got 0")
    return int(budget_bytes // bytes_per_hidden_state), max(
        1.0, bytes_per_internal_state / bytes_per_hidden_state)


def _check(T: int, slots: int, policy: str) -> None:
    if not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"T: expected an integer >= 1, got {T!r}")
    if not isinstance(slots, (int, np.integer)) or slots < 1:
        raise ValueError(f"slots: expected an integer >= 1 (h_0 takes one), got {slots!r}")
    if policy not in _POLICIES:
        raise ValueError(f"policy: expected one of {_POLICIES}, got {policy!r}")

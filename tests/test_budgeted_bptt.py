"""Memory-budgeted BPTT (Gruslys et al. 2016): the planner's dynamic programs against brute force
and closed forms, and the executor's gradients against full BPTT."""
from __future__ import annotations

import functools
import math
import weakref
from collections import deque
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from training.budget.execute import ExecStats, budgeted_backward, full_bptt_backward
from training.budget.schedule import cost_tables, plan, simulate, slots_for_bytes

POLICIES = ("hsm", "ism", "mixed")


# ----------------------------------------------------------------------------- planner

def brute_force_cost(T: int, m: int, policy: str, a: int = 1, discard: bool = False) -> int:
    """Fewest forward evaluations over *every* schedule, by 0-1 breadth-first search.

    The game has the planner's conventions (training/checkpoint_plan.py): stored hidden states
    (``h_0`` included, held for the whole run since the caller owns it) cost 1 unit, stored
    internal states ``a`` units, at most ``m`` units live; a running state advances one step per
    unit of cost and can be reloaded from any stored state for free; step ``b - 1`` is
    backpropagated from its stored internal state (free) or from ``h_{b-1}`` in the running
    state (cost 1). 'hsm' stores only hidden, 'ism' only internal states. Stored states are
    released when they can no longer be used (the DP's schedules do the same); with
    ``discard=True`` any state may also be dropped earlier (``h_0`` excepted).
    State: (hidden bitmask, internal bitmask by step, running position or -1, steps left).
    """
    allow_h, allow_i = policy in ("hsm", "mixed"), policy in ("ism", "mixed")

    def canon(H: int, I: int, r: int, b: int) -> tuple[int, int, int, int]:
        mask = (1 << b) - 1          # states >= b and steps >= b can no longer be used
        return H & mask, I & mask, (r if r < b else -1), b

    start = canon(1, 0, 0, T)
    dist = {start: 0}
    queue = deque([(0, start)])
    while queue:
        d, node = queue.popleft()
        if dist[node] < d:
            continue
        H, I, r, b = node
        if b == 0:
            return d
        units = bin(H).count("1") + a * bin(I).count("1")
        moves: list[tuple[int, tuple[int, int, int, int]]] = []
        for s in range(b):
            if H >> s & 1:
                moves.append((0, (H, I, s, b)))                       # load h_s
                if discard and s > 0:
                    moves.append((0, (H & ~(1 << s), I, r, b)))
            if I >> s & 1:
                moves.append((0, (H, I, s + 1, b)))                   # load output of step s
                if discard:
                    moves.append((0, (H, I & ~(1 << s), r, b)))
        if r >= 0:
            if allow_h and not H >> r & 1 and units + 1 <= m:
                moves.append((0, (H | 1 << r, I, r, b)))              # store h_r
            if r + 1 <= b - 1:
                moves.append((1, (H, I, r + 1, b)))                   # plain forward
            if allow_i and not I >> r & 1 and units + a <= m:
                moves.append((1, (H, I | 1 << r, r + 1, b)))          # forward, keep graph
        if I >> (b - 1) & 1:
            moves.append((0, (H, I & ~(1 << (b - 1)), r, b - 1)))     # backward from memory
        elif r == b - 1:
            moves.append((1, (H, I, r, b - 1)))                       # recompute + backward
        for w, nxt in moves:
            nxt = canon(*nxt)
            if d + w < dist.get(nxt, 1 << 60):
                dist[nxt] = d + w
                (queue.appendleft if w == 0 else queue.append)((d + w, nxt))
    raise AssertionError("unreachable: recomputing from h_0 always works")


@pytest.mark.parametrize("policy,a", [("hsm", 1), ("ism", 1), ("ism", 2), ("ism", 3),
                                      ("mixed", 1), ("mixed", 2), ("mixed", 3)])
def test_dp_cost_equals_brute_force(policy: str, a: int) -> None:
    C, _, _ = cost_tables(8, 6, policy, a)
    for T in range(1, 9):
        for m in range(1, 7):
            assert C[T, m] == brute_force_cost(T, m, policy, a), (T, m)


def test_early_discards_beat_the_papers_mixed_recursion_by_one_unit() -> None:
    """With early discards allowed, HSM and ISM stay optimal; the mixed recursion can lose: it
    keeps a sub-sequence's start h_s while that start's own step is kept as an internal state.
    (When the step's graph saves its input, as a matmul does, discarding h_s frees nothing.)"""
    for policy, a in [("hsm", 1), ("ism", 2), ("mixed", 2), ("mixed", 3)]:
        C, _, _ = cost_tables(7, 5, policy, a)
        for T in range(1, 8):
            for m in range(1, 6):
                bf = brute_force_cost(T, m, policy, a, discard=True)
                assert bf <= C[T, m]
                if policy != "mixed":
                    assert bf == C[T, m], (policy, T, m)
    assert brute_force_cost(7, 4, "mixed", 3, discard=True) == 13
    assert cost_tables(7, 4, "mixed", 3)[0][7, 4] == 14


def test_one_slot_closed_form_and_plenty_of_memory() -> None:
    for policy in POLICIES:
        C, _, _ = cost_tables(60, 1, policy, 2)
        t = np.arange(61)
        assert np.array_equal(C[:, 1], t * (t + 1) / 2)
    C, _, _ = cost_tables(60, 60, "hsm")
    assert all(C[t, m] == 2 * t - 1 for t in range(1, 61) for m in range(t, 61))
    for a in (1, 2, 3):        # every step evaluated once: full BPTT's cost
        C, _, _ = cost_tables(30, 1 + 29 * a, "ism", a)
        assert all(C[t, 1 + (t - 1) * a] == t for t in range(1, 31))


def _revolve_cost(t: int, m: int) -> int:
    """Griewank's binomial optimum (REVOLVE, with ``m`` checkpoints including the start)
    plus the ``t`` graph-building evaluations: r with binom(m+r-1, r-1) < t <= binom(m+r, r)."""
    r = 0
    while math.comb(m + r, r) < t:
        r += 1
    return t + r * t - (math.comb(m + r, r - 1) if r >= 1 else 0)


def test_hsm_equals_revolve_closed_form_up_to_T3000() -> None:
    C, _, _ = cost_tables(3000, 60, "hsm")
    rng = np.random.default_rng(0)
    pts = [(t, m) for t in (1, 2, 3, 999, 1000, 3000) for m in (1, 2, 7, 50, 60)]
    pts += [(int(t), int(m)) for t, m in zip(rng.integers(1, 3001, 300), rng.integers(1, 61, 300))]
    for t, m in pts:
        assert C[t, m] == _revolve_cost(t, m), (t, m)
    small = [(t, m) for t in range(1, 120) for m in range(1, 12)]
    assert all(C[t, m] == _revolve_cost(t, m) for t, m in small)


@functools.lru_cache(maxsize=None)
def _paper_ism(t: int, n: int) -> float:
    """The paper's ISM recursion in its units: n internal-state slots, the step being
    backpropagated included, the start state free."""
    if t == 0:
        return 0
    if n == 0:
        return math.inf
    return min(y + _paper_ism(t - y, n - 1) + _paper_ism(y - 1, n) for y in range(1, t + 1))


@pytest.mark.parametrize("a", [1, 2, 3])
def test_ism_equals_the_papers_formulation(a: int) -> None:
    C, _, _ = cost_tables(40, 30, "ism", a)
    for t in range(41):
        for m in range(1, 31):
            assert C[t, m] == _paper_ism(t, 1 + (m - 1) // a), (t, m)


def test_monotone_and_mixed_dominates() -> None:
    for a in (1, 2, 5):
        tabs = {p: cost_tables(150, 40, p, a)[0][1:, 1:] for p in POLICIES}
        for C in tabs.values():
            assert np.all(np.diff(C, axis=1) <= 0)      # more memory never costs more
            assert np.all(np.diff(C, axis=0) >= 1)      # a longer sequence costs more
        assert np.all(tabs["mixed"] <= np.minimum(tabs["hsm"], tabs["ism"]))


def test_paper_example_T1000() -> None:
    """T = 1000. Full BPTT keeps 1000 internal states; 95% saved = 50 of them (ISM, paper
    units n = 50, i.e. ``m = 1 + 49 a``): 1950 forward evaluations (2T - n), so with a backward
    costing two forwards the time is (1950 + 2000) / 3000 = 1.32 <= 4/3 of full BPTT's
    (1000 + 2000): the abstract's "95% of memory for one third more time". Mixed at that memory
    is no worse. HSM with 50 hidden states costs 2948 (= REVOLVE's optimum), ratio 1.65."""
    T = 1000
    assert plan(T, 50, "hsm").cost == 2948 == _revolve_cost(T, 50)
    for a in (1, 2, 5):
        ism = plan(T, 1 + 49 * a, "ism", a)
        mixed = plan(T, 1 + 49 * a, "mixed", a)
        assert ism.cost == 1950
        assert mixed.cost <= ism.cost
        assert (ism.cost + 2 * T) / (3 * T) <= 4 / 3


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("alpha", [1.0, 2.0, 2.5])
def test_schedules_are_legal_and_meet_budget(policy: str, alpha: float) -> None:
    for T in (1, 2, 3, 7, 40, 301):
        for slots in (1, 2, 3, 4, 7, 12, T, 3 * T):
            p = plan(T, slots, policy, alpha)
            cost, peak = simulate(p.schedule(), T, p.internal_units)
            assert cost == p.cost == int(p.costs[T, p.table_slots])
            assert peak == p.memory <= slots


def test_large_plan_and_helpers() -> None:
    p = plan(3000, 60, "mixed", alpha=3.0)
    assert p.memory <= 60 and p.cost < plan(3000, 60, "hsm").cost
    assert slots_for_bytes(1000, 100, 250) == (10, 2.5)
    assert slots_for_bytes(99, 100, 50) == (0, 1.0)
    for bad in [dict(T=0, slots=3, policy="hsm"), dict(T=5, slots=0, policy="hsm"),
                dict(T=5, slots=3, policy="nope"), dict(T=5, slots=3, policy="ism", alpha=0.5)]:
        with pytest.raises(ValueError):
            plan(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bytes_per_hidden_state"):
        slots_for_bytes(10, 0, 5)


# ----------------------------------------------------------------------------- executor

class _SpikeFastSigmoid(torch.autograd.Function):
    """Heaviside H(u) = [u > 0]; backward dH/du = 1 / (1 + 10 |u|)^2."""

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(u)
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (u,) = ctx.saved_tensors
        return grad / (1.0 + 10.0 * u.abs()) ** 2


class _Tanh(nn.Module):
    """h' = tanh(h W + x_t U + b); loss_t = |h' V - y_t|^2 on every other step."""

    def __init__(self, T: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
        self.W, self.U = nn.Parameter(0.5 * r(6, 6)), nn.Parameter(r(4, 6))
        self.b, self.V = nn.Parameter(0.1 * r(6)), nn.Parameter(r(6, 2))
        self.x, self.y = r(T, 3, 4), r(T, 3, 2)
        self.h0 = nn.Parameter(0.1 * r(3, 6))           # learnable initial state

    def state0(self) -> tuple[torch.Tensor, ...]:
        return (self.h0,)

    def step(self, state: tuple[torch.Tensor, ...], t: int):
        h = torch.tanh(state[0] @ self.W + self.x[t] @ self.U + self.b)
        loss = ((h @ self.V - self.y[t]) ** 2).sum() * float(t % 2 == 0)
        return (h,), loss


class _Spiking(nn.Module):
    """LIF with a hard threshold (fast-sigmoid surrogate), subtractive reset, an integer
    refractory counter and a float spike count that never reaches the loss.

    v' = beta v + (x_t W_in + z W_rec + b) [ref = 0];  z' = H(v' - 1) [ref = 0];
    v' <- v' - z';  ref' = 2 if z' else max(ref - 1, 0);  loss_t = |z' W_out - y_t|^2."""

    def __init__(self, T: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
        self.W_in, self.W_rec = nn.Parameter(0.8 * r(5, 8)), nn.Parameter(0.4 * r(8, 8))
        self.b, self.W_out = nn.Parameter(0.2 + 0.05 * r(8)), nn.Parameter(r(8, 3))
        self.x = (torch.rand(T, 2, 5, generator=g, dtype=torch.float64) < 0.4).double()
        self.y = r(T, 2, 3)

    def state0(self) -> tuple[torch.Tensor, ...]:
        z = torch.zeros(2, 8, dtype=torch.float64)
        return (z.clone(), z.clone(), torch.zeros(2, 8, dtype=torch.int64), z.clone())

    def step(self, state: tuple[torch.Tensor, ...], t: int):
        v, z, ref, count = state
        active = (ref == 0).double()
        v = 0.9 * v + (self.x[t] @ self.W_in + z @ self.W_rec + self.b) * active
        z = _SpikeFastSigmoid.apply(v - 1.0) * active
        v = v - z
        ref = torch.where(z > 0, torch.full_like(ref, 2), (ref - 1).clamp(min=0))
        loss = ((z @ self.W_out - self.y[t]) ** 2).sum()
        return (v, z, ref, count + z), loss


CELLS = {"tanh": _Tanh, "spiking": _Spiking}


@functools.lru_cache(maxsize=None)
def _reference(cell: str, T: int) -> tuple[float, dict[str, torch.Tensor]]:
    model = CELLS[cell](T, seed=T)
    loss = full_bptt_backward(model.step, model.state0(), T)
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _budgeted(cell: str, T: int, p: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor], ExecStats]:
    model = CELLS[cell](T, seed=T)
    stats = ExecStats()
    loss = budgeted_backward(model.step, model.state0(), T, p, stats)
    return loss, {n: q.grad.clone() for n, q in model.named_parameters()}, stats


def _slot_counts(T: int, a: int) -> list[int]:
    many = 1 + (T - 1) * a                              # enough for every policy
    if T >= 200:
        return [1, 4, 9, T, many]
    return sorted({1, 2, 3, 5, 8, T, many})


CASES = [(cell, T, policy, slots)
         for cell in CELLS for T in (1, 2, 7, 50, 200) for policy in POLICIES
         for slots in _slot_counts(T, 2)]


@pytest.mark.parametrize("cell,T,policy,slots", CASES)
def test_gradients_equal_full_bptt(cell: str, T: int, policy: str, slots: int) -> None:
    ref_loss, ref = _reference(cell, T)
    p = plan(T, slots, policy, alpha=2.0)              # type: ignore[arg-type]
    loss, grads, stats = _budgeted(cell, T, p)
    assert loss.item() == ref_loss                      # same per-step values, same summation
    for name, g in ref.items():
        scale = max(g.abs().max().item(), 1e-300)
        assert (grads[name] - g).abs().max().item() <= 1e-10 * scale, name
    assert stats.forward_evals == p.cost
    assert stats.peak_units == p.memory <= slots
    assert stats.peak_hidden <= p.memory
    assert stats.live_hidden == stats.live_internal == 0


def test_spiking_cell_spikes_and_refracts() -> None:
    """Guard against a silent cell: the gradient comparison above must involve spikes."""
    T = 50
    model = _Spiking(T, seed=T)
    state, spikes, refr = model.state0(), 0.0, 0
    with torch.no_grad():
        for t in range(T):
            state, _ = model.step(state, t)
            spikes += state[1].sum().item()
            refr += int((state[2] > 0).sum())
    assert 0.05 * T * 16 < spikes < 0.6 * T * 16 and refr > 0


class _SavedBytes:
    """Bytes of tensors saved by autograd graphs, live and peak, via
    ``torch.autograd.graph.saved_tensors_hooks``: each saved tensor is wrapped at pack time; the
    wrapper dies when its graph is freed (after backward, or when the graph is dropped). Counts
    ``numel * element_size`` of each saved view (a tensor saved twice counts twice)."""

    def __init__(self) -> None:
        self.live = self.peak = 0

    def _release(self, n: int) -> None:
        self.live -= n

    def pack(self, t: torch.Tensor) -> Any:
        box = _Box(t)
        n = t.numel() * t.element_size()
        self.live += n
        self.peak = max(self.peak, self.live)
        weakref.finalize(box, self._release, n)
        return box

    @staticmethod
    def unpack(box: Any) -> torch.Tensor:
        return box.t

    def hooks(self) -> Any:
        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)


class _Box:
    def __init__(self, t: torch.Tensor) -> None:
        self.t = t


@pytest.mark.parametrize("policy,slots", [("hsm", 6), ("ism", 11), ("mixed", 11)])
def test_peak_saved_graph_memory(policy: str, slots: int) -> None:
    T = 200
    model = _Spiking(T, seed=T)
    per_step = 0                                         # the graph of one step, as the executor builds it
    state = model.state0()
    for t in range(T):
        leaves = tuple(s.detach().requires_grad_(s.is_floating_point()) for s in state)
        one = _SavedBytes()
        with one.hooks():
            out, loss = model.step(leaves, t)
        per_step = max(per_step, one.peak)
        state = tuple(o.detach() for o in out)
        del out, loss
    full = _SavedBytes()
    with full.hooks():
        full_bptt_backward(model.step, model.state0(), T)
    assert full.live == 0 and full.peak >= (T - 1) * per_step   # step 0: h_0 needs no grad
    model.zero_grad()
    p = plan(T, slots, policy, alpha=2.0)                # type: ignore[arg-type]
    stats = ExecStats()
    bud = _SavedBytes()
    with bud.hooks():
        budgeted_backward(model.step, model.state0(), T, p, stats)
    assert bud.live == 0
    # stored internal states plus the one graph being backpropagated, nothing else
    assert bud.peak <= (stats.peak_internal + 1) * per_step
    assert stats.peak_hidden + p.internal_units * stats.peak_internal >= stats.peak_units
    assert stats.peak_units <= slots
    assert bud.peak * 20 < full.peak
    if policy == "hsm":
        assert stats.peak_internal == 0 and bud.peak == per_step

"""The per-step local quantities every online rule here shares (OTTT, e-prop, rate-based BP).

For a step ``t`` of an SNN, with ``u = v~ - A`` the spike function's argument::

    psi[t]   = dz[t]/dv~[t]          the surrogate's pseudo-derivative at u, 0 while refractory
    a[t]     = beta*a[t-1] + c[t],  c[t] = alpha*c[t-1] + s[t]     (KernelTrace: the membrane's
                                    response to an input s)
    dl_t/dv  from the Objective's own loss (readout_error)

and the projections seen from the neurons (Route) with the feed-forward structure and the
lags to the readout (LocalView).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from neurosim.errors import NetworkError
from neurosim.models import NeuronState, heaviside, neuron_step

from ..layers import SNN, SNNState
from ..surrogate import pseudo_derivative
from .base import Objective



def step_with_u(model: SNN, state: SNNState, sources: torch.Tensor) -> tuple[SNNState, torch.Tensor]:
    """`model.step` without a graph, also returning the spike function's argument
    ``u = v~ - A`` (B, N) that the surrogate derivative needs (tests check it equals model.step);
    the fused kernel computes both where the model uses it (SNN.uses_fused)."""
    x = model.synaptic_input(state.history)
    if model.uses_fused(x):
        neurons, u = model.fused_neurons(state.neurons, x)
    else:
        seen: list[torch.Tensor] = []

        def spike(arg: torch.Tensor) -> torch.Tensor:
            seen.append(arg)
            return heaviside(arg)

        neurons = neuron_step(model.params, state.neurons, x, spike)
        u = seen[0]
    src = sources if sources.dtype == neurons.z.dtype else sources.to(neurons.z.dtype)
    z_all = torch.cat([neurons.z, src], dim=1)
    return SNNState(neurons, (z_all,) + state.history[:-1]), u


def psi(model: SNN, u: torch.Tensor, prev: NeuronState) -> torch.Tensor:
    """``psi[t] = dz[t]/dv~[t]``: the surrogate's pseudo-derivative at u, zero while refractory
    (r[t-1] > 0) and for non-spiking neurons, exactly the factor neuron_step applies to H."""
    d = pseudo_derivative(model.surrogate, u, **model.spike_fn.params)  # type: ignore[attr-defined]
    return d * ((prev.r <= 0) * model.p_spiking)


def readout_error(obj: Objective, state: SNNState, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss_t, dl_t/dv[t] of all neurons (B, N)) from the Objective's own loss, by autograd on
    a one-step graph that is freed before returning."""
    (out,) = readout_errors(obj, [(t, state.neurons)])
    return out


def readout_errors(obj: Objective, steps: list[tuple[int, NeuronState]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`readout_error` of several steps (t, neurons after step t) with one autograd call."""
    v = torch.stack([n.v.detach() for _, n in steps]).requires_grad_(True)
    with torch.enable_grad():
        losses = [obj(SNNState(n._replace(v=v[k]), ()), t) for k, (t, n) in enumerate(steps)]
        (g,) = torch.autograd.grad(torch.stack(losses).sum(), v)
    return [(loss.detach(), g[k]) for k, loss in enumerate(losses)]


class KernelTrace:
    """``c = alpha*c + s``, ``a = beta*a + c`` (one stage when alpha = 0): `a` is the membrane's
    response ``sum_k K(k) s[t-k]`` to an input s (the current and membrane decays of neuron_step)."""

    def __init__(self, alpha: float, beta: float) -> None:
        self.alpha, self.beta = alpha, beta
        self.c: Optional[torch.Tensor] = None
        self.value: Optional[torch.Tensor] = None

    def update(self, s: torch.Tensor) -> torch.Tensor:
        if self.value is None:
            self.c, self.value = s, s
            return s
        if self.alpha != 0.0:
            self.c = torch.add(s, self.c, alpha=self.alpha)  # type: ignore[arg-type]
            s = self.c
        self.value = torch.add(s, self.value, alpha=self.beta)
        return self.value


@dataclass(frozen=True)
class Route:
    """One projection seen from the neurons: columns `pre` of the spike history (global index),
    neurons `post`, scalar `delay`, its weight and sparsity mask; pre_pop is None for inputs."""

    name: str
    index: int
    pre: slice
    post: slice
    pre_pop: Optional[str]
    post_pop: str
    delay: int
    weight: torch.nn.Parameter
    mask: Optional[torch.Tensor]
    feedforward: bool

    def effective(self) -> torch.Tensor:
        """The weight as the forward pass uses it (masked for CSR projections)."""
        return self.weight if self.mask is None else self.weight * self.mask

    @property
    def dense(self) -> bool:
        """True: the projection is the matrix `effective()` (False: an operator, see OpRoute)."""
        return True

    def backprop(self, dx: torch.Tensor) -> torch.Tensor:
        """The error at the presynaptic spikes, ``dx @ W^T`` (B, n_pre), for `dx` (B, n_post)."""
        return dx @ self.effective().T

    def accumulate(self, a: torch.Tensor, dx: torch.Tensor) -> None:
        """``grad W += a^T @ dx`` for presynaptic activity `a` (B, n_pre) and error `dx` (B, n_post)."""
        self.add_grad(a.T @ dx)

    def add_grad(self, g: torch.Tensor) -> None:
        """Accumulate `g` (n_pre, n_post) into ``weight.grad`` (masked like the forward pass)."""
        if self.mask is not None:
            g = g * self.mask
        w = self.weight
        if w.grad is None:
            w.grad = g.detach().clone(memory_format=torch.contiguous_format)  # autograd's layout
        else:
            w.grad.add_(g)


class LocalView:
    """Routes, population kernels and the feed-forward structure of an SNN, for local rules; a
    model without a Network (training.layered.LayeredSNN) gives its routes by ``local_routes()``."""

    def __init__(self, model: SNN, readout: str = "out") -> None:
        own = hasattr(model, "local_routes")
        pops = list(model.slices) if own else [p.name for p in model.network.populations]
        if readout not in pops:
            raise NetworkError("readout", f"the network has no population {readout!r} to read out")
        self.model, self.readout = model, readout
        self.slices = {p: slice(*model.slices[p]) for p in pops}
        if own:
            self.routes = model.local_routes()
            self.lag = self._lags()
            return
        net = model.network
        edges = {(j.pre, j.post) for j in net.projections if j.pre in pops}
        reach = {p: _reachable(p, edges) for p in pops}
        routes = []
        by_name = {j.name: (k, j) for k, j in enumerate(net.projections)}
        for name, pre, post, per_delay in model.routes:  # a subclass may route some projections itself
            k, proj = by_name[name]
            if len(per_delay) != 1:
                raise NetworkError(f"projections.{name}.delay",
                                   "local rules need one delay per projection (got per-synapse delays)")
            d, mask_name = per_delay[0]
            pre_pop = proj.pre if proj.pre in pops else None
            ff = pre_pop is not None and pre_pop != proj.post and pre_pop not in reach[proj.post]
            routes.append(Route(name, k, slice(*pre), slice(*post), pre_pop, proj.post, int(d),
                                model.weights[name], getattr(model, mask_name) if mask_name else None, ff))
        self.routes = routes
        self.lag = self._lags()

    def _lags(self) -> dict[str, int]:
        """Steps from each population's spikes to the readout along feed-forward projections."""
        lag = {self.readout: 0}
        changed = True
        while changed:
            changed = False
            for r in self.routes:
                if r.feedforward and r.post_pop in lag:
                    want = lag[r.post_pop] + r.delay
                    if r.pre_pop in lag and lag[r.pre_pop] != want:
                        raise NetworkError(f"projections.{r.name}.delay",
                                           f"population {r.pre_pop!r} reaches the readout by paths of "
                                           f"{lag[r.pre_pop]} and {want} steps; spatial error propagation "
                                           "needs one path length per population")
                    if r.pre_pop not in lag:
                        lag[r.pre_pop] = want  # type: ignore[index]
                        changed = True
        return lag

    def param(self, field: str, pop: str) -> torch.Tensor:
        """Per-neuron parameter `field` of population `pop`, shape (n,) (current values, no graph)."""
        return getattr(self.model.params, field)[self.slices[pop]].detach()

    def kernel(self, pop: str) -> tuple[float, float]:
        """(alpha, beta) of `pop`, which must be the same for all its neurons."""
        out = []
        for f in ("alpha", "beta"):
            x = self.param(f, pop)
            if not bool(torch.all(x == x[0])):
                raise NetworkError(f"populations.{pop}.model.{f}",
                                   "local rules need one decay per population (per-neuron values differ)")
            out.append(float(x[0]))
        return out[0], out[1]

    def routes_into(self, pop: str) -> list[Route]:
        return [r for r in self.routes if r.post_pop == pop]


class OpRoute(Route):
    """A route whose projection is a linear operator ``y = op(z_pre)`` with weight `weight` (None:
    nothing to train, e.g. pooling) rather than a matrix: errors and weight gradients are its
    vector-Jacobian products. `op(pre)` maps (B, n_pre) to (B, n_post)."""

    def __init__(self, op: Any, **fields: Any) -> None:
        super().__init__(**fields)
        object.__setattr__(self, "op", op)

    @property
    def dense(self) -> bool:
        return False

    def effective(self) -> torch.Tensor:
        raise NetworkError(f"projections.{self.name}", "not a matrix (a convolution or pooling operator)")

    def backprop(self, dx: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            z = dx.new_zeros(dx.shape[0], self.pre.stop - self.pre.start).requires_grad_(True)
            (g,) = torch.autograd.grad(self.op(z), z, dx)
        return g

    def accumulate(self, a: torch.Tensor, dx: torch.Tensor) -> None:
        if self.weight is None:
            return
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.op(a), self.weight, dx)
        self.add_grad(g)


def _reachable(start: str, edges: set[tuple[str, str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        a = todo.pop()
        for p, q in edges:
            if p == a and q not in seen:
                seen.add(q)
                todo.append(q)
    return seen

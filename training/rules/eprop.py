"""e-prop (Bellec et al., Nat. Commun. 2020) for recurrent LIF and ALIF populations.

Eligibility traces, forward in time, derived from :func:`neurosim.models.neuron_step`. For a
synapse i -> j of a projection with delay d into a spiking population, with ``h = (i, v~, a)``
the neuron's state before reset (``v~``), and the partial derivatives taken with the spikes
held fixed (the neuron's own reset is a spike path: it belongs to the learning signal, as in the
authors' code, where the reset uses the transmitted spikes and adaptation a local copy)::

    eps_i[t] = alpha * eps_i[t-1] + z_i[t-d]                        (eps_i = z_i[t-d] if alpha = 0)
    eps_a[t] = rho * eps_a[t-1] + adapt_gain * psi[t-1] * (eps_v[t-1] - adapt * eps_a[t-1])
    eps_v[t] = beta * keep[t-1] * eps_v[t-1] + eps_i[t]    if r[t-1] == 0
             = keep[t-1] * eps_v[t-1]                        while refractory (v held)
    e_ji[t]  = gain_j * psi_j[t] * (eps_v[t] - adapt_j * eps_a[t])

``keep = 1`` for the subtractive reset and ``1 - z`` for reset to zero; ``psi[t] = dz[t]/dv~[t]``
is the surrogate derivative (zero while refractory). LIF: ``e = psi * zbar`` with
``zbar = beta*zbar + z_pre``. With the total learning signal ``L_j[t] = dE/dz_j[t]`` (every path
of z_j[t] except the neuron's own adaptation, which eps_a carries), ``dE/dW_ji = sum_t L_j[t]
e_ji[t]`` exactly (paper, eq. 1; tests check it against BPTT to 1e-10 in float64).

Online learning signal (the readout population, LI, kernel ``K`` of its decays, projection
``W_out: p -> out`` with delay ``d_o``)::

    L_j[t] = sum_k B_jk * gain_k * dl_t/dv_out,k[t]         B = W_out (symmetric) or fixed random
    grad W_ji += L_j[t] * ebar_ji[t],      ebar[t] = sum_s K(t - s) e[s - d_o]

which with B = W_out is eq. 1 with the partial ``dE/dz_j[t]`` through the readout only (the
paper's online e-prop; tested to 1e-10). The readout's weights follow their exact local rule
``grad += zbar^T dx_out`` (as OTTT's). Random B ~ N(0, 1/n_pre), like W_out's initialisation.
Spiking populations without a projection to the readout receive no learning signal.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Optional, Union

import torch

from neurosim.errors import NetworkError

from ..layers import SNN, SNNState
from .base import Batch, Objective, Rule, RuleOutput
from .local import KernelTrace, LocalView, Route, psi, readout_error, step_with_u

Scalar = Union[float, torch.Tensor]


def _per_neuron(view: LocalView, field: str, pop: str) -> Scalar:
    """A parameter as a python float when it is the same for every neuron, else (1, 1, n)."""
    x = view.param(field, pop)
    if bool(torch.all(x == x[0])):
        return float(x[0])
    return x.reshape(1, 1, -1)


class EligibilityTraces:
    """Eligibility traces of every projection into the spiking population `pop` (module
    docstring); tensors are (B, n_pre, n_post), or (B, n_pre, 1) where they do not depend on the
    postsynaptic neuron (no refractoriness, subtractive reset, shared decays)."""

    def __init__(self, view: LocalView, pop: str) -> None:
        self.pop, self.sl = pop, view.slices[pop]
        self.routes = view.routes_into(pop)
        p = {f: _per_neuron(view, f, pop) for f in ("alpha", "beta", "rho", "adapt", "adapt_gain")}
        self.alpha, self.beta, self.rho, self.adapt, self.kappa = (
            p["alpha"], p["beta"], p["rho"], p["adapt"], p["adapt_gain"])
        self.gain = view.param("gain", pop)
        self.adaptive = bool(torch.any(view.param("adapt", pop) != 0))
        self.refractory = bool(torch.any(view.param("refractory", pop) > 0))
        self.zero_reset = view.param("reset_zero", pop) > 0
        self.any_zero = bool(torch.any(self.zero_reset))
        self.eps_i: dict[str, Optional[torch.Tensor]] = {r.name: None for r in self.routes}
        self.eps_v: dict[str, Any] = {r.name: 0.0 for r in self.routes}
        self.eps_a: dict[str, Any] = {r.name: 0.0 for r in self.routes}
        self.w: dict[str, Any] = {r.name: None for r in self.routes}  # eps_v - adapt * eps_a
        self.factor: Optional[torch.Tensor] = None  # gain * psi, (B, 1, n_post)
        self.psi_prev: Optional[torch.Tensor] = None

    def update(self, prev: SNNState, psi_all: torch.Tensor) -> None:
        """Advance every trace to the step that produced `psi_all` (B, N) from state `prev`.
        Then ``e[t] = factor * w[name]`` (:meth:`e`); rules use the two factors directly."""
        sl = self.sl
        ps = psi_all[:, sl]
        z_prev = prev.neurons.z[:, sl]
        keep = (1.0 - z_prev * self.zero_reset)[:, None, :] if self.any_zero else None
        active = (prev.neurons.r[:, sl] <= 0)[:, None, :] if self.refractory else None
        for r in self.routes:
            zin = prev.history[r.delay - 1][:, r.pre][:, :, None]
            ev, ea, w_prev = self.eps_v[r.name], self.eps_a[r.name], self.w[r.name]
            if self.adaptive and self.psi_prev is not None:  # rho*ea + kappa*psi[t-1]*(ev - adapt*ea)[t-1]
                kp = (self.kappa * self.psi_prev)[:, None, :]
                ea = kp * w_prev if isinstance(ea, float) else ea.mul_(self.rho).addcmul_(kp, w_prev)  # own tensor
            if self.alpha != 0.0:
                ei = self.eps_i[r.name]
                drive = zin if ei is None else self.alpha * ei + zin
                self.eps_i[r.name] = drive
            else:
                drive = zin
            held = ev * keep if keep is not None else ev
            ev = self.beta * held + drive
            if active is not None:
                ev = torch.where(active, ev, held)
            self.eps_v[r.name], self.eps_a[r.name] = ev, ea
            self.w[r.name] = ev - self.adapt * ea if self.adaptive else ev
        self.factor = (self.gain * ps)[:, None, :]
        self.psi_prev = ps

    def e(self, name: str) -> torch.Tensor:
        """The eligibility trace e[t] of projection `name`, (B, n_pre, n_post)."""
        w = self.w[name]
        return self.factor * w  # type: ignore[operator]


def _filter(cur: dict[str, torch.Tensor], out: dict[str, torch.Tensor], name: str, factor: torch.Tensor,
            w: torch.Tensor, alpha: float, beta: float) -> None:
    """``out[name] = beta*out + (c = alpha*c + factor*w)``: the readout kernel applied to
    e = factor * w, in place (the filters are the rule's own tensors)."""
    if alpha != 0.0:
        if name not in cur:
            cur[name] = factor * w
        else:
            cur[name].mul_(alpha).addcmul_(factor, w)
        if name not in out:
            out[name] = cur[name].clone()
        else:
            out[name].mul_(beta).add_(cur[name])
    elif name not in out:
        out[name] = factor * w
    else:
        out[name].mul_(beta).addcmul_(factor, w)  # the rule's own tensor, read only at loss steps


class EProp(Rule):
    """e-prop with an online learning signal from the readout (module docstring).

    feedback: 'symmetric' (B = W_out, the readout's current weights) or 'random' (a fixed
    N(0, 1/n) matrix per projection to the readout, drawn from `seed`, kept by the rule).
    """

    name = "eprop"

    def __init__(self, feedback: str = "symmetric", seed: int = 0, readout: str = "out") -> None:
        if feedback not in ("symmetric", "random"):
            raise NetworkError("feedback", f"expected 'symmetric' or 'random', got {feedback!r}")
        self.feedback, self.seed, self.readout = feedback, int(seed), readout
        self._random: dict[str, torch.Tensor] = {}

    def feedback_matrix(self, route: Route) -> torch.Tensor:
        """B for the learning signal of route's presynaptic population, (n_pre, n_out)."""
        w = route.effective()
        if self.feedback == "symmetric":
            return w.detach()
        b = self._random.get(route.name)
        if b is None or b.shape != w.shape:
            g = torch.Generator().manual_seed(self.seed * 1000 + route.index)
            b = torch.randn(w.shape, generator=g, dtype=torch.float64) / w.shape[0] ** 0.5
            if route.mask is not None:
                b = b * route.mask.detach().cpu().double()
            self._random[route.name] = b
        return b.to(dtype=w.dtype, device=w.device)

    def backward(self, model: SNN, batch: Batch) -> RuleOutput:
        view = LocalView(model, self.readout)
        out = self.readout
        for r in view.routes:
            if not r.dense:
                raise NetworkError(f"projections.{r.name}", "e-prop's eligibility traces are for dense (recurrent) "
                                                            "LIF/ALIF layers, not convolution or pooling: train "
                                                            "this model with bptt, tbptt, budgeted, ottt or ratebp")
        k_out = view.kernel(out)
        into_out = view.routes_into(out)
        sources = {r.pre_pop for r in into_out if r.pre_pop is not None and r.pre_pop != out}
        learners = {}  # population -> its projection to the readout
        for p in sorted(sources):
            rs = [r for r in into_out if r.pre_pop == p]
            if len(rs) != 1:
                raise NetworkError(f"projections.{rs[1].name}", f"e-prop needs one projection from {p!r} to the "
                                                                f"readout, found {len(rs)}")
            learners[p] = rs[0]
        traces = {p: EligibilityTraces(view, p) for p in learners}
        a_out, b_out = k_out
        ebar_c: dict[str, torch.Tensor] = {}  # the current stage when the readout has alpha > 0
        ebar: dict[str, torch.Tensor] = {}
        pending = {p: deque(maxlen=learners[p].delay) for p in learners}
        zbar = {r.name: KernelTrace(*k_out) for r in into_out}
        fb = {p: self.feedback_matrix(learners[p]) for p in learners}
        gain_out = view.param("gain", out)
        obj = Objective(model, batch, out)
        mask = batch.loss_mask.tolist()
        state = model.initial_state(batch.inputs.shape[1])
        loss = 0.0
        for t in range(batch.steps):
            with torch.no_grad():
                prev = state
                state, u = step_with_u(model, prev, batch.inputs[t])
                ps = psi(model, u, prev.neurons)
                for p, tr in traces.items():
                    tr.update(prev, ps)
                    q = pending[p]
                    if len(q) == q.maxlen:  # e[t - d_o] = factor * w enters the readout's filter
                        factor, ws = q[0]
                        for name, w in ws.items():
                            _filter(ebar_c, ebar, name, factor, w, a_out, b_out)
                    q.append((tr.factor, dict(tr.w)))
                for r in into_out:
                    zbar[r.name].update(prev.history[r.delay - 1][:, r.pre])
            if not mask[t]:
                continue
            loss_t, dv = readout_error(obj, state, t)
            loss += float(loss_t)
            with torch.no_grad():
                dx = gain_out * dv[:, view.slices[out]]
                for r in into_out:
                    r.add_grad(zbar[r.name].value.T @ dx)
                for p, tr in traces.items():
                    sig = dx @ fb[p].T  # (B, n_p)
                    for r in tr.routes:
                        eb = ebar.get(r.name)
                        if eb is not None:
                            r.add_grad(torch.einsum("bj,bij->ij", sig, eb.expand(-1, -1, sig.shape[1])))
        return RuleOutput(loss, obj.readouts)

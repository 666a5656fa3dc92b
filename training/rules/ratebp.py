"""Rate-based backpropagation (Yu et al., NeurIPS 2024); convolutional models (training.layered)
train through the same passes, their conv layers as operators.

Two passes per batch:

1. a spike pass without a graph: the canonical step over all T steps, tracking per neuron the
   rate ``r = mean_t z[t]``, the mean presynaptic activity of every delay slot, and the
   eligibility ``e = dr/dxbar``: the derivative of the rate with respect to a constant shift of
   the neuron's input x at every step (forward mode, the neuron's own reset and adaptation
   included, the other neurons' spikes held fixed; derived from neuron_step)::

       k_i[t] = alpha*k_i[t-1] + gain
       k_a[t] = rho*k_a[t-1] + adapt_gain*zeta[t-1]
       k~[t]  = beta*k_v[t-1] + k_i[t]   (k_v[t-1] while refractory)
       zeta[t] = psi[t] * (k~[t] - adapt*k_a[t])                  (= dz[t]/dxbar)
       k_v[t] = k~[t] - theta*zeta[t]    or   k~[t]*(1 - z[t]) - v~[t]*zeta[t]   (reset to zero)
       e = mean_t zeta[t]

   The readout (LI, no reset) gets its exact local gradient on the way, as in OTTT; its error
   with respect to the presynaptic rates is collected as ``D = sum_t c[t] * gain * dl_t/dv_out[t]``
   with ``c[t]`` the readout kernel's response to a unit rate switched on at the delay.
2. one backward pass through the time-averaged graph, populations in feed-forward order::

       xbar_p = synaptic_input(mean presynaptic activity)[p]     (the model's own linear map)
       r_p    = r_p + e_p * (xbar_p - xbar_p.detach())            (value: the measured rate)
       S      = < synaptic_input(rates)[out], D >,   S.backward()

   Upstream rates enter ``xbar`` with their graph; recurrent projections (which close a cycle)
   and inputs enter as constants. The readout's weights are excluded from this pass.

The graph of pass 2 has no time axis: memory and backward time do not grow with T.
"""
from __future__ import annotations

from typing import Optional

import torch

from neurosim.errors import NetworkError
from neurosim.models import NeuronState

from ..layers import SNN, SNNState
from ..surrogate import pseudo_derivative
from .base import Batch, Objective, Rule, RuleOutput
from .local import KernelTrace, LocalView, readout_errors, step_with_u


@torch.jit.script
def _zeta_recursion(ps_all: torch.Tensor, u_all: Optional[torch.Tensor], r_all: Optional[torch.Tensor],
                    z_all: Optional[torch.Tensor], a_all: Optional[torch.Tensor], k_i: torch.Tensor,
                    k_v: Optional[torch.Tensor], k_a: torch.Tensor, zeta: torch.Tensor, total: torch.Tensor,
                    alpha: torch.Tensor, beta: torch.Tensor, gain: torch.Tensor, rho: torch.Tensor,
                    adapt_gain: torch.Tensor, adapt: torch.Tensor, theta: torch.Tensor, reset_zero: torch.Tensor,
                    has_alpha: bool, has_adapt: bool
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The module docstring's recursion over the steps of a chunk (leading axis of the *_all
    arrays); u_all, z_all, a_all are given only for reset to zero, r_all (r[t-1]) only with
    refractoriness. Returns the updated (k_i, k_v, k_a, zeta, total)."""
    for k in range(ps_all.shape[0]):
        ps = ps_all[k]
        if r_all is not None:
            ps = ps * (r_all[k] <= 0)
        if k_v is None:  # the state before step 0: all derivatives zero
            k_t = k_i
        else:
            if has_alpha:
                k_i = torch.addcmul(gain, alpha, k_i)
            if has_adapt:
                k_a = torch.addcmul(rho * k_a, adapt_gain, zeta)
            k_t = torch.addcmul(k_i, beta, k_v)
            if r_all is not None:
                k_t = torch.where(r_all[k] <= 0, k_t, k_v)
        zeta = ps * torch.addcmul(k_t, adapt, k_a, value=-1.0) if has_adapt else ps * k_t
        k_new = torch.addcmul(k_t, theta, zeta, value=-1.0)
        if u_all is not None and z_all is not None and a_all is not None:
            v_tilde = u_all[k] + theta + adapt * a_all[k]
            k_new = torch.where(reset_zero > 0, k_t * (1.0 - z_all[k]) - v_tilde * zeta, k_new)
        k_v = k_new
        total = total + zeta
    assert k_v is not None
    return k_i, k_v, k_a, zeta, total


class RateEligibility:
    """Running ``zeta`` recursion of every neuron (module docstring, pass 1); arrays (B, N).

    Steps are buffered `chunk` at a time: the surrogate derivative is evaluated once per chunk
    on a (chunk, B, N) array and the recursion runs in one scripted loop; memory stays
    O(chunk), independent of T.
    """

    def __init__(self, model: SNN, chunk: int = 32) -> None:
        p = model.params
        self.p = p
        self.has_alpha = bool(torch.any(p.alpha != 0))
        self.has_adapt = bool(torch.any(p.adapt != 0))
        self.has_refr = bool(torch.any(p.refractory > 0))
        self.has_zero = bool(torch.any(p.reset_zero > 0))
        self.surrogate = model.surrogate
        self.sparams = model.spike_fn.params  # type: ignore[attr-defined]
        self.chunk = chunk
        self._buf: list[tuple] = []  # (r[t-1], z[t], a[t]) where needed
        self._u: Optional[torch.Tensor] = None  # (chunk, B, N): the chunk's spike arguments
        self.k_i = p.gain.expand(1, -1)
        self.k_v: Optional[torch.Tensor] = None
        self.k_a = torch.zeros_like(p.gain)
        self.zeta = torch.zeros_like(p.gain)
        self.total = torch.zeros_like(p.gain)
        self.steps = 0

    def update(self, prev: SNNState, new: SNNState, u: torch.Tensor) -> None:
        """Record the step that produced `new` (spike argument `u`) from `prev`."""
        if self._u is None:
            self._u = u.new_empty((self.chunk,) + tuple(u.shape))
        self._u[len(self._buf)].copy_(u)
        self._buf.append((prev.neurons.r if self.has_refr else None,
                          new.neurons.z if self.has_zero else None, new.neurons.a if self.has_zero else None))
        if len(self._buf) >= self.chunk:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        u_all = self._u[:len(self._buf)]  # type: ignore[index]
        ps_all = pseudo_derivative(self.surrogate, u_all, **self.sparams)
        stack = (lambda j: torch.stack([b[j] for b in self._buf]))  # noqa: E731
        p = self.p
        self.k_i, self.k_v, self.k_a, self.zeta, self.total = _zeta_recursion(
            ps_all, u_all if self.has_zero else None, stack(0) if self.has_refr else None,
            stack(1) if self.has_zero else None, stack(2) if self.has_zero else None,
            self.k_i, self.k_v, self.k_a, self.zeta, self.total, p.alpha, p.beta, p.gain, p.rho, p.adapt_gain,
            p.adapt, p.theta, p.reset_zero, self.has_alpha, self.has_adapt)
        self.steps += len(self._buf)
        self._buf.clear()

    def eligibility(self) -> torch.Tensor:
        """``e = mean_t zeta[t]`` (B, N); zero for non-spiking neurons."""
        self._flush()
        if self.steps == 0:
            raise RuntimeError("RateEligibility: no step yet")
        return self.total * self.p.spiking / self.steps


def _unit_response(alpha: float, beta: float, delay: int, steps: int) -> list[float]:
    """c[t]: the readout kernel's response at t to a unit input present from step `delay` on."""
    c, a, out = 0.0, 0.0, []
    for t in range(steps):
        x = 1.0 if t >= delay else 0.0
        c = alpha * c + x if alpha != 0.0 else x
        a = beta * a + c
        out.append(a)
    return out


class RateBP(Rule):
    """Rate-based backpropagation (module docstring)."""

    name = "ratebp"

    def __init__(self, readout: str = "out") -> None:
        self.readout = readout

    def backward(self, model: SNN, batch: Batch) -> RuleOutput:
        view = LocalView(model, self.readout)
        out = self.readout
        into_out = view.routes_into(out)
        from_pops = [r for r in into_out if r.pre_pop is not None and r.pre_pop != out]
        delays = {r.delay for r in from_pops}
        if len(delays) > 1:
            raise NetworkError(f"projections.{from_pops[0].name}.delay",
                               f"rate-based BP needs one delay for all projections into the readout, got {sorted(delays)}")
        d_out = delays.pop() if delays else 1
        k_out = view.kernel(out)
        c = _unit_response(*k_out, d_out, batch.steps)
        gain_out = view.param("gain", out)
        zbar = {r.name: KernelTrace(*k_out) for r in into_out}
        elig = RateEligibility(model)
        obj = Objective(model, batch, out)
        mask = batch.loss_mask.tolist()
        B = batch.inputs.shape[1]
        state = model.initial_state(B)
        hist_sum = [torch.zeros_like(h) for h in state.history]
        pending: list[tuple[int, NeuronState, dict[str, torch.Tensor]]] = []
        acc = {"loss": 0.0, "drive": None}

        def readout_step() -> None:
            """Errors of the pending steps with a loss: the readout's exact gradient and D."""
            errs = readout_errors(obj, [(t, n) for t, n, _ in pending])
            acc["loss"] += sum(float(loss_t) for loss_t, _ in errs)
            dx = gain_out * torch.stack([dv for _, dv in errs])[:, :, view.slices[out]]  # (K, B, n_out)
            for r in into_out:
                r.add_grad(torch.einsum("kbi,kbj->ij", torch.stack([zb[r.name] for _, _, zb in pending]), dx))
            weights = dx.new_tensor([c[t] for t, _, _ in pending])
            drive = torch.einsum("k,kbj->bj", weights, dx)
            acc["drive"] = drive if acc["drive"] is None else acc["drive"] + drive
            pending.clear()

        with torch.no_grad():
            for t in range(batch.steps):
                prev = state
                for total, h in zip(hist_sum, prev.history):
                    total += h
                state, u = step_with_u(model, prev, batch.inputs[t])
                elig.update(prev, state, u)
                zb = {r.name: zbar[r.name].update(prev.history[r.delay - 1][:, r.pre]) for r in into_out}
                if mask[t]:
                    pending.append((t, state.neurons, zb))
                    if len(pending) >= elig.chunk:
                        readout_step()
            if pending:
                readout_step()
        if acc["drive"] is not None and from_pops:
            T = float(batch.steps)
            # sum_t z[t]: history slot 0 summed over the steps holds z[0..T-2]; add the last step
            rate = (hist_sum[0][:, :model.n_neurons] + state.neurons.z) / T
            self._rate_backward(model, view, [h / T for h in hist_sum], rate, elig.eligibility(), acc["drive"])
        return RuleOutput(acc["loss"], obj.readouts)

    def _rate_backward(self, model: SNN, view: LocalView, hist: list[torch.Tensor], rate: torch.Tensor,
                       e: torch.Tensor, drive: torch.Tensor) -> None:
        """Pass 2: the time-averaged graph, seeded with the readout's error `drive`."""
        out = self.readout
        order = _feedforward_order(view, out)
        nodes: dict[str, torch.Tensor] = {}

        def with_rates() -> list[torch.Tensor]:
            res = []
            for h in hist:
                cols, at = [], 0
                for p in sorted(nodes, key=lambda q: view.slices[q].start):
                    sl = view.slices[p]
                    cols += [h[:, at:sl.start], h[:, sl] + (nodes[p] - nodes[p].detach())]
                    at = sl.stop
                cols.append(h[:, at:])
                res.append(torch.cat(cols, dim=1))
            return res

        with torch.enable_grad():
            for p in order:
                sl = view.slices[p]
                x = model.synaptic_input(with_rates())[:, sl]
                nodes[p] = rate[:, sl] + e[:, sl] * (x - x.detach())
            x_out = model.synaptic_input(with_rates())[:, view.slices[out]]
            s = (x_out * drive).sum()
            skip = {id(r.weight) for r in view.routes_into(out)}
            params = [w for w in model.parameters() if w.requires_grad and id(w) not in skip]
            if s.requires_grad and params:
                torch.autograd.backward(s, inputs=params)


def _feedforward_order(view: LocalView, readout: str) -> list[str]:
    """Spiking populations upstream of the readout, each after its feed-forward predecessors."""
    pops = [p for p in view.slices if p != readout and p in view.lag]
    order: list[str] = []
    while len(order) < len(pops):
        for p in pops:
            if p not in order and all(r.pre_pop in order for r in view.routes_into(p)
                                      if r.feedforward and r.pre_pop in pops):
                order.append(p)
    return order

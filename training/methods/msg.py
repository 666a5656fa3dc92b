"""MSG: spiking graph neural network on a Riemannian manifold, trained by differentiation via
manifold (Sun et al., NeurIPS 2024, "Spiking Graph Neural Network on Riemannian Manifolds"),
and its twin trained by BPTT with surrogate gradients.

Manifolds (curvature magnitude K > 0, ambient R^{d+1} for the curved ones, R^d for Euclidean):

| manifold | points | inner product <u,w> | origin o |
|---|---|---|---|
| euclidean | R^d | u.w | 0 |
| sphere | K|x|^2 = 1 (curvature +K) | u.w | (1/sqrt K, 0, ..) |
| lorentz | K<x,x>_L = -1, x_0 > 0 (curvature -K) | -u_0 w_0 + sum_i u_i w_i | (1/sqrt K, 0, ..) |

With theta = sqrt(K <v,v>) (0 for euclidean), the exponential map is one formula,
``Exp_x(v) = C(theta) x + S(theta) v`` with (C, S) = (cosh, sinh(t)/t) on the hyperboloid,
(cos, sin(t)/t) on the sphere and (1, 1) in Euclidean space; tangent projection
``P_x(u) = u + K<x,u>_L x`` (lorentz), ``u - K(x.u) x`` (sphere), ``u`` (euclidean); the
logarithm ``Log_x(y) = theta/sqrt(K) * u/|u|`` with ``u = y - alpha x``, alpha = -K<x,y>_L,
theta = asinh(sqrt K |u|_L) (lorentz) or alpha = K x.y, theta = atan2(sqrt K |u|, alpha) (sphere).

Network (N nodes, features X (N, F), A_hat = D^-1/2 (A + I) D^-1/2, M = ambient dim, L layers,
T time steps, step size eps). Spiking populations l = 0 .. L-1 of N x M LIF neurons, stepped by
the canonical `neurosim.models.neuron_step` (subtractive reset, threshold `theta`, decay `beta`,
no synaptic filter) with input currents

    c^0[t] = A_hat X W_0                      (constant over t: the encoder)
    c^l[t] = A_hat s^{l-1}[t] W_l             (l = 1 .. L-1; s^l[t] the spikes of population l)

and rates r^l = (1/T) sum_t s^l[t]. The manifold state moves once per layer by an exponential map
of the spike-derived tangent vector:

    z_0 = o,  z_1 = Exp_o(eps P_o(A_hat X W_0)),
    z_{l+1} = Exp_{z_l}(eps PT_{o->z_l}(P_o(A_hat r^{l-1} W_l)))   (l = 1 .. L; A_hat r^{l-1} W_l =
                                                 mean_t of layer l's input current; PT: parallel transport)
    logits = Log_o(z_{L+1}) W_out + b

DvM (the paper's differentiation via manifold): the spikes are run for T steps without any
autograd graph (memory independent of T); the gradient flows only through the manifold chain
above, with r^l held constant, using the closed-form vector-Jacobian product of the exponential
map (:class:`_Exp`): for y = C x + S v and upstream g,

    dL/dx = C g,   dL/dv = S g + K (C'(theta)/theta <g,x>_E + S'(theta)/theta <g,v>_E) J v

(J = diag(-1, 1, ..) on the hyperboloid, identity otherwise). The BPTT twin runs the same forward
with the surrogate spike (training.surrogate) under autograd and backpropagates through all T
steps of every population, so its gradient adds the path through the rates r^l to DvM's.

Deviations from the paper and the authors' code: the spike-derived vector is made a tangent vector
at z_l by projecting it at the origin and parallel-transporting it to z_l (their code feeds the
ambient vector to the exponential map; projecting at z_l instead gives tangent vectors whose length
grows with |z_l| and made the hyperboloid diverge in float32); the last layer's own spikes feed
nothing and are not simulated; rates are computed before the linear map (A_hat r W equals
mean_t A_hat s[t] W, and keeps the stored state T-independent); no dropout (runs are
deterministic and resumable); the classifier is a linear map of Log_o(z_{L+1}) (as in their code).

Rule options (``--rule-option KEY=VALUE``): manifold=lorentz|sphere|euclidean (lorentz),
curvature K (1.0), T (8), layers L (2), step eps (0.5), theta (1.0), beta (0.9),
baseline=dvm|bptt (dvm), steps = full-batch Adam steps per epoch (10), weight_decay (0).
`--hidden` is the manifold dimension d. Tasks: ``sbm`` (training.methods.graphs.sbm, its options by
--task-option) and ``graph`` (the user's files: --task-option edges=PATH features=PATH labels=PATH).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from neurosim.errors import NeurosimError
from neurosim.models import LIF, NeuronParams, NeuronState, heaviside, neuron_step

from ..surrogate import make_spike_fn

MANIFOLDS = ("lorentz", "sphere", "euclidean")


# ------------------------------------------------------------------------------- manifolds


def _series(t: torch.Tensor, coeffs: tuple[float, ...]) -> torch.Tensor:
    t2, out, p = t * t, torch.zeros_like(t), torch.ones_like(t)
    for c in coeffs:
        out, p = out + c * p, p * t2
    return out


@dataclass(frozen=True)
class Manifold:
    """kind: 'lorentz', 'sphere' or 'euclidean'; k: curvature magnitude K > 0 (module docstring)."""

    kind: str = "lorentz"
    k: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in MANIFOLDS:
            raise NeurosimError(f"manifold: expected one of {', '.join(MANIFOLDS)}, got {self.kind!r}")
        if not (isinstance(self.k, (int, float)) and math.isfinite(self.k) and self.k > 0):
            raise NeurosimError(f"curvature: expected a finite K > 0, got {self.k!r}")

    def ambient(self, d: int) -> int:
        return d if self.kind == "euclidean" else d + 1

    def _j(self, u: torch.Tensor) -> torch.Tensor:
        """The metric's sign matrix applied to u (flips the time coordinate on the hyperboloid)."""
        if self.kind != "lorentz":
            return u
        return torch.cat([-u[..., :1], u[..., 1:]], dim=-1)

    def inner(self, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """<u, w> of the manifold's ambient metric, keepdim (..., 1)."""
        return (self._j(u) * w).sum(-1, keepdim=True)

    def origin(self, n: int, m: int, dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
        o = torch.zeros(n, m, dtype=dtype, device=device)
        if self.kind != "euclidean":
            o[:, 0] = 1.0 / math.sqrt(self.k)
        return o

    def constraint(self, x: torch.Tensor) -> torch.Tensor:
        """K<x,x> + 1 (lorentz), K|x|^2 - 1 (sphere), 0 (euclidean): zero on the manifold."""
        if self.kind == "euclidean":
            return torch.zeros_like(x[..., :1])
        return self.k * self.inner(x, x) + (1.0 if self.kind == "lorentz" else -1.0)

    def proj(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Projection of the ambient vector u onto the tangent space at x."""
        if self.kind == "euclidean":
            return u
        sign = 1.0 if self.kind == "lorentz" else -1.0
        return u + sign * self.k * self.inner(x, u) * x

    def transport0(self, y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Parallel transport of u from the tangent space at the origin o to the one at y:
        ``u + K<y,u>_L/(1 - K<o,y>_L) (o + y)`` (lorentz), ``u - K(y.u)/(1 + K o.y) (o + y)``
        (sphere; undefined at the antipode of o), ``u`` (euclidean)."""
        if self.kind == "euclidean":
            return u
        o = self.origin(y.shape[0], y.shape[1], y.dtype, y.device)
        sign = 1.0 if self.kind == "lorentz" else -1.0
        return u + sign * self.k * self.inner(y, u) / (1.0 - sign * self.k * self.inner(o, y)) * (o + y)

    def theta(self, v: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.clamp(self.k * self.inner(v, v), min=0.0))

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """C(t), S(t), C'(t)/t, S'(t)/t of Exp_x(v) = C x + S v (series near t = 0)."""
        if self.kind == "euclidean":
            one, zero = torch.ones_like(t), torch.zeros_like(t)
            return one, one, zero, zero
        small = t < 0.1
        ts = torch.where(small, torch.ones_like(t), t)
        if self.kind == "lorentz":
            c, s_big = torch.cosh(t), torch.sinh(ts) / ts
            s = torch.where(small, _series(t, (1, 1 / 6, 1 / 120, 1 / 5040, 1 / 362880)), s_big)
            b = torch.where(small, _series(t, (1 / 3, 1 / 30, 1 / 840, 1 / 45360)),
                            (ts * torch.cosh(ts) - torch.sinh(ts)) / ts ** 3)
            return c, s, s, b
        c, s_big = torch.cos(t), torch.sin(ts) / ts
        s = torch.where(small, _series(t, (1, -1 / 6, 1 / 120, -1 / 5040, 1 / 362880)), s_big)
        b = torch.where(small, _series(t, (-1 / 3, 1 / 30, -1 / 840, 1 / 45360)),
                        (ts * torch.cos(ts) - torch.sin(ts)) / ts ** 3)
        return c, s, -s, b

    def exp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Exp_x(v), differentiated by the closed-form vector-Jacobian product of :class:`_Exp`."""
        return _Exp.apply(self, x, v)

    def exp_autograd(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Exp_x(v) from plain torch ops (autograd differentiates it; a reference for tests)."""
        c, s, _, _ = self.coefficients(self.theta(v))
        return c * x + s * v

    def log(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Log_x(y): the tangent vector at x whose exponential map reaches y."""
        if self.kind == "euclidean":
            return y - x
        sk = math.sqrt(self.k)
        alpha = (-1.0 if self.kind == "lorentz" else 1.0) * self.k * self.inner(x, y)
        u = y - alpha * x
        nu = torch.sqrt(torch.clamp(self.inner(u, u), min=1e-30))
        t = torch.asinh(sk * nu) if self.kind == "lorentz" else torch.atan2(sk * nu, alpha)
        return t / (sk * nu) * u

    def log0(self, y: torch.Tensor) -> torch.Tensor:
        return self.log(self.origin(y.shape[0], y.shape[1], y.dtype, y.device), y)


class _Exp(torch.autograd.Function):
    """y = C(theta) x + S(theta) v with the closed-form backward of the module docstring."""

    @staticmethod
    def forward(ctx: Any, manifold: Manifold, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        t = manifold.theta(v)
        c, s, a, b = manifold.coefficients(t)
        ctx.manifold = manifold
        ctx.save_for_backward(x, v, c, s, a, b)
        return c * x + s * v

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[None, torch.Tensor, torch.Tensor]:
        x, v, c, s, a, b = ctx.saved_tensors
        m: Manifold = ctx.manifold
        gx = (g * x).sum(-1, keepdim=True)
        gv = (g * v).sum(-1, keepdim=True)
        return None, c * g, s * g + m.k * (a * gx + b * gv) * m._j(v)


# ------------------------------------------------------------------------------- the network


class MSGNet(nn.Module):
    """The spiking GNN of the module docstring. Parameters: w_in (F, M), w[l] (M, M) for
    l = 1 .. L, readout (M -> classes). The time loop's state is local to :meth:`rates`."""

    def __init__(self, n_in: int, n_classes: int, dim: int, *, layers: int = 2, manifold: Manifold = Manifold(),
                 steps: int = 8, step: float = 0.5, theta: float = 1.0, beta: float = 0.9,
                 surrogate: str = "fast_sigmoid", dtype: torch.dtype = torch.float32, seed: int = 0) -> None:
        super().__init__()
        self.manifold, self.T, self.layers, self.step = manifold, steps, layers, step
        m = manifold.ambient(dim)
        self.m = m
        g = torch.Generator().manual_seed(seed)
        self.w_in = nn.Parameter(torch.randn(n_in, m, generator=g, dtype=dtype) / math.sqrt(n_in))
        self.w = nn.ParameterList([nn.Parameter(torch.randn(m, m, generator=g, dtype=dtype) / math.sqrt(m))
                                   for _ in range(layers)])
        self.readout = nn.Linear(m, n_classes, dtype=dtype)
        with torch.no_grad():
            self.readout.weight.copy_(torch.randn(n_classes, m, generator=g, dtype=dtype) / math.sqrt(m))
            self.readout.bias.zero_()
        p = LIF(beta=beta, theta=theta).lower(m)
        for f in NeuronParams._fields:
            self.register_buffer(f"p_{f}", torch.as_tensor(getattr(p, f), dtype=dtype))
        self.spike_fn: Callable[[torch.Tensor], torch.Tensor] = make_spike_fn(surrogate)

    @property
    def params(self) -> NeuronParams:
        return NeuronParams(*(getattr(self, f"p_{f}") for f in NeuronParams._fields))

    def rates(self, adj: torch.Tensor, current0: torch.Tensor,
              spike_fn: Callable[[torch.Tensor], torch.Tensor]) -> list[torch.Tensor]:
        """r^0 .. r^{L-1}: mean spikes over T steps of populations 0 .. L-1 (module docstring);
        autograd records every step when the inputs need gradients (BPTT), nothing otherwise."""
        p = self.params
        zero = torch.zeros_like(current0)
        states = [NeuronState(zero, zero, zero, zero, zero) for _ in range(self.layers)]
        sums = [zero for _ in range(self.layers)]
        for _ in range(self.T):
            current = current0
            for l in range(self.layers):
                states[l] = neuron_step(p, states[l], current, spike_fn)
                sums[l] = sums[l] + states[l].z
                if l + 1 < self.layers:
                    current = torch.sparse.mm(adj, states[l].z @ self.w[l])  # W_{l+1}
        return [s / self.T for s in sums]

    def chain(self, adj: torch.Tensor, current0: torch.Tensor, rates: list[torch.Tensor],
              exp: Optional[Callable[..., torch.Tensor]] = None) -> torch.Tensor:
        """z_{L+1}: the manifold state after the encoder and the L layers (module docstring)."""
        mf = self.manifold
        exp = exp or mf.exp
        o = mf.origin(current0.shape[0], self.m, current0.dtype, current0.device)
        z = exp(o, self.step * mf.proj(o, current0))
        for l in range(1, self.layers + 1):
            u = torch.sparse.mm(adj, rates[l - 1] @ self.w[l - 1])  # W_l is w[l - 1]
            z = exp(z, self.step * mf.transport0(z, mf.proj(o, u)))
        return z

    def forward(self, adj: torch.Tensor, x: torch.Tensor, mode: str = "dvm") -> torch.Tensor:
        """Logits (N, classes). mode 'dvm': spikes without a graph, gradient via the manifold;
        'bptt': surrogate-gradient backprop through all T steps."""
        current0 = torch.sparse.mm(adj, x @ self.w_in)
        if mode == "dvm":
            with torch.no_grad():
                r = self.rates(adj, current0.detach(), heaviside)
        elif mode == "bptt":
            r = self.rates(adj, current0, self.spike_fn)
        else:
            raise NeurosimError(f"baseline: expected 'dvm' or 'bptt', got {mode!r}")
        z = self.chain(adj, current0, r)
        return self.readout(self.manifold.log0(z))


# ------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class Options:
    """The rule options of MSG (module docstring), validated."""

    manifold: str = "lorentz"
    curvature: float = 1.0
    T: int = 8
    layers: int = 2
    step: float = 0.5
    theta: float = 1.0
    beta: float = 0.9
    baseline: str = "dvm"
    steps: int = 10
    weight_decay: float = 0.0

    @classmethod
    def parse(cls, options: dict[str, Any]) -> "Options":
        known = {f for f in cls.__dataclass_fields__}
        for key in options:
            if key not in known:
                raise NeurosimError(f"--rule-option {key}: not an option of rule msg (expected "
                                    f"{', '.join(sorted(known))})")
        o = cls(**options)
        Manifold(o.manifold, o.curvature)  # validates both
        for name in ("T", "layers", "steps"):
            v = getattr(o, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise NeurosimError(f"--rule-option {name}: expected a whole number >= 1, got {v!r}")
        for name, lo, hi, lo_open in (("step", 0, math.inf, True), ("theta", 0, math.inf, True),
                                      ("beta", 0, 1, False), ("weight_decay", 0, math.inf, False)):
            v = getattr(o, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or not (v > lo if lo_open else v >= lo) or v > hi:
                raise NeurosimError(f"--rule-option {name}: expected a number in {'(' if lo_open else '['}{lo}, "
                                    f"{hi}], got {v!r}")
        if o.baseline not in ("dvm", "bptt"):
            raise NeurosimError(f"--rule-option baseline: expected dvm or bptt, got {o.baseline!r}")
        return o


@dataclass
class GraphData:
    """The tensors of one graph on a device."""

    adj: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    masks: dict[str, torch.Tensor]


def graph_data(graph: Any, dtype: torch.dtype = torch.float32, device: Any = None) -> GraphData:
    return GraphData(graph.norm_adjacency(dtype, device), torch.as_tensor(graph.features, dtype=dtype, device=device),
                     torch.as_tensor(graph.labels, device=device),
                     {k: torch.as_tensor(getattr(graph, f"{k}_mask"), device=device) for k in ("train", "val", "test")})


def build(config: Any, graph: Any, opts: Options, dtype: torch.dtype = torch.float32) -> MSGNet:
    return MSGNet(graph.features.shape[1], graph.n_classes, config.hidden, layers=opts.layers,
                  manifold=Manifold(opts.manifold, float(opts.curvature)), steps=opts.T, step=float(opts.step),
                  theta=float(opts.theta), beta=float(opts.beta), surrogate=config.surrogate, dtype=dtype,
                  seed=config.seed)


def train_step(model: MSGNet, data: GraphData, opt: torch.optim.Optimizer, mode: str) -> float:
    """One full-batch Adam step on the training nodes; the loss before the step."""
    opt.zero_grad(set_to_none=True)
    logits = model(data.adj, data.x, mode)
    loss = nn.functional.cross_entropy(logits[data.masks["train"]], data.y[data.masks["train"]])
    loss.backward()
    opt.step()
    return float(loss.detach())


def evaluate(model: MSGNet, data: GraphData) -> dict[str, float]:
    """Loss and accuracy on the train, val and test nodes (the forward is the same for both modes)."""
    with torch.no_grad():
        logits = model(data.adj, data.x, "dvm")
    out = {}
    for k, m in data.masks.items():
        out[f"{k}_loss"] = float(nn.functional.cross_entropy(logits[m], data.y[m]))
        out[f"{k}_acc"] = float((logits[m].argmax(1) == data.y[m]).double().mean())
    return out


def train_run(config: Any, run_dir: Path, *, resume: bool, progress: bool, device: torch.device) -> dict[str, Any]:
    """Train MSG per `config` into `run_dir` (training.methods); an epoch is `steps` full-batch steps."""
    from .graphs import make_graph
    from ..runfiles import complete_run_files, epoch_bar, resume_checkpoint, set_epoch_lr, write_checkpoint

    opts = Options.parse(dict(config.rule_options))
    graph = make_graph(config.task, config.seed, config.task_options)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model = build(config, graph, opts).to(device)
    data = graph_data(graph, torch.float32, device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=opts.weight_decay)
    history: list[dict[str, float]] = []
    start = 0
    ckpt = run_dir / "checkpoint.pt"
    if resume:
        history, start = resume_checkpoint(ckpt, config, model, opt)  # type: ignore[arg-type]
        complete_run_files(run_dir, config, history)  # what a kill left undone
    bar = epoch_bar(config, start, opts.steps, f"train {config.task} (msg {opts.baseline}, {opts.manifold}, "
                    f"T={opts.T})", progress, unit="step")
    try:
        for epoch in range(start, config.epochs):
            t0 = time.perf_counter()
            set_epoch_lr(opt, config, epoch)
            for _ in range(opts.steps):
                train_step(model, data, opt, opts.baseline)
                bar.update(1)
            seconds = time.perf_counter() - t0
            ev = evaluate(model, data)
            if not all(math.isfinite(v) for v in ev.values()):
                raise NeurosimError(f"epoch {epoch + 1}: the loss is not finite (the manifold state diverged); "
                                    "use a smaller --lr or --rule-option step")
            history.append(dict(epoch=epoch, **ev, seconds=seconds))
            write_checkpoint(run_dir, config, epoch, history, model=model.state_dict(), optimizer=opt.state_dict())
    finally:
        bar.close()
    return {"history": history, "model": model, "task": graph, "bar": None,
            "files": ("checkpoint.pt", "metrics.csv", "curve.png", "config.json")}

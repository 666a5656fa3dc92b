"""Equilibrium Propagation in discrete time (Ernoult et al. 2019): the functional core.

Network (the paper's prototypical layered setting, symmetric weights): state layers
``s^0`` (output, 10 units), ``s^1 .. s^L`` (hidden, L = 1 or 2), input ``x = s^{L+1}`` (clamped).
Primitive function, per sample::

    Phi(x, s, theta) = sum_{n=0..L} s^n . (W_n s^{n+1} + b_n)          W_n: (|s^n|, |s^{n+1}|)

so ``dPhi/ds^n = W_n s^{n+1} + b_n + W_{n-1}^T s^{n-1}`` (the second term for n >= 1) and
``dPhi/dW_n = s^n (s^{n+1})^T``, ``dPhi/db_n = s^n`` (both averaged over the batch here).

Dynamics (all layers updated synchronously from s_t)::

    free:    s_{t+1} = sigma(dPhi/ds(x, s_t, theta))
    nudged:  s_{t+1} = sigma(d(Phi - beta*l)/ds(x, s_t, theta)),   l(s, y) = ||y - s^0||^2 / 2

with ``sigma`` the hard sigmoid ``clamp(x, 0, 1)``: the nudging force ``beta*(y - s^0_t)`` acts
on the output's input (inside sigma; the authors' code adds it after sigma, ``outside=True``
here, which breaks the GDU property on saturated outputs). Where no unit is saturated the map is
exactly ``s_{t+1} = dPhi~/ds`` for a quadratic Phi~, the setting of the paper's Theorem 1.
``act="sigmoid"`` replaces sigma by the authors' default 1/(1 + exp(-4(u - 1/2))) (their
fully connected runs); the dynamics then derive from Phi only approximately (no exact GDU).

EP updates in the nudged phase started at the free steady state ``s_*`` (t = 0 .. K-1)::

    dEP_s(beta, t)     = (s^beta_{t+1} - s^beta_t) / beta
    dEP_theta(beta, t) = (dPhi/dtheta(s^beta_{t+1}) - dPhi/dtheta(s^beta_t)) / beta

symmetric nudging uses ``(s^{+beta} - s^{-beta}) / (2 beta)`` differences instead (error O(beta^2)
rather than O(beta)). BPTT's instantaneous gradients on the network unrolled K steps from s_*
with loss ``L = l(s_K, y)``: ``grad_s(t) = dL/ds_{K-t}``, ``grad_theta(t) = dL/dtheta_{K-t}``
where ``theta_k`` is the copy of theta used by the step ``s_{k-1} -> s_k``. The GDU property:
``dEP(beta, t) -> -grad(t)`` as beta -> 0. With the hard sigmoid, the neural updates of units
saturated at s_* are exactly 0 (the state is clamped) while dL/ds is not: neurons are compared on
the units in sigma's linear range (``0 < dPhi/ds < 1`` at s_*), where s and its input coincide.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from neurosim.errors import NeurosimError

Params = dict[str, torch.Tensor]  # "W0".."WL", "b0".."bL"
State = list[torch.Tensor]        # [s^0 (B, 10), s^1 (B, h1), ...]


def sigma(u: torch.Tensor) -> torch.Tensor:
    """Hard sigmoid clamp(u, 0, 1)."""
    return u.clamp(0.0, 1.0)


def smooth_sigma(u: torch.Tensor) -> torch.Tensor:
    """The authors' default activation ('sigm' in their code): 1 / (1 + exp(-4 (u - 1/2))), which
    has sigma' > 0 everywhere (the dynamics then only approximately derive from Phi)."""
    return torch.sigmoid(4.0 * (u - 0.5))


ACTIVATIONS = {"hard": sigma, "sigmoid": smooth_sigma}


def sizes_of(params: Params) -> list[int]:
    """[|s^0|, |s^1|, ..., |s^L|, |x|] from the weight shapes."""
    n = len([k for k in params if k.startswith("W")])
    return [params[f"W{i}"].shape[0] for i in range(n)] + [params[f"W{n - 1}"].shape[1]]


def init_params(sizes: list[int], seed: int, dtype: torch.dtype = torch.float32,
                device: torch.device = torch.device("cpu")) -> Params:
    """W_n, b_n ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = |s^{n+1}| (torch.nn.Linear's
    default, as the authors); sizes = [n_out, hidden..., n_in]."""
    g = torch.Generator().manual_seed(seed)
    p: Params = {}
    for n in range(len(sizes) - 1):
        bound = sizes[n + 1] ** -0.5
        p[f"W{n}"] = ((torch.rand(sizes[n], sizes[n + 1], generator=g, dtype=torch.float64) * 2 - 1) * bound)
        p[f"b{n}"] = ((torch.rand(sizes[n], generator=g, dtype=torch.float64) * 2 - 1) * bound)
    return {k: v.to(dtype=dtype, device=device) for k, v in p.items()}


def zero_state(params: Params, batch: int) -> State:
    sizes = sizes_of(params)
    w = params["W0"]
    return [torch.zeros(batch, n, dtype=w.dtype, device=w.device) for n in sizes[:-1]]


def phi(x: torch.Tensor, s: State, p: Params) -> torch.Tensor:
    """Phi(x, s, theta) per sample, shape (B,)."""
    layers = list(s) + [x]
    return sum(((layers[n + 1] @ p[f"W{n}"].T + p[f"b{n}"]) * layers[n]).sum(1) for n in range(len(s)))


def dphi_ds(x: torch.Tensor, s: State, p: Params) -> State:
    """dPhi/ds^n for every state layer n (each (B, |s^n|))."""
    layers = list(s) + [x]
    out = []
    for n in range(len(s)):
        u = layers[n + 1] @ p[f"W{n}"].T + p[f"b{n}"]
        if n >= 1:
            u = u + layers[n - 1] @ p[f"W{n - 1}"]
        out.append(u)
    return out


def dphi_dtheta(x: torch.Tensor, s: State) -> Params:
    """dPhi/dtheta averaged over the batch: W_n -> mean_b s^n (s^{n+1})^T, b_n -> mean_b s^n."""
    layers = list(s) + [x]
    batch = x.shape[0]
    out: Params = {}
    for n in range(len(s)):
        out[f"W{n}"] = layers[n].T @ layers[n + 1] / batch
        out[f"b{n}"] = layers[n].mean(0)
    return out


def step(x: torch.Tensor, s: State, p: Params, beta: float = 0.0, y: Optional[torch.Tensor] = None,
         outside: bool = False, act: str = "hard") -> State:
    """One synchronous step: s^n <- sigma(dPhi/ds^n), the output nudged by beta*(y - s^0)
    inside sigma (default) or added after it (``outside``, the authors' code); ``act`` names the
    activation (ACTIVATIONS: 'hard' clamp(u, 0, 1), 'sigmoid' the authors' smooth one)."""
    f = ACTIVATIONS[act]
    u = dphi_ds(x, s, p)
    if beta and not outside:
        u[0] = u[0] + beta * (y - s[0])
    new = [f(v) for v in u]
    if beta and outside:
        new[0] = new[0] + beta * (y - s[0])
    return new


def residual(a: State, b: State) -> float:
    """max |a - b| over layers, samples and units."""
    return max(float((u - v).abs().max()) for u, v in zip(a, b))


def free_phase(x: torch.Tensor, p: Params, steps: int, s: Optional[State] = None, act: str = "hard"
               ) -> tuple[State, float]:
    """`steps` free steps from `s` (zeros by default); (s_T, residual ||s_T - s_{T-1}||_inf)."""
    s = zero_state(p, x.shape[0]) if s is None else s
    res = float("inf")
    for _ in range(steps):
        new = step(x, s, p, act=act)
        res = residual(new, s)
        s = new
    return s, res


def free_phase_until(x: torch.Tensor, p: Params, cap: int, tol: float, act: str = "hard"
                     ) -> tuple[State, float, int]:
    """Free steps from s = 0 until ||s_t - s_{t-1}||_inf <= tol or `cap` steps:
    (s_t, its residual, t). The state returned is the one whose residual was measured."""
    s = zero_state(p, x.shape[0])
    res, t = float("inf"), 0
    while t < cap:
        new = step(x, s, p, act=act)
        res, s, t = residual(new, s), new, t + 1
        if res <= tol:
            break
    return s, res, t


def check_converged(res: float, tol: float, steps: int) -> None:
    """Raise when the free phase did not reach its fixed point within `tol`."""
    if not res <= tol:
        raise NeurosimError(f"free phase not converged: ||s_T - s_(T-1)||_inf = {res:.3g} > tol {tol:g} after "
                            f"T = {steps} steps; raise T (rule option T) or shrink the weights")


def nudged_phase(x: torch.Tensor, y: torch.Tensor, p: Params, s_star: State, beta: float, steps: int,
                 outside: bool = False, act: str = "hard") -> list[State]:
    """[s_0 = s_*, s_1, ..., s_K] of the nudged phase."""
    traj = [s_star]
    for _ in range(steps):
        traj.append(step(x, traj[-1], p, beta, y, outside, act))
    return traj


def nudged_state(x: torch.Tensor, y: torch.Tensor, p: Params, s_star: State, beta: float, steps: int,
                 act: str = "hard", outside: bool = False) -> State:
    """s^beta_K alone (memory independent of K: what training needs)."""
    s = s_star
    for _ in range(steps):
        s = step(x, s, p, beta, y, outside, act)
    return s


@dataclass
class Updates:
    """Per-step quantities, index t = 0..K-1 first: neurons[n] (K, B, |s^n|), synapses[name] (K, *shape)."""

    neurons: list[torch.Tensor]
    synapses: dict[str, torch.Tensor]


def ep_updates(x: torch.Tensor, y: torch.Tensor, p: Params, s_star: State, beta: float, steps: int,
               symmetric: bool = False, outside: bool = False) -> Updates:
    """dEP_s(beta, t) and dEP_theta(beta, t) for t = 0..K-1 (one-sided or symmetric nudging)."""
    plus = nudged_phase(x, y, p, s_star, beta, steps, outside)
    minus = nudged_phase(x, y, p, s_star, -beta, steps, outside) if symmetric else None
    scale = 2 * beta if symmetric else beta
    th_plus = [dphi_dtheta(x, s) for s in plus]
    th_minus = [dphi_dtheta(x, s) for s in minus] if minus else None
    neurons, synapses = [], {}
    for n in range(len(s_star)):
        d = [(plus[t + 1][n] - plus[t][n]) - ((minus[t + 1][n] - minus[t][n]) if minus else 0)
             for t in range(steps)]
        neurons.append(torch.stack(d) / scale)
    for k in th_plus[0]:
        d = [(th_plus[t + 1][k] - th_plus[t][k]) - ((th_minus[t + 1][k] - th_minus[t][k]) if th_minus else 0)
             for t in range(steps)]
        synapses[k] = torch.stack(d) / scale
    return Updates(neurons, synapses)


def loss_fn(s0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """l = ||y - s^0||^2 / 2 averaged over the batch."""
    return 0.5 * ((s0 - y) ** 2).sum(1).mean()


def bptt_gradients(x: torch.Tensor, y: torch.Tensor, p: Params, s_star: State, steps: int, act: str = "hard"
                   ) -> Updates:
    """BPTT's instantaneous gradients grad_s(t) = dL/ds_{K-t} (per sample: scaled by B) and
    grad_theta(t) = dL/dtheta_{K-t} for t = 0..K-1, by autograd on the network unrolled K steps
    from s_* with one copy of theta per step and L = l(s_K, y) (batch mean)."""
    with torch.enable_grad():
        s0 = [v.detach().clone().requires_grad_(True) for v in s_star]
        copies = [{k: v.detach().clone().requires_grad_(True) for k, v in p.items()} for _ in range(steps)]
        traj = [s0]
        for k in range(steps):
            traj.append(step(x, traj[-1], copies[k], act=act))
        loss = loss_fn(traj[-1][0], y)
        states = [v for s in traj for v in s]
        thetas = [v for c in copies for v in c.values()]
        grads = torch.autograd.grad(loss, states + thetas, allow_unused=True)
    gs, gt = grads[:len(states)], grads[len(states):]
    nl, names = len(s_star), list(p)

    def g_state(k: int, n: int) -> torch.Tensor:
        g = gs[k * nl + n]
        return torch.zeros_like(s_star[n]) if g is None else g * x.shape[0]

    def g_theta(k: int, i: int) -> torch.Tensor:
        g = gt[k * len(names) + i]
        return torch.zeros_like(p[names[i]]) if g is None else g

    neurons = [torch.stack([g_state(steps - t, n) for t in range(steps)]) for n in range(nl)]
    synapses = {name: torch.stack([g_theta(steps - 1 - t, i) for t in range(steps)]) for i, name in enumerate(names)}
    return Updates(neurons, synapses)


def active_units(x: torch.Tensor, s_star: State, p: Params) -> list[torch.Tensor]:
    """Boolean masks (B, |s^n|): units in sigma's linear range at s_* (0 < dPhi/ds < 1)."""
    return [(u > 0) & (u < 1) for u in dphi_ds(x, s_star, p)]


def compare(ep: torch.Tensor, grad: torch.Tensor, mask: Optional[torch.Tensor] = None,
            floor: float = 1e-3) -> dict[str, float]:
    """GDU agreement of ep (K, *shape) with -grad (K, *shape), components = trailing entries.

    rel_rmse per component j: ||ep_j + grad_j||_t / ||grad_j||_t over t = 0..K-1, median over the
    components with ||grad_j||_t > floor * max_j ||grad_j||_t (the others are reported as
    'skipped': no BPTT gradient to match). sign: fraction of the entries (j, t) with
    |grad_j(t)| > floor * max |grad| where sign(ep) == sign(-grad). `mask` (*shape) selects components."""
    e = ep.reshape(ep.shape[0], -1).double()
    g = grad.reshape(grad.shape[0], -1).double()
    if mask is not None:
        m = mask.reshape(-1)
        e, g = e[:, m], g[:, m]
    if g.numel() == 0:
        return dict(median_rel_rmse=float("nan"), sign=float("nan"), components=0, skipped=0)
    norm = g.norm(dim=0)
    keep = norm > floor * norm.max()
    rel = (e + g).norm(dim=0)[keep] / norm[keep]
    big = g.abs() > floor * g.abs().max()
    sign = (torch.sign(e[big]) == torch.sign(-g[big])).double().mean()
    return dict(median_rel_rmse=float(rel.median()) if keep.any() else float("nan"), sign=float(sign),
                components=int(keep.sum()), skipped=int((~keep).sum()))


def gdu_table(x: torch.Tensor, y: torch.Tensor, p: Params, *, T: int, K: int, beta: float,
              symmetric: bool = False, tol: float = 1e-10, outside: bool = False) -> dict[str, dict[str, float]]:
    """The GDU check of the paper: free phase to s_* (raises if not converged within `tol`),
    then per layer the agreement of EP's neural and synaptic updates with -BPTT's gradients.
    Keys: 's<n>' (active units), 's<n>_all' (every unit), 'W<n>', 'b<n>'."""
    s_star, res = free_phase(x, p, T)
    check_converged(res, tol, T)
    ep = ep_updates(x, y, p, s_star, beta, K, symmetric, outside)
    bp = bptt_gradients(x, y, p, s_star, K)
    act = active_units(x, s_star, p)
    out: dict[str, dict[str, float]] = {}
    for n in range(len(s_star)):
        out[f"s{n}"] = compare(ep.neurons[n], bp.neurons[n], act[n])
        out[f"s{n}_all"] = compare(ep.neurons[n], bp.neurons[n])
    for k in bp.synapses:
        out[k] = compare(ep.synapses[k], bp.synapses[k])
    return out

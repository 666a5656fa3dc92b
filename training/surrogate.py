"""Surrogate gradients: the forward pass is the exact Heaviside H(u) = [u > 0]; the backward
pass replaces dH/du by a pseudo-derivative.

| name | pseudo-derivative dH/du | default |
|---|---|---|
| fast_sigmoid (Zenke & Ganguli 2018; snnTorch) | ``1 / (1 + slope*|u|)^2`` | slope = 25 |
| atan (Fang et al. 2021; SpikingJelly) | ``(alpha/2) / (1 + (pi/2 * alpha * u)^2)`` | alpha = 2 |
| triangle (Bellec et al. 2018, 2020) | ``dampening * max(0, 1 - |u|/width) / width`` | dampening = 0.3, width = 1 |

`u` is ``v - A`` (membrane potential minus threshold). For the triangle, Bellec et al. use
``width = theta``, which ``make_spike_fn('triangle', width=theta)`` reproduces.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from neurosim.errors import NetworkError

SpikeFn = Callable[[torch.Tensor], torch.Tensor]


def _pseudo_derivative(name: str, u: torch.Tensor, p: dict[str, float]) -> torch.Tensor:
    if name == "fast_sigmoid":
        return 1.0 / (1.0 + p["slope"] * u.abs()) ** 2
    if name == "atan":
        a = p["alpha"]
        return (a / 2) / (1 + (math.pi / 2 * a * u) ** 2)
    if name == "triangle":
        w = p["width"]
        return p["dampening"] * torch.clamp(1.0 - u.abs() / w, min=0.0) / w
    raise NetworkError("surrogate", f"expected one of {sorted(DEFAULTS)}, got {name!r}")


DEFAULTS: dict[str, dict[str, float]] = {
    "fast_sigmoid": {"slope": 25.0},
    "atan": {"alpha": 2.0},
    "triangle": {"dampening": 0.3, "width": 1.0},
}


class _Heaviside(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, name: str, params: dict[str, float]) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.name, ctx.params = name, params
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, None, None]:
        (u,) = ctx.saved_tensors
        return grad * _pseudo_derivative(ctx.name, u, ctx.params), None, None


def make_spike_fn(name: str = "fast_sigmoid", **params: float) -> SpikeFn:
    """Heaviside with the named surrogate; `params` override the defaults in the table above."""
    if name not in DEFAULTS:
        raise NetworkError("surrogate", f"expected one of {sorted(DEFAULTS)}, got {name!r}")
    unknown = set(params) - set(DEFAULTS[name])
    if unknown:
        raise NetworkError(f"surrogate.{sorted(unknown)[0]}",
                           f"not a parameter of {name!r} (expected {sorted(DEFAULTS[name])})")
    p = {**DEFAULTS[name], **{k: float(v) for k, v in params.items()}}
    for k, v in p.items():
        if not (math.isfinite(v) and v > 0):
            raise NetworkError(f"surrogate.{k}", f"expected a finite value > 0, got {v}")

    def spike(u: torch.Tensor) -> torch.Tensor:
        if not (torch.is_grad_enabled() and u.requires_grad):  # no graph: the plain Heaviside
            return (u > 0).to(u.dtype)
        return _Heaviside.apply(u, name, p)

    spike.surrogate = name  # type: ignore[attr-defined]
    spike.params = p  # type: ignore[attr-defined]
    return spike


def pseudo_derivative(name: str, u: torch.Tensor, **params: float) -> torch.Tensor:
    """The surrogate's dH/du at `u` (for tests and for the online rules' eligibility traces)."""
    return _pseudo_derivative(name, u, {**DEFAULTS[name], **params})

"""Event-driven dense projection for sparse spike inputs: ``x = s @ W`` over the active entries
of s only, forward (a gather-sum of the rows of W named by the active inputs) and the weight
gradient (the output gradient scattered into those rows), one compiled call each; the input
gradient, where s needs one, is the dense ``dx @ W^T``.

Cost per row of s: density * n_in * n_out additions, against n_in * n_out multiply-adds of a
GEMM running at several times the scalar rate; :data:`CROSSOVER` is the density below which the
event-driven form was measured faster (``bench/peers.py --crossover``: 700 -> 1024, 8000 rows,
1 thread, forward + weight gradient, 2-core machine under load: 7.2x faster at 1%, 4.0x at 5%,
2.0x at 10%, 1.03x at 20%, 0.75x at 30%; break-even near 20%; bench/RESULTS.md).
:func:`project` chooses per call from the measured density of s.
"""
from __future__ import annotations

from typing import Any

import torch

# input density (nonzero fraction) below which the event-driven projection is used (measured)
CROSSOVER = 0.2

_KERNELS: list[Any] = []


def _kernels() -> tuple[Any, Any]:
    if not _KERNELS:
        import numba

        @numba.njit(nogil=True, cache=True)
        def gather(s, w, out):  # pragma: no cover (compiled)
            """out[r] = sum_j s[r, j] * w[j] over the nonzero s[r, j]."""
            R, n_in = s.shape
            n_out = w.shape[1]
            for r in range(R):
                for k in range(n_out):
                    out[r, k] = 0.0
                for j in range(n_in):
                    v = s[r, j]
                    if v != 0.0:
                        for k in range(n_out):
                            out[r, k] += v * w[j, k]

        @numba.njit(nogil=True, cache=True)
        def scatter(s, dx, dw):  # pragma: no cover (compiled)
            """dw[j] += s[r, j] * dx[r] over the nonzero s[r, j]."""
            R, n_in = s.shape
            n_out = dx.shape[1]
            for r in range(R):
                for j in range(n_in):
                    v = s[r, j]
                    if v != 0.0:
                        for k in range(n_out):
                            dw[j, k] += v * dx[r, k]

        _KERNELS[:] = [gather, scatter]
    return _KERNELS[0], _KERNELS[1]


class _EventMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, s: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        gather, _ = _kernels()
        s_c, w_c = s.detach().contiguous(), w.detach().contiguous()
        out = torch.empty(s.shape[0], w.shape[1], dtype=w.dtype)
        gather(s_c.numpy(), w_c.numpy(), out.numpy())
        ctx.save_for_backward(s_c, w_c)
        return out

    @staticmethod
    def backward(ctx: Any, dx: torch.Tensor) -> tuple[Any, Any]:
        _, scatter = _kernels()
        s, w = ctx.saved_tensors
        dx = dx.contiguous()
        dw = None
        if ctx.needs_input_grad[1]:
            dw = torch.zeros_like(w)
            scatter(s.numpy(), dx.numpy(), dw.numpy())
        ds = dx @ w.t() if ctx.needs_input_grad[0] else None
        return ds, dw


def event_matmul(s: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``s @ w`` (R, n_out) computed over the nonzero entries of s (R, n_in) only (CPU)."""
    return _EventMatmul.apply(s, w)


def density(s: torch.Tensor) -> float:
    """Fraction of nonzero entries of `s`."""
    return float(torch.count_nonzero(s)) / max(s.numel(), 1)


def project(s: torch.Tensor, w: torch.Tensor, crossover: float = CROSSOVER) -> torch.Tensor:
    """``s @ w``: event-driven where `s` is sparser than `crossover` (on the CPU), else the GEMM."""
    if s.device.type == "cpu" and s.dtype == w.dtype and density(s) < crossover:
        return event_matmul(s, w)
    return s @ w

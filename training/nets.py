"""Standard trainable networks: input -> recurrent LIF/ALIF hidden layer -> LI readout; and a small
convolutional SNN (conv_network, trained as a shared kernel by ConvSNN)."""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neurosim import ALIF, LI, LIF, Network, Population, Projection, SpikeInput
from neurosim.errors import NetworkError

from .layers import SNN


def recurrent_network(n_in: int, n_hidden: int, n_out: int, *, model: Literal["lif", "alif"] = "alif",
                      dt: float = 1e-3, tau_mem: float = 20e-3, tau_adapt: float = 200e-3,
                      adapt: float = 1.8, alif_fraction: float = 0.5, recurrent: bool = True,
                      delay: int = 1, seed: int = 0, reset: Literal["subtract", "zero"] = "subtract",
                      readout: Literal["li", "lif"] = "li") -> Network:
    """'in' (SpikeInput) -> 'hidden' (LIF, or ALIF as in LSNN: a fraction `alif_fraction` adaptive)
    -> 'out' (readout, tau_mem: LI, non-spiking, or LIF with theta = 1); weights ~ N(0, 1/fan_in)
    (times theta = 1), no self-loops. `reset` ('subtract' or 'zero') is the reset of the hidden
    neurons and of a LIF readout. model 'lif', reset 'zero' and either readout is what Lava's LIF
    and lava-dl NetX run (mapping.netx)."""
    if model not in ("lif", "alif"):
        raise NetworkError("model", f"expected 'lif' or 'alif', got {model!r}")
    if reset not in ("subtract", "zero"):
        raise NetworkError("reset", f"expected 'subtract' or 'zero', got {reset!r}")
    if readout not in ("li", "lif"):
        raise NetworkError("readout", f"expected 'li' or 'lif', got {readout!r}")
    rng = np.random.default_rng(seed)
    if model == "alif":
        n_adapt = int(round(alif_fraction * n_hidden))
        b = np.where(np.arange(n_hidden) < n_adapt, adapt, 0.0)
        hidden = ALIF.from_tau(dt, tau_mem=tau_mem, tau_adapt=tau_adapt, adapt=b, theta=1.0, reset=reset)
    else:
        hidden = LIF.from_tau(dt, tau_mem=tau_mem, theta=1.0, reset=reset)
    out = (LIF.from_tau(dt, tau_mem=tau_mem, theta=1.0, reset=reset) if readout == "lif"
           else LI.from_tau(dt, tau_mem=tau_mem))
    rec = rng.normal(0.0, 1.0 / np.sqrt(n_hidden), (n_hidden, n_hidden))
    np.fill_diagonal(rec, 0.0)
    projs = [Projection("in_hidden", "in", "hidden", rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_in, n_hidden))),
             Projection("hidden_out", "hidden", "out", rng.normal(0.0, 1.0 / np.sqrt(n_hidden), (n_hidden, n_out)))]
    if recurrent:
        projs.insert(1, Projection("hidden_hidden", "hidden", "hidden", rec, delay=delay))
    return Network(dt=dt, name=f"{model}_{n_in}x{n_hidden}x{n_out}", inputs=[SpikeInput("in", n_in)],
                   populations=[Population("hidden", n_hidden, hidden),
                                Population("out", n_out, out)],
                   projections=projs)


# --------------------------------------------------------------------------------------------
# A small convolutional SNN: in (image) -> 'conv' (LIF, shared k x k kernels) -> 'out' (LI)


def conv_matrix(kernel: np.ndarray, image: tuple[int, int]) -> np.ndarray:
    """Dense (C_in*H*W, C_out*H*W) matrix of torch's conv2d with 'same' zero padding (odd k):
    ``M[(c, y + dy - k//2, x + dx - k//2), (o, y, x)] = kernel[o, c, dy, dx]``, indices row-major."""
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 4 or kernel.shape[2] != kernel.shape[3] or kernel.shape[2] % 2 == 0:
        raise NetworkError("kernel", f"expected (C_out, C_in, k, k) with odd k, got shape {kernel.shape}")
    c_out, c_in, k, _ = kernel.shape
    h, w = image
    m = np.zeros((c_in * h * w, c_out * h * w))
    y, x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for dy in range(k):
        for dx in range(k):
            yy, xx = y + dy - k // 2, x + dx - k // 2
            ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            for o in range(c_out):
                for c in range(c_in):
                    m[(c * h + yy[ok]) * w + xx[ok], (o * h + y[ok]) * w + x[ok]] = kernel[o, c, dy, dx]
    return m


def conv_network(image: tuple[int, int] = (8, 8), channels: int = 8, kernel_size: int = 3, n_out: int = 10, *,
                 in_channels: int = 1, dt: float = 1e-3, tau_mem: float = 20e-3, seed: int = 0) -> Network:
    """'in' (in_channels*H*W pixels) -> 'conv' (channels*H*W LIF, 'same' k x k convolution, its
    dense matrix from :func:`conv_matrix`) -> 'out' (LI readout, dense); weights ~ N(0, 1/fan_in)."""
    rng = np.random.default_rng(seed)
    h, w = image
    kernel = rng.normal(0.0, 1.0 / np.sqrt(in_channels * kernel_size**2),
                        (channels, in_channels, kernel_size, kernel_size))
    n_conv = channels * h * w
    return Network(
        dt=dt, name=f"conv{channels}x{kernel_size}_{h}x{w}", inputs=[SpikeInput("in", in_channels * h * w)],
        populations=[Population("conv", n_conv, LIF.from_tau(dt, tau_mem=tau_mem, theta=1.0)),
                     Population("out", n_out, LI.from_tau(dt, tau_mem=tau_mem))],
        projections=[Projection("in_conv", "in", "conv", conv_matrix(kernel, image)),
                     Projection("conv_out", "conv", "out", rng.normal(0.0, 1.0 / np.sqrt(n_conv), (n_conv, n_out)))])


class ConvSNN(SNN):
    """The SNN of a :func:`conv_network` network whose projection 'in_conv' is trained as one
    shared kernel (C_out, C_in, k, k), applied with F.conv2d; everything else is :class:`SNN`.
    The kernel is read back from the dense matrix, which must be exactly a convolution."""

    def __init__(self, network: Network, image: tuple[int, int], kernel_size: int, in_channels: int = 1,
                 surrogate: str = "fast_sigmoid", dtype: torch.dtype = torch.float32, **surrogate_params: float) -> None:
        super().__init__(network, surrogate, dtype, **surrogate_params)
        proj = {j.name: j for j in network.projections}.get("in_conv")
        if proj is None or proj.is_sparse or np.ndim(proj.delay) or int(proj.delay) != 1:
            raise NetworkError("projections.in_conv", "expected a dense projection 'in_conv' with delay 1")
        for j in network.projections:
            if j.is_sparse:
                raise NetworkError(f"projections.{j.name}", "ConvSNN supports dense projections only")
        h, w = image
        k, p = kernel_size, kernel_size // 2
        dense = np.asarray(proj.weights)
        c_out = dense.shape[1] // (h * w)
        if dense.shape != (in_channels * h * w, c_out * h * w) or h <= 2 * p or w <= 2 * p:
            raise NetworkError("projections.in_conv", f"shape {dense.shape} is not a 'same' convolution of "
                                                      f"{in_channels}x{h}x{w} images with {k}x{k} kernels")
        kernel = np.zeros((c_out, in_channels, k, k))
        for o in range(c_out):
            for c in range(in_channels):
                for dy in range(k):
                    for dx in range(k):  # output pixel (p, p) sees input (dy, dx)
                        kernel[o, c, dy, dx] = dense[(c * h + dy) * w + dx, (o * h + p) * w + p]
        if not np.array_equal(conv_matrix(kernel, image), dense):
            raise NetworkError("projections.in_conv", "the weights are not a shared-kernel convolution")
        self.image, self.kernel_size, self.in_channels = (h, w), k, in_channels
        del self.weights["in_conv"]
        self.kernel = nn.Parameter(torch.tensor(kernel, dtype=dtype))
        self._routes = [r for r in self._routes if r[0] != "in_conv"]
        self._cache = None
        self._in, self._conv = self.slices["in"], self.slices["conv"]

    def synaptic_input(self, history) -> torch.Tensor:  # type: ignore[override]
        """SNN.synaptic_input plus ``conv2d(image spikes[t-1], kernel)`` into 'conv'."""
        x = super().synaptic_input(history)
        h = history[0]
        img = h[:, self._in[0]:self._in[1]].reshape(h.shape[0], self.in_channels, *self.image)
        xc = F.conv2d(img, self.kernel, padding=self.kernel_size // 2).flatten(1)
        lo, hi = self._conv
        return torch.cat([x[:, :lo], x[:, lo:hi] + xc, x[:, hi:]], dim=1)

    def to_network(self) -> Network:
        """The network with the current kernel (as its dense convolution matrix) and weights."""
        k = self.kernel.detach().cpu().double().numpy()
        projs = [Projection(j.name, j.pre, j.post,
                            conv_matrix(k, self.image) if j.name == "in_conv"
                            else self.weights[j.name].detach().cpu().double().numpy(), j.delay)
                 for j in self.network.projections]
        return self.network.replace(projections=tuple(projs))

"""Quantisation-aware training of a layered (convolutional) model: :class:`QuantizedLayeredSNN`,
the :class:`training.layered.LayeredSNN` whose forward pass is its Network's fixed-point run.

The fixed-point mode runs a conv or pooling layer as Lava's Conv process does
(:class:`neurosim.fixed_point.FixedConv`: kernel mantissas shifted by an exponent in [0, 7], the
step's sum wrapped to signed 24 bits), or, where quantize lowers it, as its exact CSR lowering
(exponent in [-8, 7], no wrap); with one gain and one scale S per output channel the mantissas are
the kernel's (:func:`training.quantized.weights.quantize_weight` on the kernel, the exponent from
its largest taps) either way, so the layer runs as torch's conv2d on integer mantissas, shifted by
the exponent. Pooling windows (fixed weights) take quantize's own mantissa and exponent. The neurons: as the recurrent
model (:mod:`training.quantized.neurons`). Only weights train: trainable beta, theta or biases
would change the neurons' integers, and are refused.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from neurosim.errors import NetworkError
from neurosim.fixed_point import CONV_WEIGHT_EXP_RANGE, WEIGHT_EXP_RANGE, FixedConv, quantize

from ..layered import LayeredSNN, to_network
from ..layers import SNNState
from .integer_step import wrap24_sum
from .neurons import FixedPointNeurons, check_float64
from .weights import QuantizedWeight, quantize_weight, shift_input


class QuantizedLayeredSNN(FixedPointNeurons, LayeredSNN):
    """The layered model of `layers` on inputs of `in_shape` running Loihi's fixed-point arithmetic
    (module docstring); `dt` (seconds) only names the Network that is quantised. float64 only."""

    def __init__(self, layers: Sequence[Any], in_shape: tuple[int, ...], *, dt: float,
                 surrogate: str = "fast_sigmoid", dtype: torch.dtype = torch.float64, seed: int = 0,
                 **surrogate_params: float) -> None:
        check_float64(dtype)
        super().__init__(layers, in_shape, surrogate=surrogate, dtype=dtype, seed=seed, **surrogate_params)
        for j, s in enumerate(self.specs):
            if s.train:
                raise NetworkError(f"arch[{j}].train", "trainable beta or theta change the neurons' integers; "
                                                       "quantisation-aware training trains weights only")
            if s.bias and s.kind != "pool":
                raise NetworkError(f"arch[{j}].bias", "a trainable bias changes the neurons' integers; "
                                                      "quantisation-aware training trains weights only")
        net = to_network(self, dt)
        fixed = quantize(net)  # the neurons' integers and the pooling windows' mantissas: the one definition
        self.init_fixed_neurons(fixed)
        self._lava_conv = {q.name for q in fixed.projections if isinstance(q, FixedConv)}  # else lowered
        self._pool: dict[str, tuple[float, int]] = {}
        self._channel: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for b in self.blocks:
            s = b["spec"]
            lo, hi = self.slices[s.name]
            if s.kind == "pool":
                q = next(q for q in fixed.projections if q.name == s.name)
                m = q.effective_weights[q.effective_weights != 0]
                self._pool[s.name] = (float(m[0]) if m.size else 0.0, q.weight_exp)
                continue
            gain = torch.as_tensor(net.population(s.name).params.gain, dtype=torch.float64)
            scale = self.q_scale[lo:hi]
            if s.kind == "conv":  # one gain and one scale per output channel
                gain, scale = (x.reshape(s.size, -1) for x in (gain, scale))
                if not (torch.all(gain == gain[:, :1]) and torch.all(scale == scale[:, :1])):
                    raise NetworkError(f"arch.{s.name}", "a conv layer needs one gain and one threshold per channel")
                gain, scale = gain[:, 0].reshape(-1, 1, 1, 1), scale[:, 0].reshape(-1, 1, 1, 1)
            self._channel[s.name] = (gain, scale)
        self._quantized: dict[str, tuple[tuple[int, int], QuantizedWeight]] = {}

    def initial_state(self, batch: int) -> SNNState:
        """The fixed-point network's u0, v0, a0 (in float units); no spikes in flight."""
        return self.fixed_initial_state(super().initial_state(batch))

    def quantized_weights(self) -> dict[str, QuantizedWeight]:
        """Mantissas, exponent, sign mode and slope of every conv, dense and recurrent weight (no
        graph), recomputed only when the float weights changed."""
        out = {}
        for b in self.blocks:
            s = b["spec"]
            names = [] if s.kind == "pool" else [s.name] + ([f"{s.name}_rec"] if s.kind == "rdense" else [])
            for name in names:
                w = self.weights[name]
                key = (w.data_ptr(), w._version)
                cached = self._quantized.get(name)
                if cached is None or cached[0] != key:
                    gain, scale = self._channel[s.name]
                    exps = CONV_WEIGHT_EXP_RANGE if name in self._lava_conv else WEIGHT_EXP_RANGE
                    cached = (key, quantize_weight(w.detach(), gain, scale, f"arch.{name}.weights", exps))
                    self._quantized[name] = cached
                out[name] = cached[1]
        return out

    def _integer_input(self, k: int, pre: torch.Tensor, q: dict[str, QuantizedWeight]) -> torch.Tensor:
        """shift(op_k(pre) on the mantissas, e) of block k, flattened (B, n_k)."""
        s = self.blocks[k]["spec"]
        x = pre.reshape(pre.shape[0], *self.blocks[k]["in_shape"])
        if s.kind == "pool":
            m, e = self._pool[s.name]
            y = F.avg_pool2d(x, s.size, divisor_override=1) * m
        else:
            qw = q[s.name]
            w = qw.attach(self.weights[s.name]) if torch.is_grad_enabled() else qw.mantissas
            y = (F.conv2d(x, w, stride=s.stride, padding=s.padding, dilation=s.dilation, groups=s.groups)
                 if s.kind == "conv" else x @ w)
            e = qw.exponent
        a_in = shift_input(y.reshape(pre.shape[0], -1), e)
        return wrap24_sum(a_in) if s.name in self._lava_conv else a_in

    def synaptic_input(self, history: Sequence[torch.Tensor]) -> torch.Tensor:
        """a_in[t] (B, N) of all layers from the spikes of t - 1, on the mantissas (module docstring)."""
        h = history[0]
        q = self.quantized_weights()
        parts = []
        for k, b in enumerate(self.blocks):
            a, z = self.source_columns(k)
            x = self._integer_input(k, h[:, a:z], q)
            s = b["spec"]
            if s.kind == "rdense":
                lo, hi = self.slices[s.name]
                qr = q[f"{s.name}_rec"]
                w = qr.attach(self.weights[f"{s.name}_rec"]) if torch.is_grad_enabled() else qr.mantissas
                x = x + shift_input(h[:, lo:hi] @ w, qr.exponent)
            parts.append(x)
        return torch.cat(parts, dim=1)

    def step(self, state: SNNState, sources: torch.Tensor) -> SNNState:
        """One step of the fixed-point network; `sources` (B, S) this step's input spikes."""
        neurons = self.fixed_step(state.neurons, self.synaptic_input(state.history))
        z_all = torch.cat([neurons.z, sources.to(neurons.z.dtype)], dim=1)
        return SNNState(neurons, (z_all,))

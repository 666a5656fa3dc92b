"""Quantisation-aware training (``neurosim train --quantize loihi``): :class:`QuantizedSNN`, the
torch module of a Network whose forward pass is the Network's fixed-point run.

The neurons' integers (du, dv, vth, bias, adaptation, scales S) are those of
:func:`neurosim.fixed_point.quantize` on the module's network (they do not depend on the
weights, and the module trains weights only); the weights are quantised from the trainable
float weights, again whenever they change, by :func:`training.quantized.weights.quantize_weight` (the rule of
quantize); the neurons step by :func:`training.quantized.integer_step.neuron_step_fixed_torch`.
So for the exported network ``net = module.to_network()``, ``simulate_fixed(quantize(net), ...)``
gives the module's forward spikes exactly (tests/test_qat.py), and the gradients are the float
network's, straight through the roundings.

The state and its integers: :mod:`training.quantized.neurons`.
"""
from __future__ import annotations

from typing import Any

import torch

from neurosim.errors import NetworkError
from neurosim.fixed_point import quantize
from neurosim.network import Network

from ..layers import SNN, SNNState
from .neurons import FixedPointNeurons, check_float64
from .weights import QuantizedWeight, quantize_weight, shift_input

QUANTIZE_MODES = ("loihi",)


class QuantizedSNN(FixedPointNeurons, SNN):
    """The :class:`training.layers.SNN` of `network` running Loihi's fixed-point arithmetic
    (module docstring); float64 only. Refuses (NetworkError naming the field) what quantize
    refuses and projections whose (pre, post) pairs carry synapses of several delays."""

    def __init__(self, network: Network, surrogate: str = "fast_sigmoid", dtype: torch.dtype = torch.float64,
                 **surrogate_params: float) -> None:
        check_float64(dtype)
        super().__init__(network, surrogate, dtype, fused=False, **surrogate_params)
        if self._stacked:
            raise NetworkError(f"projections.{next(iter(self._stacked))}.delay",
                               "pairs with synapses of several delays are not supported by quantisation-aware training")
        self.init_fixed_neurons(quantize(network))  # the neurons' integers: the one definition
        gains = {pop.name: torch.as_tensor(pop.params.gain, dtype=torch.float64) for pop in network.populations}
        self._post_gain = {name: gains[post_pop] for name, post_pop in
                           ((proj.name, proj.post) for proj in network.projections)}
        self._post_pop = {proj.name: proj.post for proj in network.projections}
        self._quantized: dict[str, tuple[tuple[int, int], QuantizedWeight]] = {}

    def initial_state(self, batch: int) -> SNNState:
        """The fixed-point network's u0, v0, a0 (in float units); no spikes in flight."""
        return self.fixed_initial_state(super().initial_state(batch))

    # ---------------------------------------------------------------- the step
    def quantized_weights(self) -> dict[str, QuantizedWeight]:
        """Every projection's mantissas, exponent, sign mode and slope (no graph), recomputed
        only when its float weights changed (their in-place version counter or storage)."""
        out = {}
        for name, (w, per_delay, _, (lo, hi)) in zip(self._post_pop, self._refs()[1]):
            key = (w.data_ptr(), w._version)
            cached = self._quantized.get(name)
            if cached is None or cached[0] != key:
                masks = [m for _, m, _ in per_delay if m is not None]
                eff = w.detach() if not masks else w.detach() * sum(masks)
                cached = (key, quantize_weight(eff, self._post_gain[name].to(w.device), self.q_scale[lo:hi],
                                               f"projections.{name}.weights"))
                self._quantized[name] = cached
            out[name] = cached[1]
        return out

    def synaptic_input(self, history: Any) -> torch.Tensor:
        """a_in[t] = sum over projections k and delays d of shift(z_pre[t - d] @ (m'_k * mask_d), e_k), (B, N)."""
        batch = history[0].shape[0]
        parts: dict[tuple[int, int], torch.Tensor] = {}
        for qw, (w, per_delay, (plo, phi), post) in zip(self.quantized_weights().values(), self._refs()[1]):
            m = qw.attach(w) if torch.is_grad_enabled() and w.requires_grad else qw.mantissas
            for d, mask, _ in per_delay:
                acc = history[d - 1][:, plo:phi] @ (m if mask is None else m * mask)
                term = shift_input(acc, qw.exponent)
                parts[post] = parts[post] + term if post in parts else term
        x = [parts[key] if key in parts else history[0].new_zeros(batch, key[1] - key[0]) for key in self._post_order]
        return x[0] if len(x) == 1 else torch.cat(x, dim=1)

    def step(self, state: SNNState, sources: torch.Tensor) -> SNNState:
        """One step of the fixed-point network (module docstring); `sources` (B, S) this step's input spikes."""
        neurons = self.fixed_step(state.neurons, self.synaptic_input(state.history))
        z_all = torch.cat([neurons.z, sources.to(neurons.z.dtype)], dim=1)
        return SNNState(neurons, (z_all,) + state.history[:-1])

    def uses_fused(self, x: torch.Tensor) -> bool:
        """Never: the fixed-point step runs in torch."""
        return False


def quantized_model(network: Network, mode: str, surrogate: str = "fast_sigmoid",
                    dtype: torch.dtype = torch.float64) -> QuantizedSNN:
    """The quantisation-aware module of `network` for `mode` (one of :data:`QUANTIZE_MODES`)."""
    if mode not in QUANTIZE_MODES:
        raise NetworkError("quantize", f"expected one of {', '.join(QUANTIZE_MODES)}, got {mode!r}")
    return QuantizedSNN(network, surrogate, dtype)

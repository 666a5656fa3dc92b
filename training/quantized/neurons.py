"""The fixed-point neurons of a quantisation-aware module (shared by the recurrent and the
layered model): the integers of :func:`neurosim.fixed_point.quantize` as buffers, the state's
conversion between the float network's units and the integers, and the step.

The state is a :class:`training.layers.SNNState` in the float network's units (i = (u + bias) / S,
v = v_int / S, a = a_int / 2**a_exp, as :func:`neurosim.fixed_point.fixed_traces`), so every rule
of the BPTT family and the loss (the readout's v) work unchanged; each step recovers the
integers by rounding (exact in float64: ``|v_int| < 2**24``), hence float64 only.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from neurosim.errors import NetworkError
from neurosim.fixed_point import FixedPointNetwork, FixedState
from neurosim.models import NeuronState

from ..layers import SNNState
from .integer_step import TorchFixedParams, fixed_params, neuron_step_fixed_torch, straight_through


def check_float64(dtype: torch.dtype) -> None:
    """The integers are carried in float64 tensors: any other dtype is refused."""
    if dtype != torch.float64:
        raise NetworkError("dtype", "the fixed-point forward pass carries its integers exactly in float64 "
                                    f"tensors; got {dtype} (use --dtype float64)")


class FixedPointNeurons:
    """Mixin of a torch module with ``slices`` (population -> (lo, hi)), ``spike_fn`` and
    ``register_buffer``: :meth:`init_fixed_neurons` stores the integers of a FixedPointNetwork."""

    slices: Mapping[str, tuple[int, int]]

    def init_fixed_neurons(self, fixed: FixedPointNetwork) -> None:
        """Buffers q_* (TorchFixedParams fields and u0, v0, a0) of every neuron of `fixed`, whose
        populations must be laid out as the module's slices (in order, contiguous from 0)."""
        order = [self.slices[q.name] for q in fixed.populations]
        if order[0][0] != 0 or any(a[1] != b[0] for a, b in zip(order, order[1:])):
            raise NetworkError("populations", "the module lays its neurons out in another order than the "
                                              "fixed-point network")
        p = fixed_params(fixed)
        for f in p._fields:
            self.register_buffer(f"q_{f}", getattr(p, f))  # type: ignore[attr-defined]
        for k in ("u0", "v0", "a0"):
            self.register_buffer(f"q_{k}", torch.as_tensor(  # type: ignore[attr-defined]
                np.concatenate([np.broadcast_to(getattr(q, k), (q.size,)) for q in fixed.populations]),
                dtype=torch.float64))

    @property
    def fixed(self) -> TorchFixedParams:
        """The integer parameters of all neurons, (N,) each."""
        return TorchFixedParams(*(getattr(self, f"q_{f}") for f in TorchFixedParams._fields))

    def to_integers(self, s: NeuronState) -> FixedState:
        """The integer state (u, v, a, z, r) of a float-unit NeuronState (rounding, straight through)."""
        p = self.fixed
        u = straight_through(s.i * p.scale, torch.round) - p.bias
        return FixedState(u, straight_through(s.v * p.scale, torch.round),
                          straight_through(s.a * p.a_scale, torch.round), s.z, s.r)

    def to_float_units(self, s: FixedState) -> NeuronState:
        """The NeuronState of an integer state: i = (u + bias) / S, v = v / S, a = a / 2**a_exp."""
        p = self.fixed
        return NeuronState((s.u + p.bias) / p.scale, s.v / p.scale, s.a / p.a_scale, s.z, s.r)

    def fixed_initial_state(self, st: SNNState) -> SNNState:
        """`st` (a float module's initial state) with the fixed-point network's u0, v0, a0."""
        z = st.neurons.z
        ints = FixedState(self.q_u0.expand_as(z), self.q_v0.expand_as(z), self.q_a0.expand_as(z),  # type: ignore[attr-defined]
                          z, st.neurons.r)
        return SNNState(self.to_float_units(ints), st.history)

    def fixed_step(self, s: NeuronState, a_in: torch.Tensor) -> NeuronState:
        """One integer neuron step (neuron_step_fixed_torch) from and to the float units."""
        ints = neuron_step_fixed_torch(self.fixed, self.to_integers(s), a_in, self.spike_fn)  # type: ignore[attr-defined]
        return self.to_float_units(ints)

"""A layered SNN in torch: conv, pool, flatten, dense and recurrent dense layers on torch's
conv2d / avg_pool2d / matmul, every neuron updated by neurosim's canonical
:func:`neurosim.models.neuron_step` (one call per step over all layers' neurons).

Timing is the Network's: a layer's spikes of step t reach the next layer at t + 1 (every
projection has delay 1, as neurosim's), so with input spikes s[t] and layer outputs z_l::

    x_1[t] = op_1(s[t-1]),   x_l[t] = op_l(z_{l-1}[t-1]) (+ z_l[t-1] @ W_rec for rdense) (+ bias_l)
    (i, v, a, z, r)[t] = neuron_step(params, state[t-1], x[t])

The state is the one :class:`training.layers.SNNState` every rule drives (neurons (B, N) of all
layers concatenated in layer order, history[0] = (B, N + S) spikes sent at t - 1, S input
channels), so BPTT, truncated and budgeted BPTT, OTTT and rate-based BP train it unchanged (OTTT and
rate-based BP train the kernels and matrices; trainable beta, theta and biases get their
gradients from the BPTT family), and e-prop where every layer is dense.
Per-neuron trainable beta and theta (``train=beta+theta``, PLIF-like): the parameters
themselves, clamped to [0, 1] (beta) and [1e-3, inf) (theta) in the step, so the values a
Network stores are the values used. Layer biases are the neurons' `bias` (one per channel).
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neurosim.errors import NetworkError
from neurosim.models import ALIF, IF, LI, LIF, NeuronParams, NeuronState, neuron_step

from ..layers import SNNState, run_recorded
from ..surrogate import make_spike_fn
from .spec import LayerSpec, finish

Shape = tuple[int, ...]


def neuron_record(s: LayerSpec) -> Union[LIF, ALIF, IF, LI]:
    """The neurosim model record of layer `s` (its neuron options)."""
    if s.neuron == "lif":
        return LIF(beta=s.beta, alpha=s.alpha, theta=s.theta, reset=s.reset)  # type: ignore[arg-type]
    if s.neuron == "alif":
        return ALIF(beta=s.beta, alpha=s.alpha, theta=s.theta, rho=s.rho, adapt=s.adapt, reset=s.reset)  # type: ignore[arg-type]
    if s.neuron == "if":
        return IF(theta=s.theta, reset=s.reset)  # type: ignore[arg-type]
    return LI(beta=s.beta, alpha=s.alpha)


def out_shape(s: LayerSpec, shape: Shape, where: str) -> Shape:
    """Output shape of layer `s` for input `shape`; errors name `where` and the expected form."""
    if s.kind in ("conv", "pool"):
        if len(shape) != 3:
            raise NetworkError(f"{where}", f"a {s.kind} layer needs (C, H, W) input, got {shape}")
        c, h, w = shape
        if s.kind == "pool":
            if h < s.size or w < s.size:
                raise NetworkError(f"{where}.size", f"pool kernel {s.size} larger than the input {shape}")
            return (c, h // s.size, w // s.size)
        if c % s.groups or s.size % s.groups:
            raise NetworkError(f"{where}.groups", f"in channels {c} and out channels {s.size} must be "
                                                  f"multiples of groups {s.groups}")
        span = s.dilation * (s.kernel - 1) + 1
        ho, wo = ((n + 2 * s.padding - span) // s.stride + 1 for n in (h, w))
        if ho < 1 or wo < 1:
            raise NetworkError(f"{where}.kernel", f"kernel {s.kernel} (dilation {s.dilation}) does not fit "
                                                  f"the input {shape} with padding {s.padding}")
        return (s.size, ho, wo)
    if s.kind == "flatten":
        return (int(np.prod(shape)),)
    if len(shape) != 1:
        raise NetworkError(f"{where}", f"a dense layer needs flat input: put flatten before it (input {shape})")
    return (s.size,)


class LayeredSNN(nn.Module):
    """The layered SNN of `layers` (LayerSpec list, or a string for training.layered.parse_arch)
    on inputs of shape `in_shape` ((C, H, W) or (n,)); weights ~ N(0, scale^2 / fan_in) from
    `seed`. :meth:`step` and :meth:`initial_state` are those of training.layers.SNN; the exact
    Network: training.layered.to_network(model, dt)."""

    max_delay = 1
    input_grad = False  # as training.layers.SNN: input spikes stay out of the graph unless they require grad

    def __init__(self, layers: Sequence[LayerSpec], in_shape: Shape, *, surrogate: str = "fast_sigmoid",
                 dtype: torch.dtype = torch.float32, seed: int = 0, **surrogate_params: float) -> None:
        super().__init__()
        self.specs = finish(layers)
        self.in_shape = tuple(int(n) for n in in_shape)
        self.spike_fn = make_spike_fn(surrogate, **surrogate_params)
        self.surrogate = surrogate
        self.fused = True  # the fused sequence path in forward() where it applies (training.fused.layered)
        gen = torch.Generator().manual_seed(seed)
        shape: Shape = self.in_shape
        src: Optional[int] = None  # index into self.blocks of the layer feeding the next one (None: input)
        self.blocks: list[dict[str, Any]] = []  # per neuron layer: spec, in/out shape, source block
        self.weights = nn.ParameterDict()
        self.slices: dict[str, tuple[int, int]] = {}
        fixed: dict[str, list[np.ndarray]] = {f: [] for f in NeuronParams._fields}
        n = 0
        for j, s in enumerate(self.specs):
            where = f"arch[{j}]"
            new = out_shape(s, shape, where)
            if s.kind == "flatten":
                shape = new
                continue
            size = int(np.prod(new))
            self.blocks.append(dict(spec=s, in_shape=shape, out_shape=new, src=src))
            fan_in = {"conv": (shape[0] // s.groups) * s.kernel**2, "dense": int(np.prod(shape)),
                      "rdense": int(np.prod(shape))}.get(s.kind)
            if s.kind == "conv":
                w = torch.randn(s.size, shape[0] // s.groups, s.kernel, s.kernel, generator=gen, dtype=torch.float64)
                self.weights[s.name] = nn.Parameter((w * s.scale / math.sqrt(fan_in)).to(dtype))
            elif s.kind in ("dense", "rdense"):
                w = torch.randn(int(np.prod(shape)), s.size, generator=gen, dtype=torch.float64)
                self.weights[s.name] = nn.Parameter((w * s.scale / math.sqrt(fan_in)).to(dtype))
                if s.kind == "rdense":
                    r = torch.randn(s.size, s.size, generator=gen, dtype=torch.float64) * s.scale / math.sqrt(s.size)
                    r.fill_diagonal_(0.0)
                    self.weights[f"{s.name}_rec"] = nn.Parameter(r.to(dtype))
            if s.bias and s.kind != "pool":
                self.weights[f"{s.name}_bias"] = nn.Parameter(torch.zeros(new[0], dtype=dtype))
            p = neuron_record(s).lower(size, f"{where}.neuron")
            for f in NeuronParams._fields:
                fixed[f].append(np.asarray(getattr(p, f)))
            for f in ("beta", "theta"):
                if f in s.train.split("+"):
                    self.weights[f"{s.name}_{f}"] = nn.Parameter(torch.as_tensor(getattr(p, f), dtype=dtype))
            self.slices[s.name] = (n, n + size)
            n += size
            shape, src = new, len(self.blocks) - 1
        self.n_neurons, self.n_sources = n, int(np.prod(self.in_shape))
        for f in NeuronParams._fields:
            self.register_buffer(f"p_{f}", torch.as_tensor(np.concatenate(fixed[f]), dtype=dtype))
        for k in ("v0", "i0", "a0"):
            self.register_buffer(k, torch.zeros(n, dtype=dtype))

    # ---------------------------------------------------------------- parameters
    @property
    def params(self) -> NeuronParams:
        """Per-neuron parameters (N,) of all layers; trainable beta/theta (clamped) where chosen."""
        out = {f: getattr(self, f"p_{f}") for f in NeuronParams._fields}
        for f, lo, hi in (("beta", 0.0, 1.0), ("theta", 1e-3, None), ("bias", None, None)):
            key = (lambda b: f"{b['spec'].name}_{f}")  # noqa: E731
            if not any(key(b) in self.weights for b in self.blocks):
                continue
            parts = []
            for b in self.blocks:
                a, z = self.slices[b["spec"].name]
                if key(b) not in self.weights:
                    parts.append(out[f][a:z])
                elif f == "bias":  # one per channel, broadcast over the positions
                    w = self.weights[key(b)]
                    parts.append(out[f][a:z] + w.repeat_interleave((z - a) // w.numel()))
                else:
                    parts.append(self.weights[key(b)].clamp(lo, hi))
            out[f] = torch.cat(parts)
        return NeuronParams(**out)

    @property
    def network(self) -> None:
        """No Network behind this module (training.layered.to_network converts it)."""
        return None

    # ---------------------------------------------------------------- the step
    def initial_state(self, batch: int) -> SNNState:
        """State before step 0: all zeros, no spikes in flight."""
        n, dt, dev = self.n_neurons, self.v0.dtype, self.v0.device
        z = lambda: torch.zeros(batch, n, dtype=dt, device=dev)  # noqa: E731
        return SNNState(NeuronState(z(), z(), z(), z(), z()),
                        (torch.zeros(batch, n + self.n_sources, dtype=dt, device=dev),))

    def layer_input(self, k: int, pre: torch.Tensor) -> torch.Tensor:
        """op_k of block k applied to its source's spikes `pre` (B, n_src), flattened (B, n_k);
        linear in `pre` (no bias, no recurrence)."""
        b = self.blocks[k]
        s = b["spec"]
        x = pre.reshape(pre.shape[0], *b["in_shape"])
        if s.kind == "conv":
            y = F.conv2d(x, self.weights[s.name], stride=s.stride, padding=s.padding, dilation=s.dilation,
                         groups=s.groups)
        elif s.kind == "pool":
            y = F.avg_pool2d(x, s.size, divisor_override=1 if s.mode == "sum" else None)
        else:
            y = x @ self.weights[s.name]
        return y.reshape(pre.shape[0], -1)

    def source_columns(self, k: int) -> tuple[int, int]:
        """Columns of the history (B, N + S) that block k reads: its source layer's or the input's."""
        src = self.blocks[k]["src"]
        if src is None:
            return (self.n_neurons, self.n_neurons + self.n_sources)
        return self.slices[self.blocks[src]["spec"].name]

    def synaptic_input(self, history: Sequence[torch.Tensor], input_grad: bool = True) -> torch.Tensor:
        """x[t] (B, N) of all layers from the spikes of t - 1 (module docstring); without
        `input_grad` the input channels are read detached (no gradient to them)."""
        h = history[0]
        parts = []
        for k, b in enumerate(self.blocks):
            a, z = self.source_columns(k)
            pre = h[:, a:z] if input_grad or b["src"] is not None else h[:, a:z].detach()
            x = self.layer_input(k, pre)
            s = b["spec"]
            if s.kind == "rdense":
                lo, hi = self.slices[s.name]
                x = x + h[:, lo:hi] @ self.weights[f"{s.name}_rec"]
            parts.append(x)
        return torch.cat(parts, dim=1)

    def step(self, state: SNNState, sources: torch.Tensor) -> SNNState:
        """One canonical step; `sources` are this step's input spikes (B, S), flattened row-major."""
        x = self.synaptic_input(state.history, self.input_grad or sources.requires_grad)
        neurons = neuron_step(self.params, state.neurons, x, self.spike_fn)
        z_all = torch.cat([neurons.z, sources.to(neurons.z.dtype)], dim=1)
        return SNNState(neurons, (z_all,))

    def overridden_step(self) -> list[str]:
        """The methods of the canonical step a subclass replaces (its forward then loops its own
        step; the fused path, which runs this class's dynamics, refuses it)."""
        return [f for f in ("step", "synaptic_input", "initial_state")
                if getattr(type(self), f) is not getattr(LayeredSNN, f)]

    def uses_fused(self, x: torch.Tensor) -> bool:
        """Never: the layered step always runs neuron_step in torch."""
        return False

    def forward(self, inputs: torch.Tensor, record: Sequence[str] = ("z", "v")
                ) -> tuple[dict[str, dict[str, torch.Tensor]], SNNState]:
        """Run inputs (T, B, S) or (T, B, *in_shape); ({layer: {var: (T, B, n)}}, final state)."""
        src = inputs.reshape(inputs.shape[0], inputs.shape[1], -1)
        if src.shape[2] != self.n_sources:
            raise NetworkError("inputs", f"expected (T, B, {self.n_sources}) or (T, B, *{self.in_shape}), "
                                         f"got {tuple(inputs.shape)}")
        from ..fused.layered import fused_forward, unsupported

        if self.fused and unsupported(self, src, record) is None:
            stacked, state = fused_forward(self, src, record)
        else:
            stacked, state = run_recorded(self.step, self.initial_state(src.shape[1]), src, record)
        return ({name: {k: v[:, :, a:z] for k, v in stacked.items()} for name, (a, z) in self.slices.items()},
                state)

    # ---------------------------------------------------------------- for the local rules
    def local_routes(self) -> list:
        """The projections as training.rules.local routes (LocalView): dense and recurrent
        layers as matrices, conv and pool layers as operators (OpRoute), all with delay 1."""
        from ..rules.local import OpRoute, Route

        names = [b["spec"].name for b in self.blocks]
        out = []
        for k, b in enumerate(self.blocks):
            s = b["spec"]
            a, z = self.source_columns(k)
            src = b["src"]
            fields = dict(name=s.name, index=k, pre=slice(a, z), post=slice(*self.slices[s.name]),
                          pre_pop=None if src is None else names[src], post_pop=s.name, delay=1,
                          weight=self.weights[s.name] if s.name in self.weights else None, mask=None,
                          feedforward=src is not None)
            if s.kind in ("dense", "rdense"):
                out.append(Route(**fields))
            else:
                out.append(OpRoute((lambda kk: lambda pre: self.layer_input(kk, pre))(k), **fields))
            if s.kind == "rdense":
                own = slice(*self.slices[s.name])
                out.append(Route(**dict(fields, name=f"{s.name}_rec", index=len(self.blocks) + k, pre=own,
                                        pre_pop=s.name, weight=self.weights[f"{s.name}_rec"], feedforward=False)))
        return out

"""Torch module of a neurosim Network: the canonical step, with a surrogate-gradient Heaviside.

:class:`SNN` holds one trainable dense weight matrix per projection (CSR projections keep
their sparsity through a fixed mask per delay; multapses are summed into one weight per
(pre, post, delay), and a projection whose pairs carry synapses of several delays holds a 3-D
weight, one matrix per delay), the lowered neuron parameters as buffers, and nothing
else: the time loop's state is an explicit :class:`SNNState`, passed in and returned by
:meth:`SNN.step`, so every learning rule (full, truncated or memory-budgeted BPTT, online
rules) drives the same step. :meth:`SNN.to_network` gives back a Network with the weights.
"""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from neurosim.errors import NetworkError
from neurosim.models import NeuronParams, NeuronState, neuron_step
from neurosim.network import CSR, Network, PoissonInput, Projection
from neurosim.plan import lower

from .surrogate import make_spike_fn


class SNNState(NamedTuple):
    """neurons: NeuronState of all neurons (B, N); history[k]: spikes of all neurons and input
    channels sent k + 1 steps ago, (B, N + S), k = 0 .. max_delay - 1."""

    neurons: NeuronState
    history: tuple[torch.Tensor, ...]


class SNN(nn.Module):
    """Differentiable simulation of `network` (SpikeInputs and PoissonInputs are both given as
    spike tensors to :meth:`forward`); `surrogate` names the pseudo-derivative (see
    training.surrogate). Input spikes are data: the graph leaves them out (no dL/d(input) product
    per step) unless a step's sources require grad or `input_grad` is set."""

    input_grad = False

    def __init__(self, network: Network, surrogate: str = "fast_sigmoid",
                 dtype: torch.dtype = torch.float32, fused: Optional[bool] = None,
                 **surrogate_params: float) -> None:
        super().__init__()
        usable = _numba_usable()
        self.fused = usable if fused is None else bool(fused)
        if self.fused and not usable:
            raise NetworkError("fused", "the fused no-graph step needs numba (pip install neurosim[fast])")
        self.network = network
        self.spike_fn = make_spike_fn(surrogate, **surrogate_params)
        self.surrogate = surrogate
        plan = lower(network, "float64")
        self.slices = dict(plan.slices)
        self.n_neurons, self.n_sources = plan.n_neurons, plan.n_sources
        self.max_delay = plan.ring - 1
        for f in NeuronParams._fields:
            self.register_buffer(f"p_{f}", torch.as_tensor(getattr(plan.params, f), dtype=dtype))
        for k in ("v0", "i0", "a0"):
            self.register_buffer(k, torch.as_tensor(getattr(plan, k), dtype=dtype))
        self.weights = nn.ParameterDict()
        self._routes: list[tuple[str, tuple[int, int], tuple[int, int], list[tuple[int, str]]]] = []
        self._stacked: dict[str, dict[int, int]] = {}  # projection -> {delay: layer of its 3-D weight}
        for j, proj in enumerate(network.projections):
            per_delay = []
            if proj.is_sparse or np.ndim(proj.delay) > 0:
                if proj.is_sparse:
                    classes = proj.delay_classes()  # multapses summed per (pre, post, delay)
                    dense = [c.to_dense() for _, c in classes]
                    masks = [_positions(c) for _, c in classes]
                else:  # every entry of a dense matrix is trainable, with its own delay
                    classes = [(int(d), None) for d in np.unique(proj.delay)]
                    dense = [np.where(proj.delay == d, proj.weights, 0.0) for d, _ in classes]
                    masks = [np.asarray(proj.delay) == d for d, _ in classes]
                stacked = len(classes) > 1 and bool(np.any(np.sum(masks, axis=0) > 1))
                if stacked:  # a (pre, post) pair has synapses of several delays: one matrix per delay
                    self._stacked[proj.name] = {d: k for k, (d, _) in enumerate(classes)}
                weight = np.stack(dense) if stacked else np.sum(dense, axis=0)
                self.weights[proj.name] = nn.Parameter(torch.tensor(weight, dtype=dtype))
                for (d, _), mask in zip(classes, masks):
                    name = f"mask_{j}_{int(d)}"
                    self.register_buffer(name, torch.as_tensor(mask, dtype=dtype))
                    per_delay.append((int(d), name))
            else:
                self.weights[proj.name] = nn.Parameter(torch.tensor(np.asarray(proj.weights), dtype=dtype))
                per_delay.append((int(proj.delay), ""))
            self._routes.append((proj.name, self.slices[proj.pre], self.slices[proj.post], per_delay))
        self._post_order = [self.slices[p.name] for p in network.populations]
        self._cache: Optional[tuple[NeuronParams, list]] = None
        self._np_params: Optional[tuple[np.ndarray, ...]] = None

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "SNN":
        """Moving or casting the module replaces buffers: drop the cached references."""
        self._cache = None
        self._np_params = None
        return super()._apply(fn, *args, **kwargs)

    def _refs(self) -> tuple[NeuronParams, list]:
        """Plain references to the parameter record and the routes (nn.Module lookups cost
        microseconds each, and a step makes dozens)."""
        if self._cache is None:
            params = NeuronParams(*(getattr(self, f"p_{f}") for f in NeuronParams._fields))
            routes = [(self.weights[name], [(d, getattr(self, m) if m else None, self._stacked.get(name, {}).get(d))
                                            for d, m in per_delay], pre, post)
                      for name, pre, post, per_delay in self._routes]
            self._cache = (params, routes)
        return self._cache

    @property
    def routes(self) -> list[tuple[str, tuple[int, int], tuple[int, int], list[tuple[int, str]]]]:
        """The projections the generic synaptic input applies: (name, pre columns of the spike
        history, post neurons, [(delay, name of the mask buffer or "")]); a subclass that applies
        some projection itself leaves it out. Read-only."""
        return list(self._routes)

    # ---------------------------------------------------------------- the step
    @property
    def params(self) -> NeuronParams:
        return self._refs()[0]

    def initial_state(self, batch: int) -> SNNState:
        """State before step 0: the network's initial v, i, a; no spikes in flight."""
        n, dt, dev = self.n_neurons, self.v0.dtype, self.v0.device
        tile = lambda a: a.expand(batch, n).clone()  # noqa: E731
        neurons = NeuronState(tile(self.i0), tile(self.v0), tile(self.a0),
                              torch.zeros(batch, n, dtype=dt, device=dev), torch.zeros(batch, n, dtype=dt, device=dev))
        hist = tuple(torch.zeros(batch, n + self.n_sources, dtype=dt, device=dev) for _ in range(self.max_delay))
        return SNNState(neurons, hist)

    def synaptic_input(self, history: Sequence[torch.Tensor], input_grad: bool = True) -> torch.Tensor:
        """x[t] = sum over projections and delays d of z_pre[t - d] @ (W * mask_d), shape (B, N);
        without `input_grad` the input channels' columns are read detached (no gradient to them)."""
        batch = history[0].shape[0]
        parts: dict[tuple[int, int], torch.Tensor] = {}
        for w, per_delay, (plo, phi), post in self._refs()[1]:
            for d, mask, layer in per_delay:
                wd = w if layer is None else w[layer]
                pre = history[d - 1][:, plo:phi]
                pre = pre if input_grad or plo < self.n_neurons else pre.detach()
                term = pre @ (wd if mask is None else wd * mask)
                parts[post] = parts[post] + term if post in parts else term
        x = [parts[key] if key in parts else history[0].new_zeros(batch, key[1] - key[0])
             for key in self._post_order]
        return x[0] if len(x) == 1 else torch.cat(x, dim=1)

    def step(self, state: SNNState, sources: torch.Tensor) -> SNNState:
        """One canonical step; `sources` are this step's input spikes (B, S) in network.inputs order.

        Without a graph (``torch.no_grad``) on the CPU, and with ``fused`` (default when numba is
        installed), the neuron update runs as numba's fused loop form of ``neuron_step``, bit for
        bit the same values (tests/test_training_layers.py) at a fraction of the dispatch cost."""
        x = self.synaptic_input(state.history, self.input_grad or sources.requires_grad)
        if self.uses_fused(x):
            neurons, _ = self.fused_neurons(state.neurons, x)
        else:
            neurons = neuron_step(self.params, state.neurons, x, self.spike_fn)
        z_all = torch.cat([neurons.z, sources.to(neurons.z.dtype)], dim=1)
        return SNNState(neurons, (z_all,) + state.history[:-1])

    def uses_fused(self, x: torch.Tensor) -> bool:
        """Whether a step with input `x` runs the fused kernel (no graph, CPU, numba)."""
        return self.fused and not torch.is_grad_enabled() and x.device.type == "cpu"

    def fused_neurons(self, s: NeuronState, x: torch.Tensor) -> tuple[NeuronState, torch.Tensor]:
        """neuron_step(params, s, x) by numba's fused loop form, and the spike function's
        argument u = v~ - A (B, N); bit for bit the torch step's values (no graph)."""
        from neurosim.backends.numba_backend import step_kernel

        if self._np_params is None:
            self._np_params = tuple(getattr(self, f"p_{f}").numpy() for f in NeuronParams._fields)
        out = NeuronState(*(torch.empty_like(x) for _ in NeuronState._fields))
        u = torch.empty_like(x)
        step_kernel()(x.numpy(), *self._np_params, *(t.detach().numpy() for t in s), *(t.numpy() for t in out),
                      u.numpy())
        return out, u

    # ---------------------------------------------------------------- whole sequences
    def source_tensor(self, inputs: Union[torch.Tensor, Mapping[str, Any]], steps: Optional[int] = None) -> torch.Tensor:
        """Input spikes as one tensor (T, B, S) in network.inputs order, from a dict name ->
        (T, B, n) or (T, n), or a tensor that already has that layout."""
        if isinstance(inputs, torch.Tensor):
            if inputs.ndim != 3 or inputs.shape[2] != self.n_sources:
                raise NetworkError("inputs", f"expected a (T, B, {self.n_sources}) tensor, got {tuple(inputs.shape)}")
            return inputs
        parts = []
        for src in self.network.inputs:
            if src.name not in inputs:
                kind = "PoissonInput (draw its spikes first)" if isinstance(src, PoissonInput) else "SpikeInput"
                raise NetworkError(f"inputs.{src.name}", f"missing spikes for {kind} {src.name!r}")
            a = torch.as_tensor(inputs[src.name], dtype=self.v0.dtype, device=self.v0.device)
            a = a[:, None, :] if a.ndim == 2 else a
            if a.ndim != 3 or a.shape[2] != src.size:
                raise NetworkError(f"inputs.{src.name}", f"expected (T, B, {src.size}) or (T, {src.size}), got {tuple(a.shape)}")
            parts.append(a)
        if not parts:
            if steps is None:
                raise NetworkError("steps", "a network without inputs needs `steps`")
            return torch.zeros(steps, 1, 0, dtype=self.v0.dtype, device=self.v0.device)
        batch = max(p.shape[1] for p in parts)
        return torch.cat([p.expand(-1, batch, -1) for p in parts], dim=2)

    def forward(self, inputs: Union[torch.Tensor, Mapping[str, Any]], state: Optional[SNNState] = None,
                record: Sequence[str] = ("z", "v")) -> tuple[dict[str, dict[str, torch.Tensor]], SNNState]:
        """Run all steps of `inputs`; returns ({population: {var: (T, B, n)}}, final state).

        `record` chooses among the NeuronState fields ('i', 'v', 'a', 'z', 'r').
        """
        src = self.source_tensor(inputs)
        state = self.initial_state(src.shape[1]) if state is None else state
        stacked, state = run_recorded(self.step, state, src, record)
        out = {p.name: {k: v[:, :, slice(*self.slices[p.name])] for k, v in stacked.items()}
               for p in self.network.populations}
        return out, state

    # ---------------------------------------------------------------- back to a Network
    def to_network(self) -> Network:
        """The network with the current weights (CSR stays CSR with the same synapses and delays).

        The module holds one weight per (pre, post, delay): the sum of that class's synapses
        (multapses merged; a 3-D weight, one matrix per delay, where a pair has several delays).
        A synapse alone in its class gets the trained weight; the k synapses of a multapse
        keep their original values plus an equal share (new - old) / k of the class's change, so
        they sum to the trained weight (each would have received the same gradient)."""
        projs = []
        for proj in self.network.projections:
            w = self.weights[proj.name].detach().cpu().double().numpy()
            if proj.is_sparse:
                new = _written_back(proj, w, self._stacked.get(proj.name))
                projs.append(Projection(proj.name, proj.pre, proj.post, new, proj.delay))
            else:
                projs.append(Projection(proj.name, proj.pre, proj.post, w, proj.delay))
        return self.network.replace(projections=tuple(projs))


def run_recorded(step: Any, state: SNNState, src: torch.Tensor, record: Sequence[str]
                 ) -> tuple[dict[str, torch.Tensor], SNNState]:
    """Advance `state` with ``step(state, src[t])`` over every step of `src` (T, B, S); returns
    ({field: (T, B, N)} of the NeuronState fields in `record`, final state)."""
    rec: dict[str, list[torch.Tensor]] = {k: [] for k in record}
    for t in range(src.shape[0]):
        state = step(state, src[t])
        for k in record:
            rec[k].append(getattr(state.neurons, k))
    return {k: torch.stack(v) for k, v in rec.items()}, state


def from_network(network: Network, surrogate: str = "fast_sigmoid", dtype: torch.dtype = torch.float32,
                 fused: Optional[bool] = None, **surrogate_params: float) -> SNN:
    """The torch module of `network` (see :class:`SNN`)."""
    return SNN(network, surrogate, dtype, fused, **surrogate_params)


def _positions(c: CSR) -> np.ndarray:
    """Boolean (n_pre, n_post): where `c` has an entry (also an entry of value 0)."""
    out = np.zeros(c.shape, bool)
    out[c.rows(), np.asarray(c.indices)] = True
    return out


def _written_back(proj: Projection, w: np.ndarray, stacked: Optional[dict[int, int]]) -> CSR:
    """The CSR of `proj` with the module's weights `w` written back (see :meth:`SNN.to_network`)."""
    c, delays = proj.to_csr()
    rows, cols = c.rows(), np.asarray(c.indices)
    layer = np.zeros(c.nnz, np.int64) if stacked is None else np.array([stacked[int(d)] for d in delays], np.int64)
    w3 = w[None] if stacked is None else w
    new = w3[layer, rows, cols]
    key = (layer * c.shape[0] + rows) * c.shape[1] + cols  # one class: (delay, pre, post)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    if np.any(counts > 1):
        old = np.zeros(counts.size)
        np.add.at(old, inverse, np.asarray(c.values, np.float64))
        multi = counts[inverse] > 1
        new = np.where(multi, np.asarray(c.values) + (new - old[inverse]) / counts[inverse], new)
    return CSR(c.indptr, c.indices, new, c.shape)


def _numba_usable() -> bool:
    from neurosim.backends import load
    from neurosim.errors import BackendUnavailable

    try:
        load("numba").check()
        return True
    except BackendUnavailable:
        return False


def to_network(module: SNN) -> Network:
    """The Network of a (trained) :class:`SNN`."""
    return module.to_network()

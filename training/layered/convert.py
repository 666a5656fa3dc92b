"""Exact conversion between a :class:`~training.layered.model.LayeredSNN` and a neurosim Network.

torch -> Network (:func:`to_network`): input 'in' (shaped like the model's input), one
population per layer (its name, its output shape, its neuron model with the module's current
per-neuron beta, theta and bias, float64), and per layer one projection named after it:

| layer | projection (neurosim.conv / network), delay 1 |
|---|---|
| conv | Conv2d(kernel, stride, padding, dilation, groups); its bias: the population's `bias` (channel_bias) |
| pool | SumPool2d or AvgPool2d(kernel_size = stride = size) |
| flatten + dense | dense Projection from the shaped layer (neurosim reads shaped nodes flat, C order) |
| dense, rdense | dense Projection (n_pre, n_post); rdense also '<name>_rec' (n, n) |

Network -> torch (:func:`from_network`): the inverse, for networks of that form (a chain from
one input, every projection of delay 1, square kernels and equal stride/padding/dilation on both
axes, pooling windows with stride = kernel and no padding); anything else is refused naming the
field. Weights and parameters are copied, so a round trip gives the same tensors and, in float64,
the same spikes.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional, Sequence

import numpy as np
import torch

from neurosim import AvgPool2d, Conv2d, Network, Pooling, Population, Projection, SpikeInput, SumPool2d
from neurosim.errors import NetworkError
from neurosim.models import ALIF, IF, LI, LIF, NeuronParams

from .model import LayeredSNN, neuron_record
from .spec import LayerSpec, finish

_NEURON = {LIF: "lif", ALIF: "alif", IF: "if", LI: "li"}


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy().copy()


def to_network(model: LayeredSNN, dt: float, name: str = "layered") -> Network:
    """The Network of `model` (module docstring) with time step `dt` seconds (required: the
    module itself counts steps only)."""
    p = model.params
    pops, projs = [], []
    for k, b in enumerate(model.blocks):
        s: LayerSpec = b["spec"]
        lo, hi = model.slices[s.name]
        rec = neuron_record(s)
        kw = {f: getattr(rec, f) for f in rec.param_names()}
        if hasattr(rec, "reset"):
            kw["reset"] = rec.reset
        for f in ("beta", "theta", "bias"):
            if f in kw:
                kw[f] = _np(getattr(p, f)[lo:hi])
        shape = b["out_shape"]
        pops.append(Population(s.name, hi - lo, type(rec)(**kw), shape=shape if len(shape) > 1 else None))
        pre = "in" if b["src"] is None else model.blocks[b["src"]]["spec"].name
        if s.kind == "conv":
            projs.append(Conv2d(s.name, pre, s.name, _np(model.weights[s.name]), s.stride, s.padding, s.dilation,
                                s.groups))
        elif s.kind == "pool":
            projs.append((SumPool2d if s.mode == "sum" else AvgPool2d)(s.name, pre, s.name, s.size))
        else:
            projs.append(Projection(s.name, pre, s.name, _np(model.weights[s.name])))
            if s.kind == "rdense":
                projs.append(Projection(f"{s.name}_rec", s.name, s.name, _np(model.weights[f"{s.name}_rec"])))
    shape = model.in_shape
    return Network(dt=dt, name=name, inputs=[SpikeInput("in", model.n_sources, shape=shape if len(shape) > 1 else None)],
                   populations=pops, projections=projs)


def _one(value: Any, where: str) -> int:
    """A scalar or a pair of equal whole numbers as one int."""
    v = np.atleast_1d(np.asarray(value))
    if not np.all(v == v[0]):
        raise NetworkError(where, f"expected the same value on both axes for a layered model, got {tuple(v)}")
    return int(v[0])


def _with_bias(spec: LayerSpec, pop: Population, weights: dict[str, np.ndarray]) -> LayerSpec:
    """`spec` with a trainable bias when the neurons' bias is nonzero and constant per channel."""
    per_channel = pop.params.bias.reshape(pop.shape[0], -1)
    if np.any(per_channel != 0) and np.all(per_channel == per_channel[:, :1]):
        weights[f"{pop.name}_bias"] = per_channel[:, 0]
        return replace(spec, bias=True)
    return spec


def _layer(net: Network, pop: Population, feed: Any, recurrent: Optional[Projection],
           pre_shape: tuple[int, ...]) -> tuple[list[LayerSpec], dict[str, np.ndarray]]:
    """The spec(s) of population `pop` fed by projection `feed`, and the weights to copy."""
    where = f"projections.{feed.name}"
    if np.ndim(feed.delay) or int(feed.delay) != 1:
        raise NetworkError(f"{where}.delay", "expected delay 1 (a layered model's layers are one step apart)")
    kind = _NEURON[type(pop.model)]
    neuron = dict(neuron=kind, name=pop.name)
    weights: dict[str, np.ndarray] = {}
    if isinstance(feed, Conv2d) and type(feed) is Conv2d:
        k = feed.kernel
        if k.shape[2] != k.shape[3]:
            raise NetworkError(f"{where}.kernel", f"expected a square kernel for a layered model, got {k.shape}")
        spec = LayerSpec("conv", k.shape[0], kernel=k.shape[2], stride=_one(feed.stride, f"{where}.stride"),
                         padding=_one(feed.padding, f"{where}.padding"),
                         dilation=_one(feed.dilation, f"{where}.dilation"), groups=feed.groups, **neuron)
        weights[pop.name] = k
        return [_with_bias(spec, pop, weights)], weights
    if isinstance(feed, Pooling) and type(feed) in (SumPool2d, AvgPool2d):
        size = _one(feed.kernel_size, f"{where}.kernel_size")
        if _one(feed.stride, f"{where}.stride") != size or _one(feed.padding, f"{where}.padding") != 0:
            raise NetworkError(f"{where}.stride", "expected stride = kernel_size and no padding for a layered model")
        return [LayerSpec("pool", size, mode="avg" if isinstance(feed, AvgPool2d) else "sum", **neuron)], weights
    if isinstance(feed, Projection) and not feed.is_sparse:
        specs = [LayerSpec("flatten", name=f"{pop.name}_flat")] if len(pre_shape) > 1 else []
        specs.append(_with_bias(LayerSpec("rdense" if recurrent is not None else "dense", pop.size, **neuron), pop,
                                weights))
        weights[pop.name] = np.asarray(feed.weights)
        if recurrent is not None:
            weights[f"{pop.name}_rec"] = np.asarray(recurrent.weights)
        return specs, weights
    raise NetworkError(where, f"expected Conv2d, SumPool2d, AvgPool2d or a dense Projection for a layered model, "
                              f"got {type(feed).__name__}{' (CSR)' if isinstance(feed, Projection) else ''}")


def from_network(net: Network, layers: Optional[Sequence[LayerSpec]] = None, *, surrogate: str = "fast_sigmoid",
                 dtype: torch.dtype = torch.float32, **surrogate_params: float) -> LayeredSNN:
    """The LayeredSNN of `net` (module docstring). What a Network does not record, which
    parameters are trainable, comes from `layers` (the spec the network was made from, e.g. a
    run's arch.json: each layer's `train` and `bias`); without it, a conv or dense layer whose
    neurons have a nonzero bias, constant per channel, gets a trainable bias, and nothing else."""
    given = {s.name: s for s in finish(layers) if s.has_neurons} if layers is not None else None
    if len(net.inputs) != 1 or not isinstance(net.inputs[0], SpikeInput):
        raise NetworkError("inputs", "expected one SpikeInput feeding the first layer")
    node, shape = net.inputs[0].name, net.inputs[0].shape
    by_post: dict[str, list[Any]] = {}
    for j in net.projections:
        by_post.setdefault(j.post, []).append(j)
    specs: list[LayerSpec] = []
    weights: dict[str, np.ndarray] = {}
    for pop in net.populations:
        feeds = [j for j in by_post.get(pop.name, []) if j.pre != pop.name]
        recs = [j for j in by_post.get(pop.name, []) if j.pre == pop.name]
        if len(feeds) != 1 or feeds[0].pre != node or len(recs) > 1:
            raise NetworkError(f"populations.{pop.name}", f"expected one projection from {node!r} (the previous "
                                                          "layer) and at most one recurrent dense one")
        rec = recs[0] if recs else None
        if rec is not None and (not isinstance(rec, Projection) or rec.is_sparse or np.ndim(rec.delay)
                                or int(rec.delay) != 1):
            raise NetworkError(f"projections.{rec.name}", "expected a dense recurrent projection of delay 1")
        s, w = _layer(net, pop, feeds[0], rec, shape)
        if given is not None:
            if pop.name not in given or given[pop.name].kind != s[-1].kind:
                raise NetworkError(f"populations.{pop.name}", f"expected the layers of `layers` "
                                                              f"({[g.kind + ' ' + g.name for g in given.values()]})")
            g = given.pop(pop.name)
            s[-1] = replace(s[-1], train=g.train, bias=g.bias and s[-1].kind != "pool")
            if g.bias and f"{pop.name}_bias" not in w and s[-1].kind != "pool":
                w[f"{pop.name}_bias"] = pop.params.bias.reshape(pop.shape[0], -1)[:, 0]
        specs += s
        weights.update(w)
        node, shape = pop.name, pop.shape
    if given:
        raise NetworkError("layers", f"no population for layer {sorted(given)[0]!r} in the network")
    model = LayeredSNN(finish(specs), net.inputs[0].shape, surrogate=surrogate, dtype=dtype, **surrogate_params)
    with torch.no_grad():
        for key, value in weights.items():
            model.weights[key].copy_(torch.as_tensor(np.array(value, dtype=np.float64)))
        params = {f: np.concatenate([getattr(p.params, f) for p in net.populations]) for f in NeuronParams._fields}
        for f, value in params.items():
            getattr(model, f"p_{f}").copy_(torch.as_tensor(np.array(value, dtype=np.float64)))
        for b in model.blocks:
            s = b["spec"]
            lo, hi = model.slices[s.name]
            for f in ("beta", "theta"):
                if f"{s.name}_{f}" in model.weights:  # the parameter holds the value, the buffer the spec's
                    model.weights[f"{s.name}_{f}"].copy_(getattr(model, f"p_{f}")[lo:hi])
                    getattr(model, f"p_{f}")[lo:hi] = getattr(s, f)
            if f"{s.name}_bias" in model.weights:
                model.p_bias[lo:hi] = 0.0  # carried by the trainable per-channel bias
    return model


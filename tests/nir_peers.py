"""Run snnTorch and Norse models step by step for the NIR tests (used only by test_mapping_nir.py).

Peers are run in float64 so that their spikes can be compared exactly with neurosim's float64
reference; where a peer rounds parameters to float32 on import, the tests choose values that
float32 represents exactly. What each helper changes in the peer is said in its docstring.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Any, Iterator, Sequence

import numpy as np
import torch


def heaviside(u: torch.Tensor) -> torch.Tensor:
    """Strict ``u > 0`` in u's dtype: the forward pass of snnTorch's surrogates, without their
    cast of the spikes to float32 (which breaks a float64 network at the next Linear)."""
    return (u > 0).to(u.dtype)


def f64_from_f32(a: Any) -> np.ndarray:
    """Values float32 holds exactly, as float64 (peers that round to float32 keep them)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def run_layers(layers: Sequence[torch.nn.Module], x: np.ndarray, record: Sequence[int]) -> dict[int, np.ndarray]:
    """Feed x (T, B, n_in) through `layers` one step at a time (each layer keeps its own hidden
    state: snnTorch init_hidden=True, or Norse cells driven here with their state); returns the
    output of each layer index in `record` as (T, B, n) arrays."""
    states: dict[int, Any] = {}
    out: dict[int, list[np.ndarray]] = {k: [] for k in record}
    with torch.no_grad():
        for t in range(x.shape[0]):
            h = torch.as_tensor(np.asarray(x[t], dtype=np.float64))
            for k, layer in enumerate(layers):
                if _norse_cell(layer):
                    h, states[k] = layer(h, states.get(k))
                else:
                    h = layer(h)
                    if isinstance(h, tuple):  # snnTorch output=True layers return (spk, ...)
                        h = h[0]
                if k in out:
                    out[k].append(h.detach().numpy().copy())
    return {k: np.array(v) for k, v in out.items()}


def _norse_cell(layer: torch.nn.Module) -> bool:
    return type(layer).__module__.startswith("norse.")


def run_stateful(module: torch.nn.Module, x: np.ndarray, nodes: Sequence[str] = ()) -> Any:
    """Drive a module that maps (input, state) -> (output, state), as nirtorch builds them; returns
    the outputs (T, B, n), or with `nodes` a dict of those nodes' outputs read from the state's
    cache (nirtorch's GraphExecutor, which Norse uses, returns the last node it ran, which in a
    recurrent graph is the recurrent Linear)."""
    state = None
    out: dict[str, list[np.ndarray]] = {k: [] for k in (nodes or [""])}
    with torch.no_grad():
        for t in range(x.shape[0]):
            y, state = module(torch.as_tensor(np.asarray(x[t], dtype=np.float64)), state)
            for k in out:
                out[k].append((state.cache[k] if k else y).detach().numpy().copy())
    arrays = {k: np.array(v) for k, v in out.items()}
    return arrays if nodes else arrays[""]


@contextlib.contextmanager
def _nirtorch_float64() -> Iterator[None]:
    """nirtorch.nir_to_torch builds modules in float32 unless given dtype=; snnTorch's importer
    does not pass it. Ask for float64 (nirtorch's own option) while the importer runs."""
    import nirtorch

    original = nirtorch.nir_to_torch
    nirtorch.nir_to_torch = functools.partial(original, dtype=torch.float64)
    try:
        yield
    finally:
        nirtorch.nir_to_torch = original


def snntorch_import(graph: Any) -> torch.nn.Module:
    """``snntorch.import_from_nir(graph)`` in float64, with the strict Heaviside forward as the
    neurons' spike function (see :func:`heaviside`). Nothing else is changed: snnTorch still reads
    LIF as Leaky(reset='zero', reset_delay=False) with beta = 1 - 1e-4/tau."""
    from snntorch.import_nir import import_from_nir

    with _nirtorch_float64():
        module = import_from_nir(graph)
    for m in module.modules():
        if hasattr(m, "spike_grad") and type(m).__module__.startswith("snntorch"):
            m.spike_grad = heaviside
    return module


def norse_import(graph: Any, dt: float) -> torch.nn.Module:
    """``norse.torch.from_nir(graph, dt=dt)``, Linear weights cast to float64. Norse keeps neuron
    parameters as float32 tensors (exact for the values the tests use); the float64 state and
    input make every operation float64 by type promotion."""
    import norse.torch as norse

    return norse.from_nir(graph, dt=dt).double()

"""The conv peer matrix: one function per (peer, conv graph, direction) cell, run on a seed
(the conv half of tests/nir_peer_cells.py, same rules).

peer -> neurosim: the peer's own conv network (Conv2d/Conv1d + its LIF, pooling, Flatten,
Linear) exported with the peer's own NIR exporter, written with ``nir.write``, read by neurosim
with the peer's convention, both run on the same random input frames; every spiking layer's
(step, neuron) bins compared, the peer's layer L at step t against neurosim's at t + L.
neurosim -> peer: a neurosim conv network exported with ``target=<peer>`` (through
``nir.write``/``nir.read``), imported by the peer's own importer, the output layer compared.
Where the peer's exporter or importer fails, the cell is the peer's own error (found by running it).
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Callable, Optional

import nir
import numpy as np
import torch

import neurosim as ns
from mapping.nir_graph import from_nir, read_nir, to_nir
from mapping.nir_graph.timing import CLOCK
from neurosim.errors import ExportError
from nir_peer_cells import T, Outcome
from nir_peers import heaviside, norse_import, run_stateful, snntorch_import

IN2 = (2, 8, 8)  # input frames of the 2-D graphs
IN1 = (2, 16)  # input of the 1-D graphs


def imported(graph: Any, convention: str) -> ns.Network:
    """The peer's graph written with ``nir.write`` and read by neurosim with `convention`."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "peer.nir")
        nir.write(path, graph)
        return read_nir(path, convention=convention)


def through_file(graph: Any) -> Any:
    """Our export written with ``nir.write`` and read back with ``nir.read`` (which must accept it)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ours.nir")
        nir.write(path, graph)
        return nir.read(path)


def frames(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return (np.random.default_rng(2000 + seed).random((T, 1, *shape)) < 0.3).astype(np.float64)


def run_peer(mods: list[torch.nn.Module], x: np.ndarray, norse: bool = False) -> dict[int, np.ndarray]:
    """Feed frames x (T, 1, ...) through `mods` step by step; every spiking layer's output
    (index -> (T, 1, n)), a spiking layer being one of the peer's neurons."""
    states: dict[int, Any] = {}
    out: dict[int, list[np.ndarray]] = {}
    with torch.no_grad():
        for t in range(x.shape[0]):
            h = torch.as_tensor(x[t])
            for k, m in enumerate(mods):
                if norse and type(m).__module__.startswith("norse."):
                    h, states[k] = m(h, states.get(k))
                else:
                    h = m(h)
                if isinstance(h, tuple):
                    h = h[0]
                if _spiking(m):
                    out.setdefault(k, []).append(h.detach().numpy().reshape(1, -1).copy())
    return {k: np.array(v) for k, v in out.items()}


def _spiking(m: torch.nn.Module) -> bool:
    mod = type(m).__module__
    return mod.startswith(("snntorch", "norse.", "spikingjelly")) and not isinstance(
        m, (torch.nn.Conv2d, torch.nn.Conv1d, torch.nn.Linear, torch.nn.Flatten, torch.nn.AvgPool2d))


def compare_layers(net: ns.Network, x: np.ndarray, peer: dict[int, np.ndarray]) -> Outcome:
    pops = [p for p in net.populations if p.name != CLOCK and p.model.kind != "li"]
    layers = [peer[k] for k in sorted(peer)]
    if len(pops) != len(layers):
        raise AssertionError(([p.name for p in pops], sorted(peer)))
    flat = x.reshape(x.shape[0], 1, -1)
    res = ns.simulate(net, {net.inputs[0].name: np.concatenate([flat, np.zeros((len(pops), 1, flat.shape[2]))])},
                      T + len(pops), backend="numpy")
    same = total = spikes = 0
    for k, (pop, theirs) in enumerate(zip(pops, layers)):
        ours = res.spikes[pop.name].dense()[k + 1:k + 1 + T]
        theirs = theirs.reshape(ours.shape)
        same += int((ours == theirs).sum())
        total += ours.size
        spikes += int(theirs.sum())
    return Outcome(bins=same / total, spikes=spikes)


def _t(a: Any) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64))


def _conv(cls: Any, r: np.random.Generator, cin: int, cout: int, k: int, scale: float, **kw: Any) -> Any:
    m = cls(cin, cout, k, **kw).double()
    with torch.no_grad():
        m.weight.copy_(_t(r.normal(0.1, 0.5, tuple(m.weight.shape)) * scale))
        if m.bias is not None:
            m.bias.copy_(_t(r.uniform(-0.05, 0.1, cout) * scale))
    return m


def _linear(r: np.random.Generator, n_in: int, n: int, scale: float) -> torch.nn.Linear:
    m = torch.nn.Linear(n_in, n).double()
    with torch.no_grad():
        m.weight.copy_(_t(r.normal(0.1, 0.5, (n, n_in)) * scale))
        m.bias.copy_(_t(r.uniform(-0.05, 0.1, n) * scale))
    return m


# ------------------------------------------------------------------ peers -> neurosim
def snntorch_conv_net(seed: int) -> list[torch.nn.Module]:
    """Conv2d(2->4, 3, padding 1, stride 1) + Leaky, AvgPool2d(2), Conv2d(4->4, 3) + Leaky,
    Flatten(start_dim=0), Linear(->5) + Leaky; per-neuron beta, one threshold per layer.
    snnTorch 1.0's export_to_nir fails on a batched sample (nir's conv shape inference receives
    the batch axis: IndexError), so it traces one unbatched frame; Flatten(0) then flattens
    (C, H, W) in the trace and (1, C, H, W) in the batch-of-one run alike."""
    import snntorch as snn

    r = np.random.default_rng(seed)
    torch.manual_seed(seed)

    def leaky(shape: tuple[int, ...]) -> Any:
        return snn.Leaky(beta=_t(r.uniform(0.6, 0.95, shape)), threshold=_t(np.ones(shape)), init_hidden=True,
                         spike_grad=heaviside).double()

    return [_conv(torch.nn.Conv2d, r, 2, 4, 3, 0.8, padding=1), leaky((4, 8, 8)), torch.nn.AvgPool2d(2),
            _conv(torch.nn.Conv2d, r, 4, 4, 3, 0.6), leaky((4, 2, 2)), torch.nn.Flatten(0),
            _linear(r, 16, 5, 0.8), leaky((5,))]


def snntorch_to_neurosim(seed: int) -> Outcome:
    from snntorch.export_nir import export_to_nir

    graph = _peer_export(lambda: export_to_nir(torch.nn.Sequential(*snntorch_conv_net(seed)),
                                               torch.zeros(*IN2, dtype=torch.float64)), "snnTorch")
    if isinstance(graph, Outcome):
        return graph
    x = frames(seed, IN2)
    return compare_layers(imported(graph, "snntorch"), x, run_peer(snntorch_conv_net(seed), x))


def _norse_net(seed: int) -> list[torch.nn.Module]:
    """Conv2d(2->4, 3) + LIFBoxCell, Conv2d(4->3, 3, stride 2) + LIFBoxCell (default parameters)."""
    import norse.torch as norse

    r = np.random.default_rng(seed)
    torch.manual_seed(seed)
    return [_conv(torch.nn.Conv2d, r, 2, 4, 3, 8.0), norse.LIFBoxCell(),
            _conv(torch.nn.Conv2d, r, 4, 3, 3, 3.0, stride=2), norse.LIFBoxCell()]


def norse_to_neurosim(seed: int) -> Outcome:
    import norse.torch as norse

    from nir_peer_cells import norse_writable

    graph = _peer_export(lambda: norse.to_nir(norse.SequentialState(*_norse_net(seed)),
                                              torch.zeros(1, *IN2, dtype=torch.float64), dt=1e-3), "Norse")
    if isinstance(graph, Outcome):
        return graph
    x = frames(seed, IN2)
    try:
        net = imported(norse_writable(graph), "norse")
    except TypeError:  # nir.write: h5py cannot write Norse's Conv2d input_shape = None; read the graph itself
        net = from_nir(norse_writable(graph), convention="norse")
    return compare_layers(net, x, run_peer(_norse_net(seed), x, norse=True))


def norse_pooled_to_neurosim(seed: int) -> Outcome:
    """Conv2d + LIFBoxCell, LPPool2d(1, 2) (Norse's SumPool2d), Flatten, Linear + LIFBoxCell:
    Norse 1.1's to_nir writes the pool and the Flatten as None nodes; neurosim refuses the graph."""
    import norse.torch as norse

    r = np.random.default_rng(seed)
    mods = [_conv(torch.nn.Conv2d, r, 2, 4, 3, 8.0), norse.LIFBoxCell(), torch.nn.LPPool2d(1, 2), torch.nn.Flatten(),
            _linear(r, 36, 5, 3.0), norse.LIFBoxCell()]
    graph = norse.to_nir(norse.SequentialState(*mods), torch.zeros(1, *IN2, dtype=torch.float64), dt=1e-3)
    try:
        from_nir(graph, convention="norse")
    except ExportError as exc:
        return Outcome(refused=f"Norse 1.1's to_nir writes LPPool2d and Flatten as None (no NIR node): {exc}")
    raise AssertionError("neurosim read a graph with None nodes")


def _sj_net(seed: int, one_d: bool) -> list[torch.nn.Module]:
    """Conv (2->4, 3, padding 1) + LIFNode, AvgPool2d(2) (2-D only), Flatten, Linear(->5) + LIFNode."""
    from spikingjelly.activation_based import neuron

    r = np.random.default_rng(seed)
    torch.manual_seed(seed)
    conv = _conv(torch.nn.Conv1d if one_d else torch.nn.Conv2d, r, 2, 4, 3, 3.0, padding=1)
    lif = lambda: neuron.LIFNode(tau=float(r.uniform(1.5, 4.0)), v_reset=0.0)  # noqa: E731
    n = 4 * 16 if one_d else 4 * 4 * 4
    pool = [] if one_d else [torch.nn.AvgPool2d(2)]
    return [conv, lif(), *pool, torch.nn.Flatten(), _linear(r, n, 5, 2.0), lif()]


def spikingjelly_to_neurosim(one_d: bool) -> Callable[[int], Outcome]:
    def cell(seed: int) -> Outcome:
        from spikingjelly.activation_based import functional
        from spikingjelly.activation_based.nir_exchange import export_to_nir

        shape = IN1 if one_d else IN2
        graph = _peer_export(lambda: export_to_nir(torch.nn.Sequential(*_sj_net(seed, one_d)),
                                                   torch.zeros(1, *shape, dtype=torch.float64)), "SpikingJelly")
        if isinstance(graph, Outcome):
            return graph
        mods = _sj_net(seed, one_d)
        functional.reset_net(torch.nn.Sequential(*mods))
        x = frames(seed, shape)
        return compare_layers(imported(graph, "spikingjelly"), x, run_peer(mods, x))
    return cell


# ------------------------------------------------------------------ neurosim -> peers
def _ours(seed: int, target: str, pool: str, one_d: bool = False, groups: int = 1) -> ns.Network:
    """in -> conv (stride 1, padding 1) -> LIF -> pool (2-D) -> LIF -> dense -> LIF, zero reset,
    parameters as the target's importer takes them (tests/nir_peer_cells._ours likewise)."""
    r = np.random.default_rng(seed)
    in_shape = IN1 if one_d else IN2
    c1 = (4, *in_shape[1:])

    def lif(shape: Any) -> ns.LIF:
        n = int(np.prod(shape))
        beta = float(r.uniform(0.6, 0.95)) if target == "spikingjelly" else r.uniform(0.6, 0.95, n)
        gain = 1 - np.asarray(beta) if target == "norse" else 1.0
        return ns.LIF(beta=beta, gain=gain, theta=1.0, reset="zero")

    scale = 8.0 if target == "norse" else 1.0
    conv_cls = ns.Conv1d if one_d else ns.Conv2d
    k = (4, 2 // groups, 3) if one_d else (4, 2 // groups, 3, 3)
    pops = [ns.Population("c1", c1, lif(c1))]
    projs: list[Any] = [conv_cls("conv", "in", "c1", r.normal(0.3, 0.5, k) * scale, 1, 1, 1, groups)]
    last, n_last = "c1", int(np.prod(c1))
    if not one_d:
        p1 = (4, in_shape[1] // 2, in_shape[2] // 2)
        cls = ns.AvgPool2d if pool == "avg" else ns.SumPool2d
        pops.append(ns.Population("p1", p1, lif(p1)))
        projs.append(cls("pool", "c1", "p1", 2))
        last, n_last = "p1", int(np.prod(p1))
    pops.append(ns.Population("out", 5, lif(5)))
    projs.append(ns.Projection("dense", last, "out", r.normal(0.1, 0.5, (n_last, 5)) * scale * 0.5))
    return ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", in_shape)], populations=pops, projections=projs)


def neurosim_to_peer(target: str, pool: str, one_d: bool = False, groups: int = 1) -> Callable[[int], Outcome]:
    def cell(seed: int) -> Outcome:
        net = _ours(seed, target, pool, one_d, groups)
        try:
            graph = through_file(to_nir(net, target=target))
        except ExportError as exc:
            return Outcome(refused=str(exc))
        x = frames(seed, net.inputs[0].shape)
        try:
            if target == "snntorch":
                module = snntorch_import(graph)
            elif target == "norse":
                module = norse_import(graph, 1e-3)
            else:
                from spikingjelly.activation_based.nir_exchange import import_from_nir

                module = import_from_nir(graph, dt=1e-4, dtype=torch.float64)
            theirs = run_stateful(module, x)
        except Exception as exc:  # the peer's own failure is the cell's finding
            return Outcome(refused=f"the peer fails on neurosim's file: {type(exc).__name__}: {str(exc)[:200]}")
        depth = len(net.populations)
        flat = x.reshape(T, 1, -1)
        res = ns.simulate(net, {"in": np.concatenate([flat, np.zeros((depth, 1, flat.shape[2]))])}, T + depth,
                          backend="numpy")
        ours = res.spikes["out"].dense()[depth:T + depth]
        theirs = np.asarray(theirs).reshape(ours.shape)
        return Outcome(bins=float((ours == theirs).mean()), spikes=int(theirs.sum()))
    return cell


def _peer_export(export: Callable[[], Any], peer: str) -> Any:
    """The peer's NIR graph, or the peer's own exporter failure as the cell's refusal."""
    try:
        return export()
    except Exception as exc:  # the peer's failure is the finding, not a harness error
        return Outcome(refused=f"{peer}'s exporter fails: {type(exc).__name__}: {str(exc)[:200]}")


CONV_CELLS: dict[tuple[str, str, str], Callable[[int], Outcome]] = {
    ("snnTorch 1.0", "Conv2d(padding 1)+Leaky, AvgPool2d, Conv2d+Leaky, Flatten, Linear+Leaky", "peer -> neurosim"):
        snntorch_to_neurosim,
    ("Norse 1.1", "Conv2d+LIFBoxCell, Conv2d(stride 2)+LIFBoxCell (the graph in memory: nir.write cannot write its Conv2d input_shape=None)", "peer -> neurosim"):
        norse_to_neurosim,
    ("Norse 1.1", "Conv2d+LIFBoxCell, LPPool2d(1, 2), Flatten, Linear+LIFBoxCell", "peer -> neurosim"):
        norse_pooled_to_neurosim,
    ("SpikingJelly 2.0", "Conv2d(padding 1)+LIFNode, AvgPool2d, Flatten, Linear+LIFNode", "peer -> neurosim"):
        spikingjelly_to_neurosim(False),
    ("SpikingJelly 2.0", "Conv1d(padding 1)+LIFNode, Flatten, Linear+LIFNode", "peer -> neurosim"):
        spikingjelly_to_neurosim(True),
}
for _peer, _target in (("snnTorch 1.0", "snntorch"), ("Norse 1.1", "norse"), ("SpikingJelly 2.0", "spikingjelly")):
    CONV_CELLS[(_peer, "Conv2d -> LIF, AvgPool2d -> LIF, dense -> LIF", "neurosim -> peer")] = \
        neurosim_to_peer(_target, "avg")
    CONV_CELLS[(_peer, "Conv2d -> LIF, SumPool2d -> LIF, dense -> LIF", "neurosim -> peer")] = \
        neurosim_to_peer(_target, "sum")
    _pool = "sum" if _target == "norse" else "avg"
    CONV_CELLS[(_peer, f"Conv2d(groups 2) -> LIF, {_pool.title()}Pool2d -> LIF, dense -> LIF", "neurosim -> peer")] = \
        neurosim_to_peer(_target, _pool, groups=2)
    CONV_CELLS[(_peer, "Conv1d -> LIF, dense -> LIF", "neurosim -> peer")] = neurosim_to_peer(_target, "avg", True)


def run_all(seed: int, only: Optional[str] = None) -> dict[tuple[str, str, str], Outcome]:
    """Every conv cell on `seed` (or those whose peer is `only`)."""
    return {k: f(seed) for k, f in CONV_CELLS.items() if only is None or k[0] == only}

"""The peer matrix: one function per (peer, layer type, direction) cell, run on a seed.

peer -> neurosim: the peer's own network exported with the peer's own NIR exporter, imported by
neurosim with ONE convention name, and both run on the same random input spikes: every spiking
layer's (step, neuron) bins compared, the peer's layer L at step t against neurosim's at t + L
(the peers' layers have no latency, a neurosim projection one step).
neurosim -> peer: a neurosim network exported with ``target=<peer>`` (the file must pass
``nir.read``), imported by the peer's own importer and run there; the output layer compared.
A cell the target cannot express returns the refusal (neurosim's ExportError, or the documented
reason where the file cannot tell neurosim what the peer did).

Used by tests/test_nir_conventions.py and bench/peer_matrix.py (which writes docs/PEERS.md).
Peers run in float64; Norse keeps its parameters in float32 (the values are what the file holds).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Optional

import nir
import numpy as np
import torch

import neurosim as ns
from mapping.nir_graph import read_nir, to_nir
from mapping.nir_graph.timing import CLOCK
from neurosim.errors import ExportError
from nir_peers import heaviside, norse_import, run_layers, run_stateful, snntorch_import

T = 40  # steps per run


@dataclass
class Outcome:
    """One cell on one seed: the fraction of identical (step, neuron) bins and the peer's spike
    count, or the refusal."""

    bins: Optional[float] = None
    spikes: int = 0
    refused: Optional[str] = None


def _inputs(seed: int, n: int) -> np.ndarray:
    return (np.random.default_rng(1000 + seed).random((T, 1, n)) < 0.3).astype(np.float64)


def _compare(net: ns.Network, x: np.ndarray, peer: dict[int, np.ndarray]) -> Outcome:
    """neurosim's spiking populations (in order, the bias clock left out) against the peer's
    recorded layers (in order), layer k shifted by k + 1 steps."""
    pops = [p for p in net.populations if p.name != CLOCK and p.model.kind != "li"]
    layers = [peer[k] for k in sorted(peer)]
    assert len(pops) == len(layers), ([p.name for p in pops], sorted(peer))
    steps = T + len(pops)
    xin = np.concatenate([x, np.zeros((len(pops), *x.shape[1:]))])
    res = ns.simulate(net, {net.inputs[0].name: xin}, steps, backend="numpy")
    same = total = spikes = 0
    for k, (pop, theirs) in enumerate(zip(pops, layers)):
        ours = res.spikes[pop.name].dense()[k + 1:k + 1 + T]
        theirs = theirs.reshape(ours.shape)
        same += int((ours == theirs).sum())
        total += ours.size
        spikes += int(theirs.sum())
        if os.environ.get("NEUROSIM_PEER_DEBUG"):
            print(pop.name, int(theirs.sum()), theirs.size)
    return Outcome(bins=same / total, spikes=spikes)


# ------------------------------------------------------------------ snnTorch -> neurosim
def _snn_leaky(n: int, beta: np.ndarray, **kw: Any) -> Any:
    import snntorch as snn

    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    return snn.Leaky(beta=t(beta), threshold=t(np.ones(n)), init_hidden=True, spike_grad=heaviside, **kw)


def _snntorch_net(seed: int, layer: str, bias: bool) -> tuple[list[torch.nn.Module], list[int]]:
    import snntorch as snn

    torch.manual_seed(seed)
    r = np.random.default_rng(seed)
    sizes = (12, 20, 6)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    mods: list[torch.nn.Module] = []
    for k in range(2):
        n_in, n = sizes[k], sizes[k + 1]
        lin = torch.nn.Linear(n_in, n, bias=bias).double()
        with torch.no_grad():
            lin.weight.copy_(t(r.normal(0.15, 0.5, (n, n_in)) * (0.5 if "Synaptic" in layer else 1.0)))
            if bias:
                lin.bias.copy_(t(r.uniform(-0.05, 0.15, n)))
        beta, alpha = r.uniform(0.6, 0.95, n), r.uniform(0.3, 0.8, n)
        common = dict(threshold=t(np.ones(n)), init_hidden=True, spike_grad=heaviside)
        if layer == "Leaky":
            neuron = snn.Leaky(beta=t(beta), **common)
        elif layer.startswith("Leaky(zero"):
            neuron = snn.Leaky(beta=t(beta), reset_mechanism="zero", reset_delay=layer.endswith("True)"), **common)
        elif layer == "Leaky(reset_delay=False)":
            neuron = snn.Leaky(beta=t(beta), reset_delay=False, **common)
        elif layer == "Synaptic":
            neuron = snn.Synaptic(alpha=t(alpha), beta=t(beta), **common)
        elif layer == "RLeaky":
            neuron = snn.RLeaky(beta=t(beta), linear_features=n, **common)
        elif layer == "RSynaptic":
            neuron = snn.RSynaptic(alpha=t(alpha), beta=t(beta), linear_features=n, **common)
        else:
            raise ValueError(layer)
        neuron = neuron.double()
        if hasattr(neuron, "recurrent"):
            with torch.no_grad():
                neuron.recurrent.weight.copy_(t(r.normal(0, 0.3, (n, n))))
                neuron.recurrent.bias.copy_(t(r.uniform(-0.05, 0.1, n)))
        mods += [lin, neuron]
    return mods, [1, 3]


def snntorch_to_neurosim(layer: str, bias: bool, reset: Optional[str] = None) -> Callable[[int], Outcome]:
    def cell(seed: int) -> Outcome:
        from snntorch.export_nir import export_to_nir

        if layer == "Leaky(reset_delay=False)":
            return Outcome(refused="snnTorch writes Leaky(reset_delay=False) and Leaky(reset_delay=True) as the same "
                                   "file; reset_delay=False subtracts theta*H(mem[t-1] - theta) before the spike test "
                                   "and adds it back after, so a neuron still above theta after its reset is next "
                                   "tested against 2*theta, which neurosim's subtract reset cannot express. Nearest: "
                                   "reset_delay=True (--convention snntorch) or reset_mechanism='zero' "
                                   "(--convention snntorch --reset zero)")
        graph = export_to_nir(torch.nn.Sequential(*_snntorch_net(seed, layer, bias)[0]),
                              torch.zeros(12, dtype=torch.float64))
        mods, record = _snntorch_net(seed, layer, bias)  # the same network, fresh state
        x = _inputs(seed, 12)
        peer = run_layers(mods, x, record)
        return _compare(_imported(graph, "snntorch", reset), x, peer)
    return cell


# ------------------------------------------------------------------ Norse -> neurosim
def norse_to_neurosim(layer: str) -> Callable[[int], Outcome]:
    def cell(seed: int) -> Outcome:
        import norse.torch as norse

        torch.manual_seed(seed)
        r = np.random.default_rng(seed)
        make = {"LIFBoxCell": norse.LIFBoxCell, "LIFCell": norse.LIFCell}[layer]
        scale = {"LIFBoxCell": (8.0, 20.0), "LIFCell": (8.0, 5.0)}[layer]
        t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
        mods: list[torch.nn.Module] = []
        for k, (n_in, n) in enumerate(((12, 20), (20, 6))):
            lin = torch.nn.Linear(n_in, n).double()
            with torch.no_grad():
                lin.weight.copy_(t(r.normal(0.05, 0.1, (n, n_in)) * scale[k]))
                lin.bias.copy_(t(r.uniform(-0.1, 1.0, n)))
            mods += [lin, make()]  # default (scalar) parameters
        graph = norse.to_nir(norse.SequentialState(*mods), torch.zeros(1, 12, dtype=torch.float64), dt=1e-3)
        x = _inputs(seed, 12)
        peer = run_layers(mods, x, [1, 3])
        return _compare(_imported(norse_writable(graph), "norse"), x, peer)
    return cell


# Norse runs tau_inv = 100 (exact in float32); its file holds dt/tau_inv rounded to float32, so the
# beta neurosim reads differs by (1 - beta)*2**-24 ~ 6e-9; over T = 40 steps of |v| < 0.4 that is
# < 40 * 6e-9 * 0.4 ~ 1e-7 absolute (measured: 8e-8 .. 5e-6 relative, the larger on values near 0).
LI_RTOL = 1e-6


def norse_li_to_neurosim(seed: int) -> Outcome:
    """Linear -> LIFBoxCell -> Linear -> LIBoxCell (Norse's leaky readout, default parameters):
    hidden spikes bin for bin, and the readout's membrane within LI_RTOL (bins = the fraction of
    (step, neuron) values that are, over both layers)."""
    import norse.torch as norse

    torch.manual_seed(seed)
    mods = [torch.nn.Linear(12, 20).double(), norse.LIFBoxCell(), torch.nn.Linear(20, 6).double(), norse.LIBoxCell()]
    with torch.no_grad():
        mods[0].weight.mul_(12.0)
        mods[0].bias.uniform_(0.0, 1.0)
    graph = norse.to_nir(norse.SequentialState(*mods), torch.zeros(1, 12, dtype=torch.float64), dt=1e-3)
    x = _inputs(seed, 12)
    peer = run_layers(mods, x, [1, 3])
    net = _imported(norse_writable(graph), "norse")
    hidden, readout = [p for p in net.populations if p.name != CLOCK]
    res = ns.simulate(net, {net.inputs[0].name: np.concatenate([x, np.zeros((2, 1, 12))])}, T + 2,
                      backend="numpy", traces={readout.name: ["v"]})
    z = res.spikes[hidden.name].dense()[1:T + 1]
    v = res.traces[readout.name]["v"][2:T + 2]
    ok = np.concatenate([(z == peer[1].reshape(z.shape)).ravel(),
                         np.isclose(v, peer[3].reshape(v.shape), rtol=LI_RTOL, atol=LI_RTOL).ravel()])
    return Outcome(bins=float(ok.mean()), spikes=int(peer[1].sum()))


# ------------------------------------------------------------------ SpikingJelly -> neurosim
def spikingjelly_to_neurosim(layer: str) -> Callable[[int], Outcome]:
    def cell(seed: int) -> Outcome:
        from spikingjelly.activation_based import functional, neuron
        from spikingjelly.activation_based.nir_exchange import export_to_nir

        torch.manual_seed(seed)
        r = np.random.default_rng(seed)
        t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
        mods: list[torch.nn.Module] = []
        for k, (n_in, n) in enumerate(((12, 20), (20, 6))):
            lin = torch.nn.Linear(n_in, n).double()
            with torch.no_grad():
                cuba = {"CUBALIFNode": 0.12, "LIFNode": 1.0}.get(layer, 0.3)  # no decay_input: x unscaled
                lin.weight.copy_(t(r.normal(0.5, 0.6, (n, n_in)) * cuba))
                lin.bias.copy_(t(r.uniform(-0.05, 0.3, n) * cuba))
            if layer == "CUBALIFNode":
                mods += [lin, neuron.CUBALIFNode(c_decay=float(r.uniform(0.2, 0.7)), v_decay=float(r.uniform(0.5, 0.9)),
                                                 v_threshold=1.0, v_reset=0.0)]
            else:
                mods += [lin, neuron.LIFNode(tau=float(r.uniform(1.5, 4.0)), decay_input=layer == "LIFNode",
                                             v_reset=0.0)]
        graph = export_to_nir(torch.nn.Sequential(*mods), torch.zeros(1, 12, dtype=torch.float64))
        functional.reset_net(torch.nn.Sequential(*mods))
        x = _inputs(seed, 12)
        peer = run_layers(mods, x, [1, 3])
        return _compare(_imported(graph, "spikingjelly"), x, peer)
    return cell


# ------------------------------------------------------------------ neurosim -> peers
def _ours(seed: int, target: str, layer: str) -> ns.Network:
    """A two-layer neurosim network of the kind `layer` names, made for `target`."""
    r = np.random.default_rng(seed)
    sizes = (12, 20, 6)
    pops, projs = [], []
    for k in range(2):
        n = sizes[k + 1]
        beta = float(r.uniform(0.6, 0.95)) if target == "spikingjelly" else r.uniform(0.6, 0.95, n)
        alpha = (float(r.uniform(0.3, 0.8)) if target == "spikingjelly" else r.uniform(0.3, 0.8, n)) \
            if layer == "CubaLIF" else 0.0
        gain = {"snntorch": 1.0, "norse": r.uniform(0.5, 2, n) if layer == "CubaLIF" else 1 - np.asarray(beta),
                "spikingjelly": 1.0}[target]
        kw: dict[str, Any] = dict(beta=beta, alpha=alpha, gain=gain, theta=1.0, reset="zero")
        if layer == "LIF(subtract)":
            kw["reset"] = "subtract"
        if layer == "LI" and k == 1:
            pops.append(ns.Population(f"l{k}", n, ns.LI(beta=beta, gain=gain)))
        elif layer == "ALIF":
            pops.append(ns.Population(f"l{k}", n, ns.ALIF(beta=beta, rho=0.9, adapt=0.5, reset="zero")))
        else:
            if layer == "LIF(bias)":
                kw["bias"] = r.uniform(0, 0.1, n)
            pops.append(ns.Population(f"l{k}", n, ns.LIF(**kw)))
        scale = (0.5 if layer == "CubaLIF" else 8.0 if target == "norse" else 1.0) * (1.0 if k == 0 else 0.6)
        w = r.normal(0.15, 0.4, (sizes[k], n)) * scale
        projs.append(ns.Projection(f"w{k}", "in" if k == 0 else "l0", f"l{k}", w,
                                   3 if layer == "delays" and k == 1 else 1))
    if layer == "recurrent":
        projs.append(ns.Projection("rec", "l0", "l0", r.normal(0, 0.3, (20, 20))))
    return ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", 12)], populations=pops, projections=projs)


def neurosim_to_peer(target: str, layer: str) -> Callable[[int], Outcome]:
    def cell(seed: int) -> Outcome:
        net = _ours(seed, target, layer)
        try:
            graph = to_nir(net, target=target)
        except ExportError as exc:
            return Outcome(refused=str(exc))
        graph = _through_file(graph)
        x = _inputs(seed, 12)
        if target == "snntorch":
            theirs = run_stateful(snntorch_import(graph), x)
        elif target == "norse":
            theirs = run_stateful(norse_import(graph, 1e-3), x)
        else:
            from spikingjelly.activation_based.nir_exchange import import_from_nir

            theirs = run_stateful(import_from_nir(graph, dt=1e-4, dtype=torch.float64), x)
        out = net.populations[-1].name
        res = ns.simulate(net, {"in": np.concatenate([x, np.zeros((2, 1, 12))])}, T + 2, backend="numpy")
        ours = res.spikes[out].dense()[2:T + 2]
        theirs = np.asarray(theirs).reshape(ours.shape)
        return Outcome(bins=float((ours == theirs).mean()), spikes=int(theirs.sum()))
    return cell


def norse_writable(graph: Any) -> Any:
    """Norse 1.1's graph with its shape-() parameters as shape (1,): ``nir.write`` (1.0.8) cannot
    write shape () (h5py refuses compression on scalar datasets), so this is the file a Norse user
    can have. The values are Norse's, unchanged."""
    for node in graph.nodes.values():
        for key, value in vars(node).items():
            if hasattr(value, "detach"):
                value = value.detach().cpu().numpy()
            if isinstance(value, np.ndarray) and value.ndim == 0:
                setattr(node, key, value.reshape(1))
    return graph


def _imported(graph: Any, convention: str, reset: Optional[str] = None) -> ns.Network:
    """The peer's graph written with ``nir.write`` (what a user exchanges) and read by neurosim
    with the named convention (and `reset`, when the user names one)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "peer.nir")
        nir.write(path, graph)
        return read_nir(path, convention=convention, reset=reset)


def _through_file(graph: Any) -> Any:
    """Our export written with ``nir.write`` and read back with ``nir.read`` (which must accept it)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ours.nir")
        nir.write(path, graph)
        return nir.read(path)


CELLS: dict[tuple[str, str, str], Callable[[int], Outcome]] = {
    ("snnTorch 1.0", "Leaky (default: subtract, reset_delay=True) + biased Linear", "peer -> neurosim"):
        snntorch_to_neurosim("Leaky", True),
    ("snnTorch 1.0", "Leaky (default) + unbiased Linear", "peer -> neurosim"): snntorch_to_neurosim("Leaky", False),
    ("snnTorch 1.0", "Leaky(reset_delay=False) (subtract)", "peer -> neurosim"):
        snntorch_to_neurosim("Leaky(reset_delay=False)", True),
    ("snnTorch 1.0", "Leaky(reset_mechanism='zero', reset_delay=True), --reset zero", "peer -> neurosim"):
        snntorch_to_neurosim("Leaky(zero, reset_delay=True)", True, "zero"),
    ("snnTorch 1.0", "Leaky(reset_mechanism='zero', reset_delay=False), --reset zero", "peer -> neurosim"):
        snntorch_to_neurosim("Leaky(zero, reset_delay=False)", True, "zero"),
    ("snnTorch 1.0", "Synaptic (default) + biased Linear", "peer -> neurosim"): snntorch_to_neurosim("Synaptic", True),
    ("snnTorch 1.0", "RLeaky (default, all-to-all) + biased Linear", "peer -> neurosim"):
        snntorch_to_neurosim("RLeaky", True),
    ("snnTorch 1.0", "RSynaptic (default, all-to-all) + biased Linear", "peer -> neurosim"):
        snntorch_to_neurosim("RSynaptic", True),
    ("Norse 1.1", "LIFBoxCell (default scalar parameters) + Linear", "peer -> neurosim"):
        norse_to_neurosim("LIFBoxCell"),
    ("Norse 1.1", "LIFCell (default scalar parameters) + Linear", "peer -> neurosim"): norse_to_neurosim("LIFCell"),
    ("Norse 1.1", "LIBoxCell readout (membrane within 1e-6)", "peer -> neurosim"): norse_li_to_neurosim,
    ("SpikingJelly 2.0", "LIFNode (decay_input, hard reset) + biased Linear", "peer -> neurosim"):
        spikingjelly_to_neurosim("LIFNode"),
    ("SpikingJelly 2.0", "LIFNode (decay_input=False) + biased Linear", "peer -> neurosim"):
        spikingjelly_to_neurosim("LIFNode(decay_input=False)"),
    ("SpikingJelly 2.0", "CUBALIFNode (hard reset) + biased Linear", "peer -> neurosim"):
        spikingjelly_to_neurosim("CUBALIFNode"),
}
for _peer, _target in (("snnTorch 1.0", "snntorch"), ("Norse 1.1", "norse"), ("SpikingJelly 2.0", "spikingjelly")):
    for _layer in ("LIF", "CubaLIF", "LIF(subtract)", "LIF(bias)", "LI", "ALIF", "recurrent", "delays"):
        CELLS[(_peer, _layer, "neurosim -> peer")] = neurosim_to_peer(_target, _layer)


# ------------------------------------------------------------------ peers against their own files
def _own_output(mods: list[torch.nn.Module], module: Any, x: np.ndarray, record: int) -> float:
    """Fraction of the output layer's bins where the peer's import of its own file agrees with
    the peer's own run (both in the peer, no neurosim involved)."""
    theirs = run_layers(mods, x, [record])[record]
    back = np.asarray(run_stateful(module, x)).reshape(theirs.shape)
    return float((back == theirs).mean())


def snntorch_own(seed: int) -> float:
    """snnTorch 1.0: export_to_nir of default Leaky layers, then import_from_nir of that file."""
    from snntorch.export_nir import export_to_nir

    graph = export_to_nir(torch.nn.Sequential(*_snntorch_net(seed, "Leaky", True)[0]), torch.zeros(12, dtype=torch.float64))
    mods, _ = _snntorch_net(seed, "Leaky", True)
    return _own_output(mods, snntorch_import(graph), _inputs(seed, 12), 3)


def norse_own(seed: int) -> float:
    """Norse 1.1: to_nir of default LIFBoxCell layers, then from_nir(dt=1e-3) of that graph."""
    import norse.torch as norse

    torch.manual_seed(seed)
    mods = [torch.nn.Linear(12, 20).double(), norse.LIFBoxCell(), torch.nn.Linear(20, 6).double(), norse.LIFBoxCell()]
    with torch.no_grad():
        mods[0].weight.mul_(12.0)
        mods[2].weight.mul_(25.0)
    graph = norse.to_nir(norse.SequentialState(*mods), torch.zeros(1, 12, dtype=torch.float64), dt=1e-3)
    return _own_output(mods, norse_import(norse_writable(graph), 1e-3), _inputs(seed, 12), 3)


def spikingjelly_own(seed: int) -> float:
    """SpikingJelly 2.0: export_to_nir of LIFNode layers, then import_from_nir(dt=1e-4)."""
    from spikingjelly.activation_based import functional, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir, import_from_nir

    def build() -> list[torch.nn.Module]:
        torch.manual_seed(seed)
        r = np.random.default_rng(seed)
        mods: list[torch.nn.Module] = []
        for n_in, n in ((12, 20), (20, 6)):
            lin = torch.nn.Linear(n_in, n).double()
            with torch.no_grad():
                lin.weight.copy_(torch.tensor(r.normal(0.5, 0.6, (n, n_in))))
            mods += [lin, neuron.LIFNode(tau=2.0, v_reset=0.0)]
        return mods

    graph = export_to_nir(torch.nn.Sequential(*build()), torch.zeros(1, 12, dtype=torch.float64))
    mods = build()
    functional.reset_net(torch.nn.Sequential(*mods))
    return _own_output(mods, import_from_nir(graph, dt=1e-4, dtype=torch.float64), _inputs(seed, 12), 3)


OWN = {"snnTorch 1.0": snntorch_own, "Norse 1.1": norse_own, "SpikingJelly 2.0": spikingjelly_own}

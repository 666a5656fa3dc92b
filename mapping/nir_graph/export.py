"""NIR export: a :class:`Network` as a ``nir.NIRGraph`` (see :mod:`mapping.nir_graph` for the mapping)."""
from __future__ import annotations

import os
from typing import Any, Optional, Union

import nir
import numpy as np

from neurosim.atomic import h5_image
from neurosim.conv import ShapedProjection
from neurosim.errors import ExportError
from neurosim.models import Discretization
from neurosim.network import Network, PoissonInput, Population, Projection

from .common import NS, ALIFNode, after_delay, check_method, unique_name
from .conv_export import channel_values, export_shaped, flat_source, shape_neuron, shaped_refusals
from .targets import PEERS, TARGET_DT, first_refusal


def _taus(a: np.ndarray, dt: float, method: str) -> np.ndarray:
    """Inverse of :func:`neurosim.models.decay`: the tau whose per-step decay is `a`."""
    a = np.asarray(a, dtype=np.float64)
    safe = np.where((a > 0) & (a < 1), a, 0.5)
    if method == "euler":
        tau = dt / (1.0 - safe)
        return np.where(a >= 1, np.inf, np.where(a <= 0, dt, tau))
    return np.where(a >= 1, np.inf, np.where(a <= 0, 0.0, -dt / np.log(safe)))


def to_nir(network: Network, discretization: Optional[Discretization] = None, *, target: str = "neurosim",
           extensions: bool = False) -> "nir.NIRGraph":
    """The NIR graph of `network` for `target` (:mod:`mapping.nir_graph.targets`); see
    :mod:`mapping.nir_graph` for the mapping.

    Time constants: for the peers (snntorch, norse, spikingjelly) ``tau = dt_peer/(1 - beta)`` at
    the peer's dt (what its importer inverts); for neurosim and nir at ``network.dt`` with
    `discretization`, by default the one the population's model was built with
    (``LIF.from_tau(method=...)``), else euler. Raises ExportError naming the field, the reason and
    the nearest expressible alternative for what the target cannot hold; neurosim's extensions
    (ALIF, subtract reset, refractory periods) only with `extensions` and target neurosim.
    """
    if not isinstance(network, Network):
        raise ExportError("nir", "network", f"expected a neurosim.Network, got {type(network).__name__}")
    if discretization is not None:
        check_method(discretization)
    problem = first_refusal(network, target, extensions)
    if problem is not None:
        raise problem
    shaped_problems = shaped_refusals(network, target, extensions)
    if shaped_problems:
        raise shaped_problems[0].error()
    peer = target in PEERS
    dt = TARGET_DT[target] if peer else network.dt
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    taken = {s.name for s in network.inputs} | {p.name for p in network.populations}
    for src in network.inputs:
        meta: dict[str, Any] = {}
        if isinstance(src, PoissonInput):
            meta[NS + "poisson_rate"] = np.array(src.rate, dtype=np.float64)
        nodes[src.name] = nir.Input(input_type={"input": np.array(src.shape)}, metadata=meta)
    incoming = {p.name for p in network.populations if any(j.post == p.name for j in network.projections)}
    bias_open = {p.name for p in network.populations
                 if p.model.kind != "alif" and np.any(p.params.bias != 0) and p.name in incoming}
    for name in list(bias_open):  # the first projection into the population carries its bias
        first = next(j for j in network.projections if j.post == name)
        if isinstance(first, ShapedProjection) and channel_values(network, first) is None:
            bias_open.discard(name)  # a pool, flatten or conv cannot: the neuron node carries it
    methods = {p.name: "euler" if peer else (discretization or model_discretization(p.model)) for p in network.populations}
    for pop in network.populations:
        node = _neuron_node(pop, dt, methods[pop.name], bias_via_affine=pop.name in bias_open)
        if target in ("nir", "neurosim") and _memoryless(pop, node):
            node = nir.Threshold(threshold=np.array(pop.params.theta, np.float64), metadata=node.metadata)
        nodes[pop.name] = shape_neuron(node, tuple(pop.shape))
        nodes[pop.name].metadata[NS + "discretization"] = methods[pop.name]
        if target == "spikingjelly" and hasattr(nodes[pop.name], "v_threshold"):
            # SpikingJelly fires at v >= v_threshold: the next float above theta fires exactly when v > theta
            nodes[pop.name].v_threshold = np.nextafter(nodes[pop.name].v_threshold, np.inf)
    flats: dict[str, str] = {}
    for proj in network.projections:
        if isinstance(proj, ShapedProjection):
            export_shaped(network, proj, nodes, edges, taken, bias_open)
        else:
            _export_projection(network, proj, nodes, edges, taken, bias_open, flats)
    senders = {(j.pre) for j in network.projections if j.pre != j.post}
    for pop in network.populations:
        if pop.name not in senders:
            out = unique_name(f"{pop.name}_out", taken)
            nodes[out] = nir.Output(output_type={"output": np.array(pop.shape)})
            edges.append((pop.name, out))
    used = set(methods.values())
    meta = {
        NS + "format": "neurosim-nir/1", NS + "discretization": used.pop() if len(used) == 1 else "euler",
        NS + "name": network.name,
        NS + "populations": ",".join(p.name for p in network.populations),
        NS + "inputs": ",".join(s.name for s in network.inputs),
        NS + "projections": ",".join(j.name for j in network.projections),
    }
    if target == "neurosim":
        meta[NS + "dt"] = dt
    else:  # read by neurosim with the target importer's convention (conventions.target_convention)
        meta[NS + "target"] = target
        meta[NS + "target_dt"] = dt
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)
    try:
        graph.check_types()
    except ValueError as exc:  # our own shapes disagree: a bug, not a user error
        raise ExportError("nir", "graph", f"NIR type check failed: {exc}") from None
    return graph


def _export_projection(network: Network, proj: Projection, nodes: dict[str, Any],
                       edges: list[tuple[str, str]], taken: set[str], bias_open: set[str],
                       flats: dict[str, str]) -> None:
    """source -> [Delay((d-1)*dt)] -> Linear|Affine -> target, one Linear per distinct delay d,
    whose matrix sums the synapses of that delay on each (pre, post) (multapses merged)."""
    classes = ([(int(proj.delay), np.asarray(proj.weights, np.float64))] if not proj.is_sparse and np.ndim(proj.delay) == 0
               else [(d, np.asarray(c.to_dense(), np.float64)) for d, c in proj.delay_classes()])
    n_pre = proj.shape[0]
    for d, w in classes:
        suffix = "" if len(classes) == 1 else f"_d{d}"
        src = flat_source(network, proj.pre, nodes, edges, taken, flats)
        src = after_delay(src, f"{proj.name}_delay{suffix}", n_pre, (d - 1) * network.dt, nodes, edges, taken)
        lname = unique_name(f"{proj.name}{suffix}", taken)
        meta = {NS + "projection": proj.name, NS + "delay": d, NS + "sparse": int(proj.is_sparse)}
        if proj.post in bias_open:
            bias_open.discard(proj.post)
            bias = np.array(network.population(proj.post).params.bias, dtype=np.float64)
            nodes[lname] = nir.Affine(weight=w.T.copy(), bias=bias, metadata=meta)
        else:
            nodes[lname] = nir.Linear(weight=w.T.copy(), metadata=meta)
        post_shape = tuple(network.population(proj.post).shape)
        if len(post_shape) > 1:  # target neurosim with extensions only (conv_export.shaped_refusals)
            nodes[lname].output_type = {"output": np.array(post_shape)}
        edges += [(src, lname), (lname, proj.post)]


def _memoryless(pop: Population, node: Any) -> bool:
    """An LIF without memory (alpha = beta = 0, gain 1, no bias, reset to zero, no refractory
    period): NIR's Threshold node (``z = x > threshold``), what a converted ANN's step is."""
    p = pop.params
    return (isinstance(node, nir.LIF) and getattr(pop.model, "reset", "") == "zero" and np.all(p.alpha == 0)
            and np.all(p.beta == 0) and np.all(p.gain == 1) and np.all(p.bias == 0) and np.all(p.refractory == 0)
            and np.all(node.v_leak == 0))


def model_discretization(model: Any) -> str:
    """How `model`'s decays were made from time constants ('euler' when it does not say)."""
    return getattr(model, "discretization", None) or "euler"


def _neuron_node(pop: Population, dt: float, method: str, bias_via_affine: bool) -> Any:
    """One NIR neuron node for `pop`, with the neurosim metadata."""
    where = f"populations.{pop.name}.model"
    p = pop.model.per_neuron(pop.size, where)
    n = pop.size
    zeros = np.zeros(n)
    meta: dict[str, Any] = {NS + "model": pop.model.kind}
    meta.update({NS + k: np.array(v, dtype=np.float64) for k, v in p.items()})
    if hasattr(pop.model, "reset"):
        meta[NS + "reset"] = pop.model.reset
    for init in ("v0", "i0", "a0"):
        if np.any(getattr(pop, init) != 0):
            meta[NS + init] = np.array(getattr(pop, init), dtype=np.float64)
    kind = pop.model.kind
    if kind == "alif":
        return ALIFNode(tau_mem=_taus(p["beta"], dt, method), tau_syn=_taus(p["alpha"], dt, method),
                        tau_adapt=_taus(p["rho"], dt, method), gain=p["gain"], bias=p["bias"],
                        v_threshold=p["theta"], adapt=p["adapt"], adapt_gain=p["adapt_gain"], metadata=meta)
    alpha = p.get("alpha", zeros)
    beta = p.get("beta", np.ones(n))
    gain, bias = p["gain"], p["bias"]
    node_bias = not bias_via_affine and bool(np.any(bias != 0))  # bias must live in the node (v_leak)
    theta = p.get("theta")
    if np.any(alpha >= 1):
        raise ExportError("nir", f"{where}.alpha", "alpha = 1 (no synaptic decay) has no NIR form (tau_syn = inf)")
    if np.all(beta == 1) and np.all(alpha == 0):  # IF / I
        if node_bias:
            raise ExportError("nir", f"{where}.bias", "a bias on a population without incoming projections "
                                                      "needs NIR v_leak, which IF and I nodes lack")
        if kind == "li":
            return nir.I(r=gain.copy(), metadata=meta)
        return nir.IF(r=gain.copy(), v_threshold=theta.copy(), v_reset=zeros, metadata=meta)
    if np.any(beta >= 1):
        raise ExportError("nir", f"{where}.beta", "beta = 1 (no leak) mixed with leaky neurons, or with alpha > 0, "
                                                  "has no NIR form (tau_mem = inf)")
    tau_mem = _taus(beta, dt, method)
    if np.all(alpha == 0):
        r = gain / (1.0 - beta)
        v_leak = zeros
        if node_bias:
            if np.any((r == 0) & (bias != 0)):
                raise ExportError("nir", f"{where}.bias", "a bias with gain 0 has no NIR v_leak form")
            v_leak = r * bias
        if kind == "li":
            return nir.LI(tau=tau_mem, r=r, v_leak=v_leak, metadata=meta)
        return nir.LIF(tau=tau_mem, r=r, v_leak=v_leak, v_threshold=theta.copy(), v_reset=zeros, metadata=meta)
    if node_bias:
        raise ExportError("nir", f"{where}.bias", "a bias on a population with alpha > 0 and no incoming "
                                                  "projection has no NIR form (CubaLIF's v_leak acts on v, not i)")
    kw = dict(tau_syn=_taus(alpha, dt, method), tau_mem=tau_mem, r=1.0 / (1.0 - beta), v_leak=zeros,
              w_in=gain / (1.0 - alpha), metadata=meta)
    if kind == "li":
        return nir.CubaLI(**kw)
    return nir.CubaLIF(v_threshold=theta.copy(), v_reset=zeros, **kw)


def write_nir(network: Network, path: Union[str, "os.PathLike[str]"],
              discretization: Optional[Discretization] = None, *, target: str = "neurosim",
              extensions: bool = False) -> None:
    """Write ``to_nir(network, discretization, target=, extensions=)`` to `path` with
    ``nir.write``, atomically; nothing is written when the target cannot express the network."""
    graph = to_nir(network, discretization, target=target, extensions=extensions)
    with h5_image(path) as buf:  # built in memory: a full disk cannot crash the HDF5 library
        nir.write(buf, graph)

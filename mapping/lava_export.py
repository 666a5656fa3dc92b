"""Lava (lava-nc 0.10) export: Dense/Sparse + neuron processes, run with ``Loihi2SimCfg``.

Which Lava process runs a population:

- Lava's own ``LIF`` for LIF and IF with ``reset='zero'`` (``LIFRefractory`` when refractory
  > 0, ``floating_pt`` only), checked by :func:`neurosim.fixed_point.lava_lif_params`.
  ``floating_pt``: ``LIF(du=1-alpha, dv=1-beta, vth, bias_mant=b, u=i0-b, v=v0)`` with
  ``b = bias*gain/(1-alpha)``; Lava's step ``u = u*(1-du) + a_in; v = v*(1-dv) + u + bias;
  s = v > vth; v[s] = 0`` is the canonical LIF step with i = u + b (i - b then decays by alpha
  exactly as u does, since b = alpha*b + bias*gain). du, dv may differ per neuron (Lava's
  models broadcast them). Per-neuron thresholds are absorbed by scaling neuron j's input
  weights, bias and initial state by 1/theta_j (vth = 1).
  ``fixed_pt``: the integers of :func:`neurosim.fixed_point.quantize`, run by Lava's own
  ``PyLifModelBitAcc``.
- Everything Lava's LIF lacks (ALIF: Lava has no LSNN ALIF and ATRLIF has other equations;
  subtractive reset; LI readouts; refractory periods in fixed point) runs as a custom process
  of :mod:`mapping.lava_processes`. ``floating_pt``: ``neuron_process``, whose model calls
  :func:`neurosim.models.neuron_step` on the population's lowered parameters (every option
  is the canonical step, in float64). ``fixed_pt``: ``fixed_neuron_process``, whose model
  calls :func:`neurosim.fixed_point.neuron_step_fixed` (the integer u, v of Lava's LIF plus
  the adaptation, adaptive threshold, subtractive reset, refractory counter and non-spiking
  readouts). Both are wired with Lava's Dense/DelayDense like any LIF.

In ``fixed_pt`` a Network is quantised by :func:`neurosim.fixed_point.quantize` (or a given
:class:`~neurosim.fixed_point.FixedPointNetwork` is used); spikes and u, v, a then equal
:func:`neurosim.fixed_point.simulate_fixed` exactly.

Latency: a ``lava.proc.io.source.RingBuffer`` sends its column t at Lava step t + 1 (steps
count from 1) with no extra delay; ``Dense``/``Sparse`` deliver a spike of step t at t + 1,
which is neurosim's delay 1. Delay d > 1 uses ``DelayDense``/``DelaySparse`` with Lava
delay d - 1. Spikes are recorded by one sink ``RingBuffer`` per population, traces by Monitors.

Convolutions and pooling run as Lava's own ``Conv`` process (same latency as Dense), in both
modes, where it can carry them; the rest of the shaped projections as Sparse/DelaySparse of
their CSR lowering (:mod:`mapping.lava_conv`; ``meta['shaped']`` of the result says which).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Iterable, Literal, Mapping, Optional, Union

import numpy as np

from neurosim.conv import ShapedProjection
from neurosim.errors import NetworkError
from neurosim.fixed_point import (TRACE_VARS, FixedConv, FixedPointNetwork, check_lava_inputs, fixed_traces,
                                  lava_lif_params, quantize)
from neurosim.models import IF, LIF, threshold
from neurosim.network import Network, Population, SpikeInput
from neurosim.result import SimulationResult, SpikeTrains
from neurosim.run import TraceSpec, describe_run, trace_request

from .lava_compat import import_lava, stopped
from .lava_conv import fixed_conv, fixed_kinds, float_conv, float_ready, wire_conv
from .lava_processes import fixed_neuron_process, is_custom, neuron_process, run_cfg

Mode = Literal["floating_pt", "fixed_pt"]
MODES = ("floating_pt", "fixed_pt")
LAVA_VAR = {"v": "v", "v_int": "v", "i": "u", "u_int": "u", "a": "a", "a_int": "a", "threshold": "a"}


@dataclass(eq=False)
class LavaBuild:
    """The Lava processes of one trial.

    Lava compiles and runs the processes connected to the one it is asked to run, so each
    connected part of the network (`components`: lists of population names) is run on its
    own: run ``sinks[component[0]]`` with `run_cfg` and `condition`, read, then stop it.
    neurons / connections / sources: name -> process; sinks: population -> RingBuffer
    recording its spikes (Lava step t + 1 into column t); monitors: (pop, Lava var) ->
    Monitor; custom: populations run by neurosim's custom processes; scale: pop -> (N,)
    factor from Lava's u, v to neurosim's units (floating_pt: v = v_lava / scale); bias:
    pop -> (N,) Lava bias in Lava units (i = (u + bias) / scale).
    """

    mode: str
    steps: int
    neurons: dict[str, Any]
    connections: dict[str, Any]
    sources: dict[str, Any]
    sinks: dict[str, Any]
    components: list[list[str]]
    monitors: dict[tuple[str, str], Any]
    scale: dict[str, np.ndarray]
    bias: dict[str, np.ndarray]
    run_cfg: Any
    condition: Any
    custom: frozenset[str] = frozenset()
    fixed: Optional[FixedPointNetwork] = None
    meta: dict[str, Any] = field(default_factory=dict)


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise NetworkError("mode", f"expected 'floating_pt' or 'fixed_pt', got {mode!r}")
    return mode


def _unavailable(mode: str) -> dict[str, str]:
    """Trace variables that `mode` cannot record: the integers outside fixed_pt."""
    if mode == "floating_pt":
        return {v: "exists in mode 'fixed_pt' only" for v in TRACE_VARS if v.endswith("_int")}
    return {}


def runs_as_lava_lif(pop: Population) -> bool:
    """floating_pt: Lava's own LIF (or LIFRefractory) runs `pop` (LIF/IF with reset 'zero');
    every other population runs as the custom ``neuron_process`` of :mod:`mapping.lava_processes`."""
    return isinstance(pop.model, (LIF, IF)) and pop.model.reset == "zero"


def _prepare(network: Union[Network, FixedPointNetwork], mode: str) -> Optional[FixedPointNetwork]:
    """Check that Lava can express `network` in `mode` (ExportError otherwise), before Lava is
    imported; for fixed_pt return the integer network (a Network is quantised with defaults)."""
    _check_mode(mode)
    if isinstance(network, FixedPointNetwork):
        if mode != "fixed_pt":
            raise NetworkError("mode", "a FixedPointNetwork runs in mode 'fixed_pt' only")
        return network
    if not isinstance(network, Network):
        raise NetworkError("network", f"expected a Network or FixedPointNetwork, got {type(network).__name__}")
    check_lava_inputs(network)
    if mode == "fixed_pt":
        return quantize(network)
    for pop in network.populations:
        if runs_as_lava_lif(pop):
            lava_lif_params(pop, fixed=False)
    return None


def to_lava(
    network: Union[Network, FixedPointNetwork],
    inputs: Mapping[str, Any],
    steps: int,
    mode: Mode = "floating_pt",
    *,
    traces: Optional[Mapping[str, Iterable[str]]] = None,
) -> LavaBuild:
    """Build Lava processes for one trial of `network` driven by `inputs` for `steps` steps.

    inputs: SpikeInput name -> spikes (steps, size) (or (steps, 1, size)); mode: 'floating_pt'
    or 'fixed_pt' (a Network is quantised with default options; a FixedPointNetwork is used as
    it is, fixed_pt only). traces: {'pop': [...]} of :data:`neurosim.fixed_point.TRACE_VARS`
    (``*_int`` in fixed_pt only), recorded by Monitors. Raises ExportError for anything Lava
    cannot express. A Network's multapses are merged first (one weight per (pre, post, delay),
    split into one connection per delay where a pair has several: ``Network.without_multapses``);
    convolutions and pooling run as Lava's Conv process where it can carry them, the others
    (and Flatten) as Sparse/DelaySparse of their exact CSR lowering (:mod:`mapping.lava_conv`;
    meta['shaped'] says which and why).
    """
    fixed = _prepare(network, mode)
    shaped: dict[str, str] = {}
    if fixed is not None:
        network = fixed
        shaped = fixed_kinds(fixed.projections, fixed.report.notes if fixed.report is not None else ())
    elif isinstance(network, Network):
        network, shaped = float_ready(network, {p.name: _float_factor(p) for p in network.populations})
        network = network.without_multapses()
    spec = trace_request(network.populations, traces, TRACE_VARS, _unavailable(mode))
    trial = _one_trial(network, inputs, steps)
    lava = import_lava()

    neurons, scale, bias = (_fixed_neurons(lava, fixed) if fixed is not None
                            else _float_neurons(lava, network))  # type: ignore[arg-type]
    custom = frozenset(name for name, proc in neurons.items() if is_custom(proc))
    sources = {}
    for src in network.inputs:
        if any(p.pre == src.name for p in network.projections):
            data = trial[src.name].T.astype(np.int32 if fixed is not None else np.float64)
            sources[src.name] = lava.RingBufferSource(data=data)
    connections = {}
    for proj in network.projections:
        pre = neurons[proj.pre].s_out if proj.pre in neurons else sources[proj.pre].s_out
        if isinstance(proj, (FixedConv, ShapedProjection)):
            conn = (fixed_conv(lava, proj) if isinstance(proj, FixedConv)
                    else float_conv(lava, proj, _float_factor(network.population(proj.post))))
            wire_conv(pre, conn, neurons[proj.post].a_in, conn_geometry(proj))
        else:
            conn = (_fixed_connection(lava, proj) if fixed is not None
                    else _float_connection(lava, proj, scale[proj.post], network, proj.post in custom))
            pre.connect(conn.s_in)
            conn.a_out.connect(neurons[proj.post].a_in)
        connections[proj.name] = conn

    sinks = {}
    for p in network.populations:
        sinks[p.name] = lava.RingBufferSink(shape=(p.size,), buffer=steps)
        neurons[p.name].s_out.connect(sinks[p.name].a_in)
    monitors = {}
    for pop, variables in spec.items():
        for var in sorted(_probed(neurons[pop], variables)):
            mon = lava.Monitor()
            mon.probe(getattr(neurons[pop], var), steps)
            monitors[(pop, var)] = mon
    return LavaBuild(mode=mode, steps=steps, neurons=neurons, connections=connections, sources=sources,
                     sinks=sinks, components=_components(network), monitors=monitors, scale=scale, bias=bias,
                     run_cfg=run_cfg(lava, mode, neurons), condition=lava.RunSteps(num_steps=steps),
                     custom=custom, fixed=fixed, meta={"traces": spec, "shaped": shaped})


def run_lava(
    network: Union[Network, FixedPointNetwork],
    inputs: Optional[Mapping[str, Any]] = None,
    steps: Optional[int] = None,
    *,
    mode: Mode = "floating_pt",
    traces: TraceSpec = None,
    batch: Optional[int] = None,
) -> SimulationResult:
    """Run `network` in Lava (``Loihi2SimCfg(select_tag=mode)``); the record neurosim.simulate returns.

    Trials of a batch run one after another, each on freshly built processes. The runtime is
    stopped after every trial, also on error. backend is 'lava-floating_pt' or 'lava-fixed_pt';
    traces: 'v', 'i', 'a', 'threshold' in the network's float units; 'v_int', 'u_int', 'a_int'
    the integers (fixed_pt). meta['custom'] lists the populations run by custom processes.
    """
    t0 = time.perf_counter()
    fixed = _prepare(network, mode)
    model = fixed if fixed is not None else network
    run = describe_run(network, inputs, steps, batch=batch, traces=traces, trace_vars=TRACE_VARS,
                       unavailable=_unavailable(mode),
                       no_counts="the Lava target sends inputs as binary spikes from a RingBuffer")
    steps, batch, given, spec = run.steps, run.batch, run.inputs, run.traces
    pops = list(network.populations)
    dense = {p.name: np.zeros((steps, batch, p.size), bool) for p in pops}
    rec = {p: {v: np.zeros((steps, batch, network.population(p).size),
                           np.int64 if v.endswith("_int") else np.float64) for v in vs} for p, vs in spec.items()}
    run_s = 0.0
    custom: frozenset[str] = frozenset()
    shaped: dict[str, str] = {}
    for b in range(batch):
        build = to_lava(model, {k: v[:, b] for k, v in given.items()}, steps, mode, traces=spec)
        custom, shaped = build.custom, build.meta["shaped"]
        recorded: dict[str, dict[str, np.ndarray]] = {p: {} for p in spec}
        for component in build.components:
            root = build.sinks[component[0]]
            tr = time.perf_counter()
            with stopped(root):
                root.run(condition=build.condition, run_cfg=build.run_cfg)
                run_s += time.perf_counter() - tr
                for name in component:
                    dense[name][:, b] = np.asarray(build.sinks[name].data.get()).T != 0
                for (pop, var), mon in build.monitors.items():
                    if pop in component:
                        proc = build.neurons[pop]
                        recorded[pop][var] = np.asarray(mon.get_data()[proc.name][var], np.float64)  # (steps, N)
        for pop, variables in spec.items():
            for var, values in _converted(build, network, pop, recorded[pop], variables).items():
                rec[pop][var][:, b] = values
    trains = {name: SpikeTrains.from_dense(d) for name, d in dense.items()}
    for src in network.inputs:
        trains[src.name] = SpikeTrains.from_dense(np.asarray(given[src.name]))
    t_end = time.perf_counter()
    meta: dict[str, Any] = {"populations": [p.name for p in pops], "mode": mode, "custom": sorted(custom),
                            "shaped": shaped}
    if fixed is not None and fixed.report is not None:
        meta["quantization"] = fixed.report
    return SimulationResult(
        spikes=trains, traces=rec, timings={"setup": 0.0, "run": run_s, "record": 0.0, "total": t_end - t0},
        backend=f"lava-{mode}", dtype="int32" if mode == "fixed_pt" else "float64", dt=network.dt,
        steps=steps, batch=batch, seed=0, meta=meta,
    )


def conn_geometry(proj: Union[FixedConv, ShapedProjection]) -> Any:
    """The ConvGeometry of a FixedConv or of a float shaped projection."""
    return proj.geometry if isinstance(proj, FixedConv) else proj.geometry()


def _float_factor(pop: Population) -> np.ndarray:
    """floating_pt: the factor (n,) that scales a weight into `pop`'s Lava process: gain / theta
    for Lava's LIF with per-neuron thresholds, gain for one threshold, 1 for a custom process
    (its neuron_step applies gain itself); :func:`_float_neurons` and :func:`_float_connection`."""
    if not runs_as_lava_lif(pop):
        return np.ones(pop.size)
    p = pop.params
    return p.gain * (np.ones(pop.size) if np.ptp(p.theta) == 0 else 1.0 / p.theta)


def _probed(proc: Any, variables: Iterable[str]) -> set[str]:
    """The Lava Vars of `proc` that the trace `variables` need ('i' is 'i' in neuron_process,
    'u' elsewhere; Lava's LIF has no 'a': a = 0 there)."""
    names = {LAVA_VAR[v] for v in variables}
    if "u" in names and not hasattr(proc, "u"):
        names = (names - {"u"}) | {"i"}
    return {n for n in names if hasattr(proc, n)}


def _converted(build: LavaBuild, network: Union[Network, FixedPointNetwork], pop: str,
               got: Mapping[str, np.ndarray], variables: Iterable[str]) -> dict[str, np.ndarray]:
    """neurosim trace variables (steps, N) from the Lava Vars recorded for `pop` in one trial."""
    if build.fixed is not None:
        fp = build.fixed.population(pop)
        ints = {k: np.round(got[k]).astype(np.int64) if k in got else np.zeros((build.steps, fp.size), np.int64)
                for k in ("u", "v", "a")}
        return fixed_traces(fp, ints["u"], ints["v"], ints["a"], variables)
    p = network.population(pop).params  # type: ignore[union-attr]
    n = len(p.theta)
    zeros = np.zeros((build.steps, n))
    c, b = build.scale[pop], build.bias[pop]
    i = got["i"] if "i" in got else (got["u"] + b) / c if "u" in got else zeros
    a = got.get("a", zeros)
    conv = {"v": lambda: got["v"] / c, "i": lambda: i, "a": lambda: a,
            "threshold": lambda: threshold(p, SimpleNamespace(a=a)) * np.ones((build.steps, n))}
    return {var: conv[var]() for var in variables}


# ------------------------------------------------------------------------------ builders


Neurons = tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray]]  # processes, scale, bias


def _float_neurons(lava: Any, network: Network) -> Neurons:
    neurons, scale, bias = {}, {}, {}
    for pop in network.populations:
        if not runs_as_lava_lif(pop):
            neurons[pop.name] = neuron_process(lava, pop)
            scale[pop.name], bias[pop.name] = np.ones(pop.size), np.zeros(pop.size)
            continue
        lif = lava_lif_params(pop, fixed=False)
        p = pop.params
        uniform = np.ptp(p.theta) == 0
        c = np.ones(pop.size) if uniform else 1.0 / p.theta        # Lava units per neurosim unit
        vth = float(p.theta[0]) if uniform else 1.0
        alpha, beta = lif["alpha"], lif["beta"]
        # bias b on i = bias b / (1 - alpha) on v with u = i - b / (1 - alpha) (module docstring)
        with np.errstate(divide="ignore", invalid="ignore"):
            b = np.where(p.bias != 0, p.bias * p.gain / (1.0 - alpha), 0.0) * c
        du, dv = 1.0 - alpha, 1.0 - beta
        kw = dict(shape=(pop.size,), du=du if np.ptp(du) else float(du[0]), dv=dv if np.ptp(dv) else float(dv[0]),
                  vth=vth, bias_mant=b, bias_exp=0, u=pop.i0 * c - b, v=pop.v0 * c, name=pop.name)
        if lif["refractory"] > 0:
            neurons[pop.name] = lava.LIFRefractory(refractory_period=int(lif["refractory"]), **kw)
        else:
            neurons[pop.name] = lava.LIF(**kw)
        scale[pop.name], bias[pop.name] = c, b
    return neurons, scale, bias


def _fixed_neurons(lava: Any, fixed: FixedPointNetwork) -> Neurons:
    neurons, scale, bias = {}, {}, {}
    for p in fixed.populations:
        if p.is_lava_lif:
            neurons[p.name] = lava.LIF(shape=(p.size,), du=p.du, dv=p.dv, vth=p.vth, bias_mant=p.bias_mant,
                                       bias_exp=p.bias_exp, u=p.u0, v=p.v0, name=p.name)
        else:
            neurons[p.name] = fixed_neuron_process(lava, p)
        scale[p.name], bias[p.name] = p.scale, p.effective_bias
    return neurons, scale, bias


def _float_connection(lava: Any, proj: Any, c_post: np.ndarray, network: Network, custom: bool) -> Any:
    """Dense/Sparse (delay 1) or DelayDense/DelaySparse, weights (n_post, n_pre) = (w * gain * c).T
    (gain = 1 for a custom process: neuron_step applies it)."""
    from scipy.sparse import csr_matrix

    post = network.population(proj.post)
    gain = np.ones(post.size) if custom else post.params.gain
    csr, delays = proj.to_csr()
    w = np.asarray(csr.to_dense(), np.float64) * (gain * c_post)[None, :]
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    d = np.zeros(w.shape, np.int64)
    d[rows, csr.indices] = delays - 1
    return _connection(lava, proj.name, w.T, d.T, proj.is_sparse, {}, csr_matrix)


def _fixed_connection(lava: Any, q: Any) -> Any:
    from scipy.sparse import csr_matrix

    from lava.utils.weightutils import SignMode

    opts = {"weight_exp": q.weight_exp, "num_weight_bits": 8, "sign_mode": SignMode[q.sign_mode.upper()]}
    return _connection(lava, q.name, q.weights.T.astype(np.int32), (q.delays - 1).T, q.sparse, opts, csr_matrix)


def _connection(lava: Any, name: str, w: np.ndarray, d: np.ndarray, sparse: bool, opts: dict[str, Any],
                csr_matrix: Any) -> Any:
    if not np.any(d):
        if sparse:
            return lava.Sparse(weights=csr_matrix(w), name=name, **opts)
        return lava.Dense(weights=w, name=name, **opts)
    d = np.where(w != 0, d, 0)
    if sparse:
        return lava.DelaySparse(weights=csr_matrix(w), delays=csr_matrix(d), max_delay=int(d.max()), name=name,
                                **opts)
    return lava.DelayDense(weights=w, delays=d, max_delay=int(d.max()), name=name, **opts)


# ------------------------------------------------------------------------------- helpers

def _components(network: Union[Network, FixedPointNetwork]) -> list[list[str]]:
    """Populations grouped by connectivity (inputs and projections join them), in network order."""
    parent = {n.name: n.name for n in (*network.populations, *network.inputs)}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for proj in network.projections:
        parent[find(proj.pre)] = find(proj.post)
    groups: dict[str, list[str]] = {}
    for p in network.populations:
        groups.setdefault(find(p.name), []).append(p.name)
    return list(groups.values())


def _one_trial(network: Union[Network, FixedPointNetwork], inputs: Mapping[str, Any],
               steps: int) -> dict[str, np.ndarray]:
    out = {}
    for src in network.inputs:
        if not isinstance(src, SpikeInput):
            continue
        if src.name not in inputs:
            raise NetworkError(f"inputs.{src.name}", f"missing spikes for SpikeInput {src.name!r}")
        arr = np.asarray(inputs[src.name])
        if arr.ndim == 3 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 2 or arr.shape[0] < steps or arr.shape[1] != src.size:
            raise NetworkError(f"inputs.{src.name}",
                               f"expected one trial of shape ({steps}, {src.size}), got "
                               f"{np.shape(inputs[src.name])} (run_lava loops over a batch)")
        out[src.name] = arr[:steps] != 0
    return out

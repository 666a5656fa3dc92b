"""Lava (lava-nc 0.10) export: Dense/Sparse + neuron processes, run with ``Loihi2SimCfg``.

Which Lava process runs a population:

- Lava's own ``LIF`` for LIF and IF with ``reset='zero'`` (``LIFRefractory`` when refractory
  > 0, ``floating_pt`` only), checked by :func:`neurosim.fixed_point.lava_lif_params`.
  ``floating_pt``: ``LIF(du=1-alpha, dv=1-beta, vth, bias_mant=bias*gain, u=i0, v=v0)``;
  Lava's step ``u = u*(1-du) + a_in; v = v*(1-dv) + u + bias; s = v > vth; v[s] = 0`` is the
  canonical LIF step with i = u + bias (bias only with alpha = 0). Per-neuron thresholds are
  absorbed by scaling neuron j's input weights, bias and initial state by 1/theta_j (vth = 1).
  ``fixed_pt``: the integers of :func:`neurosim.fixed_point.quantize`, run by Lava's own
  ``PyLifModelBitAcc``.
- Everything Lava's LIF lacks (ALIF: Lava has no LSNN ALIF and ATRLIF has other equations;
  subtractive reset; LI readouts; refractory periods in fixed point) runs as a custom process.
  ``floating_pt``: :func:`neuron_process`, whose model calls
  :func:`neurosim.models.neuron_step` on the population's lowered parameters (every option
  is the canonical step, in float64). ``fixed_pt``: :func:`fixed_neuron_process`, whose model
  (a subclass of Lava's ``AbstractPyLifModelFixed``: u, v by Lava's own
  ``subthr_dynamics``) adds the integer adaptation, adaptive threshold, subtractive reset,
  refractory counter and non-spiking readouts of :mod:`neurosim.fixed_point`, written
  against the process's own Vars. Both are wired with Lava's Dense/DelayDense like any LIF.

In ``fixed_pt`` a Network is quantised by :func:`neurosim.fixed_point.quantize` (or a given
:class:`~neurosim.fixed_point.FixedPointNetwork` is used); spikes and u, v, a then equal
:func:`neurosim.fixed_point.simulate_fixed` exactly.

Latency: a ``lava.proc.io.source.RingBuffer`` sends its column t at Lava step t + 1 (steps
count from 1) with no extra delay; ``Dense``/``Sparse`` deliver a spike of step t at t + 1,
which is neurosim's delay 1. Delay d > 1 uses ``DelayDense``/``DelaySparse`` with Lava
delay d - 1. Spikes are recorded by one sink ``RingBuffer`` per population, traces by Monitors.
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Iterable, Iterator, Literal, Mapping, Optional, Union

import numpy as np

from neurosim.errors import NetworkError
from neurosim.fixed_point import (TRACE_VARS, FixedPointNetwork, FixedPopulation, check_lava_inputs,
                                  fixed_traces, lava_lif_params, quantize)
from neurosim.models import IF, LIF, NeuronParams, NeuronState, neuron_step, threshold
from neurosim.network import Network, Population, SpikeInput
from neurosim.result import SimulationResult, SpikeTrains

from .lava_compat import import_lava

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


def runs_as_lava_lif(pop: Population) -> bool:
    """floating_pt: Lava's own LIF (or LIFRefractory) runs `pop` (LIF/IF with reset 'zero');
    every other population runs as the custom :func:`neuron_process`."""
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
    ('*_int' in fixed_pt only), recorded by Monitors. Raises ExportError for anything Lava
    cannot express.
    """
    fixed = _prepare(network, mode)
    spec = _trace_spec(network, traces, mode)
    trial = _one_trial(network, inputs, steps)
    lava = import_lava()

    neurons, scale, bias = (_fixed_neurons(lava, fixed) if fixed is not None
                            else _float_neurons(lava, network))  # type: ignore[arg-type]
    custom = frozenset(name for name, proc in neurons.items() if _is_custom(proc))
    sources = {}
    for src in network.inputs:
        if any(p.pre == src.name for p in network.projections):
            data = trial[src.name].T.astype(np.int32 if fixed is not None else np.float64)
            sources[src.name] = lava.RingBufferSource(data=data)
    connections = {}
    for k, proj in enumerate(network.projections):
        conn = (_fixed_connection(lava, fixed.projections[k]) if fixed is not None
                else _float_connection(lava, proj, scale[proj.post], network, proj.post in custom))
        pre = neurons[proj.pre].s_out if proj.pre in neurons else sources[proj.pre].s_out
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
                     run_cfg=_run_cfg(lava, mode, neurons), condition=lava.RunSteps(num_steps=steps),
                     custom=custom, fixed=fixed, meta={"traces": spec})


def run_lava(
    network: Union[Network, FixedPointNetwork],
    inputs: Optional[Mapping[str, Any]] = None,
    steps: Optional[int] = None,
    *,
    mode: Mode = "floating_pt",
    traces: Union[None, Mapping[str, Iterable[str]], Iterable[str]] = None,
    batch: Optional[int] = None,
) -> SimulationResult:
    """Run `network` in Lava (``Loihi2SimCfg(select_tag=mode)``); the record neurosim.simulate returns.

    Trials of a batch run one after another, each on freshly built processes. The runtime is
    stopped after every trial, also on error. backend is 'lava-floating_pt' or 'lava-fixed_pt';
    traces: 'v', 'i', 'a', 'threshold' in the network's float units; 'v_int', 'u_int', 'a_int'
    the integers (fixed_pt). meta['custom'] lists the populations run by custom processes.
    """
    from neurosim.simulate import _batch_size, _check_inputs, _check_steps

    t0 = time.perf_counter()
    fixed = _prepare(network, mode)
    model = fixed if fixed is not None else network
    inputs = dict(inputs or {})
    steps = _check_steps(steps, inputs)
    batch = _batch_size(network, inputs, batch)
    given = _check_inputs(network, inputs, steps, batch)
    spec = _trace_spec(network, traces, mode)
    pops = list(network.populations)
    dense = {p.name: np.zeros((steps, batch, p.size), bool) for p in pops}
    rec = {p: {v: np.zeros((steps, batch, network.population(p).size),
                           np.int64 if v.endswith("_int") else np.float64) for v in vs} for p, vs in spec.items()}
    run_s = 0.0
    custom: frozenset[str] = frozenset()
    for b in range(batch):
        build = to_lava(model, {k: v[:, b] for k, v in given.items()}, steps, mode, traces=spec)
        custom = build.custom
        recorded: dict[str, dict[str, np.ndarray]] = {p: {} for p in spec}
        for component in build.components:
            root = build.sinks[component[0]]
            tr = time.perf_counter()
            with _stopped(root):
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
    trains = {name: _trains(d) for name, d in dense.items()}
    for src in network.inputs:
        trains[src.name] = _trains(np.asarray(given[src.name]))
    t_end = time.perf_counter()
    meta: dict[str, Any] = {"populations": [p.name for p in pops], "mode": mode, "custom": sorted(custom)}
    if fixed is not None and fixed.report is not None:
        meta["quantization"] = fixed.report
    return SimulationResult(
        spikes=trains, traces=rec, timings={"setup": 0.0, "run": run_s, "record": 0.0, "total": t_end - t0},
        backend=f"lava-{mode}", dtype="int32" if mode == "fixed_pt" else "float64", dt=network.dt,
        steps=steps, batch=batch, seed=0, meta=meta,
    )


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
        b = p.bias * p.gain * c
        kw = dict(shape=(pop.size,), du=1.0 - lif["alpha"], dv=1.0 - lif["beta"], vth=vth, bias_mant=b,
                  bias_exp=0, u=pop.i0 * c, v=pop.v0 * c, name=pop.name)
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


# ------------------------------------------------------------------------- custom processes

_CUSTOM: dict[str, Any] = {}


def _custom_classes(lava: Any) -> SimpleNamespace:
    """The custom processes and their models, defined once Lava is importable:
    NeurosimNeuron (floating_pt, neuron_step) and NeurosimFixedNeuron (fixed_pt, integers).

    The models are handed to Lava per process instance through
    ``Loihi2SimCfg(exception_proc_model_map=...)``, so Lava does not search this package.
    """
    if not _CUSTOM:
        _CUSTOM.update(_float_classes(lava))
        _CUSTOM.update(_fixed_classes(lava))
    return SimpleNamespace(**_CUSTOM)


def _float_classes(lava: Any) -> dict[str, type]:
    class NeurosimNeuron(lava.AbstractProcess):
        """neurosim's canonical neuron (any model): state i, v, a, z, r; parameters a
        NeuronParams in proc_params."""

        def __init__(self, *, shape: tuple[int, ...], params: NeuronParams, i: np.ndarray, v: np.ndarray,
                     a: np.ndarray, name: Optional[str] = None) -> None:
            super().__init__(shape=shape, params=params, name=name)
            self.a_in = lava.InPort(shape=shape)
            self.s_out = lava.OutPort(shape=shape)
            self.i = lava.Var(shape=shape, init=i)
            self.v = lava.Var(shape=shape, init=v)
            self.a = lava.Var(shape=shape, init=a)
            self.z = lava.Var(shape=shape, init=0)
            self.r = lava.Var(shape=shape, init=0)

    @lava.implements(proc=NeurosimNeuron, protocol=lava.LoihiProtocol)
    @lava.requires(lava.CPU)
    @lava.tag("floating_pt")
    class PyNeurosimNeuronFloat(lava.PyLoihiProcessModel):
        """One call of neurosim.models.neuron_step per Lava step, in float64."""

        a_in = lava.LavaPyType(lava.PyInPort.VEC_DENSE, float)
        s_out = lava.LavaPyType(lava.PyOutPort.VEC_DENSE, float)
        i = lava.LavaPyType(np.ndarray, float)
        v = lava.LavaPyType(np.ndarray, float)
        a = lava.LavaPyType(np.ndarray, float)
        z = lava.LavaPyType(np.ndarray, float)
        r = lava.LavaPyType(np.ndarray, float)

        def run_spk(self) -> None:
            x = self.a_in.recv()
            old = NeuronState(self.i[None], self.v[None], self.a[None], self.z[None], self.r[None])
            new = neuron_step(self.proc_params["params"], old, np.asarray(x, np.float64)[None])
            for name in NeuronState._fields:
                getattr(self, name)[:] = getattr(new, name)[0]
            self.s_out.send(new.z[0])

    return {"float_process": NeurosimNeuron, "float_model": PyNeurosimNeuronFloat}


def _fixed_classes(lava: Any) -> dict[str, type]:
    # Lava's own base of PyLifModelBitAcc (imported by import_lava): u, v and bias arithmetic
    lif_fixed = sys.modules["lava.proc.lif.models"].AbstractPyLifModelFixed

    class NeurosimFixedNeuron(lava.AbstractProcess):
        """neurosim's integer neuron (:mod:`neurosim.fixed_point`): Lava's LIF Vars (u, v, du,
        dv, vth, bias_mant, bias_exp) plus a, z (last spikes), r (refractory count), drho,
        adapt_inc, adapt_mant, adapt_shift, refractory, reset_subtract, spiking."""

        def __init__(self, *, shape: tuple[int, ...], name: Optional[str] = None, **init: Any) -> None:
            super().__init__(shape=shape, name=name)
            self.a_in = lava.InPort(shape=shape)
            self.s_out = lava.OutPort(shape=shape)
            for var in ("u", "v", "a", "z", "r", "bias_mant", "bias_exp", "adapt_inc", "adapt_mant", "refractory"):
                setattr(self, var, lava.Var(shape=shape, init=init.get(var, 0)))
            for var in ("du", "dv", "vth", "drho", "adapt_shift", "reset_subtract", "spiking"):
                setattr(self, var, lava.Var(shape=(1,), init=init[var]))

    @lava.implements(proc=NeurosimFixedNeuron, protocol=lava.LoihiProtocol)
    @lava.requires(lava.CPU)
    @lava.tag("fixed_pt")
    class PyNeurosimFixedNeuron(lif_fixed):
        """Per step, after Lava's own u, v update (``subthr_dynamics``, as PyLifModelBitAcc):

        a = clip(trunc(a * (4096 - drho) / 4096) + adapt_inc * z, +-(2**23 - 1)) (z: last step's
        spikes); v held where r > 0; A = (vth << 6) + trunc(adapt_mant * a / 2**adapt_shift);
        s = v > A where r == 0 (never if not spiking); v = 0 or v - (vth << 6) where s;
        r = refractory where s, else max(r - 1, 0). Products in int64.
        """

        s_out = lava.LavaPyType(lava.PyOutPort.VEC_DENSE, np.int32, precision=24)
        vth: int = lava.LavaPyType(int, np.int32, precision=17)
        a = lava.LavaPyType(np.ndarray, np.int32, precision=24)
        z = lava.LavaPyType(np.ndarray, np.int32, precision=1)
        r = lava.LavaPyType(np.ndarray, np.int32, precision=8)
        drho: int = lava.LavaPyType(int, np.uint16, precision=13)
        adapt_inc = lava.LavaPyType(np.ndarray, np.int32, precision=16)
        adapt_mant = lava.LavaPyType(np.ndarray, np.int32, precision=16)
        adapt_shift: int = lava.LavaPyType(int, np.int32, precision=5)
        refractory = lava.LavaPyType(np.ndarray, np.int32, precision=8)
        reset_subtract: int = lava.LavaPyType(int, np.int32, precision=1)
        spiking: int = lava.LavaPyType(int, np.int32, precision=1)

        def _trunc_shift(self, p: np.ndarray, shift: int) -> np.ndarray:
            return np.sign(p) * np.right_shift(np.abs(p), shift)

        def run_spk(self) -> None:
            a_in_data = self.a_in.recv()
            self.scale_bias()
            limit = self.max_uv_val - 1
            vth = np.int64(_scalar(self.vth)) << self.vth_shift
            held = self.r > 0
            v_before = self.v.copy()
            decayed = self._trunc_shift(self.a.astype(np.int64) * (self.decay_unity - _scalar(self.drho)),
                                        self.decay_shift)
            self.a[:] = np.clip(decayed + self.adapt_inc.astype(np.int64) * self.z, -limit, limit)
            self.subthr_dynamics(activation_in=a_in_data)
            self.v[held] = v_before[held]
            adaptive = vth + self._trunc_shift(self.adapt_mant.astype(np.int64) * self.a, _scalar(self.adapt_shift))
            s = (self.v > adaptive) & ~held & bool(_scalar(self.spiking))
            if _scalar(self.reset_subtract):
                self.v[:] = np.clip(self.v.astype(np.int64) - s * vth, -limit, limit)
            else:
                self.v[s] = 0
            self.r[:] = np.where(s, self.refractory, np.maximum(self.r - 1, 0))
            self.z[:] = s
            self.s_out.send(s)

    return {"fixed_process": NeurosimFixedNeuron, "fixed_model": PyNeurosimFixedNeuron}


def _scalar(x: Any) -> int:
    """A Lava scalar Var (int or shape-(1,) array) as a Python int."""
    return int(np.asarray(x).reshape(-1)[0])


def neuron_process(lava: Any, pop: Population) -> Any:
    """A NeurosimNeuron process running neurosim.models.neuron_step for `pop` (floating_pt)."""
    return _custom_classes(lava).float_process(shape=(pop.size,), params=pop.params, i=pop.i0.copy(),
                                               v=pop.v0.copy(), a=pop.a0.copy(), name=pop.name)


def fixed_neuron_process(lava: Any, p: FixedPopulation) -> Any:
    """A NeurosimFixedNeuron process for the integer population `p` (fixed_pt)."""
    return _custom_classes(lava).fixed_process(
        shape=(p.size,), name=p.name, u=p.u0, v=p.v0, a=p.a0, bias_mant=p.bias_mant, bias_exp=p.bias_exp,
        adapt_inc=p.adapt_inc, adapt_mant=p.adapt_mant, refractory=p.refractory, du=p.du, dv=p.dv, vth=p.vth,
        drho=p.drho, adapt_shift=p.adapt_shift, reset_subtract=int(p.reset == "subtract"), spiking=int(p.spiking))


def _is_custom(proc: Any) -> bool:
    return bool(_CUSTOM) and isinstance(proc, (_CUSTOM["float_process"], _CUSTOM["fixed_process"]))


def _run_cfg(lava: Any, mode: str, neurons: Mapping[str, Any]) -> Any:
    """Loihi2SimCfg(select_tag=mode), with each custom process instance mapped to its model."""
    models = {}
    for proc in neurons.values():
        if _is_custom(proc):
            models[proc] = _CUSTOM["fixed_model" if isinstance(proc, _CUSTOM["fixed_process"]) else "float_model"]
    return lava.Loihi2SimCfg(select_tag=mode, exception_proc_model_map=models or None)


# ------------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _stopped(root: Any) -> Iterator[None]:
    """Stop `root`'s Lava runtime on leaving, also on error; an error while stopping does not
    hide the error that ended the run."""
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        try:
            root.stop()
        except Exception:
            if not failed:
                raise


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


def _trace_spec(network: Union[Network, FixedPointNetwork], traces: Any, mode: str) -> dict[str, list[str]]:
    if not traces:
        return {}
    items = traces.items() if isinstance(traces, Mapping) else (str(t).split(":", 1) for t in traces)
    names = {p.name for p in network.populations}
    spec: dict[str, list[str]] = {}
    for item in items:
        if len(item) != 2:
            raise NetworkError("traces", "expected 'population:variable' entries, e.g. 'exc:v'")
        pop, variables = item
        if pop not in names:
            raise NetworkError(f"traces.{pop}", f"no population named {pop!r}")
        for var in [variables] if isinstance(variables, str) else list(variables):
            if var not in TRACE_VARS:
                raise NetworkError(f"traces.{pop}", f"unknown variable {var!r}, expected one of {TRACE_VARS}")
            if mode == "floating_pt" and var.endswith("_int"):
                raise NetworkError("traces", f"{var!r} exists in mode 'fixed_pt' only")
            if var not in spec.setdefault(pop, []):
                spec[pop].append(var)
    return spec


def _trains(dense: np.ndarray) -> SpikeTrains:
    t, b, j = np.nonzero(dense)
    return SpikeTrains(t.astype(np.int64), b.astype(np.int32), j.astype(np.int32), dense.shape[2],
                       dense.shape[0], dense.shape[1])

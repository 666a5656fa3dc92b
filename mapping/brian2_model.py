"""The Brian2 model of a Network: the canonical discrete step reproduced exactly (float64) in Brian2's schedule.

Brian2 integrates ODEs, and its default per-step schedule (state update ``groups``, then
``thresholds``, synaptic propagation ``synapses``, ``resets``) would test input one step late.
Here a population is a NeuronGroup with state variables but no ODEs::

    i_syn, v, a, z, r : 1   the NeuronState of neurosim.models.neuron_step (i is i_syn:
                            Brian2 reserves i for the neuron index)
    x : 1                   input buffer; every Synapses object does ``on_pre='x_post += w'``
    alpha, beta, ... : 1    the lowered NeuronParams, one value per neuron (constant)

and the whole of :func:`neurosim.models.neuron_step`, translated line by line (STEP_CODE
below), runs in ``run_regularly(..., when='groups')``; ``threshold='z > 0'`` only emits the
spikes the step computed, and there is no Brian2 reset or refractoriness. A spike of Brian2
step t reaches x in the ``synapses`` slot of step t + k (k = Brian2's synaptic delay in
steps), and x is consumed by the step code of t + k + 1: Brian2 adds one step of its own, so
a neurosim delay of d steps is exported as a Brian2 delay of ``(d - 1) * dt``. Inputs are
SpikeGeneratorGroups (they emit in the ``thresholds`` slot, so the same offset holds).
A PoissonInput is exported in one of two modes (POISSON_MODES): 'exact' (default), a
SpikeGeneratorGroup of neurosim's own draw for the run's seed (:func:`draw_poisson`, the
generator neurosim.simulate uses: the same spikes), or 'statistical', Brian2's PoissonGroup
with the same rate per channel (it draws its own random numbers in the same ``thresholds``
slot: statistically equal to neurosim's input, not the same spikes).
A batch of B trials is B independent replicas in one network: replica b of a node of size n
holds Brian2 indices ``b*n .. b*n + n - 1``.

Exactness: parameters are per-neuron float64 arrays (no literals in the code); selections
(``where`` in neuron_step) are written ``int(c)*(p) + (1 - int(c))*(q)``, which is exact for
finite values; Brian2's loop-invariant rewriting is switched off, and compiled targets build
without -ffast-math and with -ffp-contract=off (no fused multiply-add). The only difference
left is the order in which simultaneous inputs are summed into x (last-bit differences).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from neurosim.conv import ShapedProjection
from neurosim.errors import ExportError
from neurosim.models import NeuronParams
from neurosim.network import Network, PoissonInput

TARGETS = ("numpy", "cython", "cpp_standalone")
#: how a PoissonInput is exported: neurosim's draw (the same spikes) or Brian2's PoissonGroup
POISSON_MODES = ("exact", "statistical")
#: neurosim trace name -> Brian2 variable
TRACE_VARIABLES = {"v": "v", "i": "i_syn", "a": "a", "threshold": "A"}
#: compiler flags for the cython and cpp_standalone targets: Brian2's defaults without
#: -ffast-math (and its -fno-finite-math-only), with fused multiply-add forbidden
COMPILE_ARGS = ["-w", "-O3", "-ffp-contract=off", "-march=native", "-std=c++11"]

# The parameters the translation below reads; checked against NeuronParams at import time of
# every export, so that a change of the canonical model cannot be silently ignored here.
_PARAMS = ("alpha", "beta", "theta", "bias", "gain", "rho", "adapt", "adapt_gain",
           "refractory", "reset_zero", "spiking")
#: NeuronParams field -> Brian2 name, where Brian2 reserves the name
_RENAMED = {"refractory": "refractory_steps"}
_STATE = (("i_syn", "synaptic current i"), ("v", "membrane potential (after reset)"),
          ("a", "adaptation variable"), ("z", "spike of this step (0/1)"),
          ("r", "remaining refractory steps"),
          ("x", "input buffer: weighted spikes arriving this step (on_pre: x_post += w)"))


def _select(flag: str, if_true: str, if_false: str) -> str:
    """``where(flag, p, q)`` for a 0/1 integer `flag`, as Brian2 abstract code: exact for finite p, q."""
    group = lambda e: e if e.isidentifier() else f"({e})"  # noqa: E731
    return f"{flag}*{group(if_true)} + (1 - {flag})*{group(if_false)}"


def _where(cond: str, if_true: str, if_false: str) -> str:
    return _select(f"int({cond})", if_true, if_false)


# neurosim.models.neuron_step, one assignment per line, in its order (s.X -> X, p.X -> X).
_STEP = (
    ("i_syn", "alpha*i_syn + gain*(x + bias)", "i = alpha * s.i + gain * (x + bias)"),
    ("a", "rho*a + adapt_gain*z", "a = rho * s.a + adapt_gain * s.z"),
    ("active", "int(r <= 0)", "active = s.r <= 0"),
    ("v", _select("active", "beta*v + i_syn", "v"), "v = where(active, beta * s.v + i, s.v)"),
    ("z", "int(v - (theta + adapt*a) > 0)*(active*spiking)",
     "z = H(v - (theta + adapt * a)) * (active * spiking)"),
    ("v", "v - z*(" + _where("reset_zero > 0", "v", "theta") + ")",
     "v = v - z * where(reset_zero > 0, v, theta)"),
    ("r", _where("z > 0", "refractory_steps", _where("r > 0", "r - 1", "r*0")),
     "r = where(z > 0, refractory, where(s.r > 0, s.r - 1, s.r * 0))"),
    ("x", "0", "the input of this step is consumed"),
)
STEP_CODE = "\n".join(f"{var} = {expr}  # {ref}" for var, expr, ref in _STEP) + "\n"
EQUATIONS = "\n".join(
    [f"{name} : 1  # {doc}" for name, doc in _STATE]
    + ["A = theta + adapt*a : 1  # adaptive threshold (neurosim.models.threshold)"]
    + [f"{_RENAMED.get(name, name)} : 1 (constant)  # NeuronParams.{name}" for name in _PARAMS]
) + "\n"
THRESHOLD = "z > 0"


def _check_translation() -> None:
    if tuple(NeuronParams._fields) != _PARAMS:
        raise ExportError("brian2", "NeuronParams", f"the Brian2 translation of neuron_step reads "
                          f"{_PARAMS} but NeuronParams now has {NeuronParams._fields}: update "
                          "mapping/brian2_model.py")


# ---------------------------------------------------------------------------------------------
# Description of a network as plain data (what the standalone script reads)


def describe(network: Network, poisson: str = "exact") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(spec, arrays): the network as JSON-able structure plus float64/int64 arrays.

    spec: dt, populations/inputs [{name, size, brian2_name, kind, index}] (kind 'spikes' for a
    SpikeInput, 'poisson' for a PoissonInput, with 'poisson': the mode of POISSON_MODES; index:
    its position among the network's inputs, which seeds neurosim's draw), projections [{name,
    pre, post, brian2_name, delay}] (delay: neurosim steps when one value for all synapses,
    else None; 'shaped': the record's one-line description for a convolution, pooling or
    Flatten, whose synapses :func:`synapse_table` expands from the kernel), and the model text (equations, step_code, threshold). arrays:
    ``pop.<name>.<param>`` and ``pop.<name>.<v0|i0|a0>`` (shape (size,));
    ``proj.<name>.<pre|post|w|delay>`` (one entry per synapse, delays in neurosim steps);
    ``in.<name>.p`` (per-step spike probability rate * dt) and ``in.<name>.rate`` (Hz) of a
    PoissonInput.
    """
    _check_translation()
    if not isinstance(network, Network):
        raise ExportError("brian2", "network", f"expected a neurosim.Network, got {type(network).__name__}")
    if poisson not in POISSON_MODES:
        raise ExportError("brian2", "poisson", f"expected one of {POISSON_MODES}, got {poisson!r}")
    arrays: dict[str, np.ndarray] = {}
    pops, srcs, projs = [], [], []
    for k, pop in enumerate(network.populations):
        pops.append({"name": pop.name, "size": pop.size, "model": type(pop.model).__name__,
                     "brian2_name": f"pop{k}_{pop.name.replace('-', '_')}"})
        for field in _PARAMS:
            arrays[f"pop.{pop.name}.{_RENAMED.get(field, field)}"] = np.asarray(getattr(pop.params, field), np.float64)
        for init in ("v0", "i0", "a0"):
            arrays[f"pop.{pop.name}.{init}"] = np.asarray(getattr(pop, init), np.float64)
    for k, src in enumerate(network.inputs):
        entry = {"name": src.name, "size": src.size, "brian2_name": f"in{k}_{src.name.replace('-', '_')}",
                 "kind": "spikes", "index": k}
        if isinstance(src, PoissonInput):
            entry.update(kind="poisson", poisson=poisson)
            rate = np.asarray(src.rate, np.float64)
            arrays[f"in.{src.name}.rate"] = rate
            arrays[f"in.{src.name}.p"] = rate * network.dt  # neurosim.plan.lower's probability
        srcs.append(entry)
    for k, proj in enumerate(network.projections):
        table = synapse_table(proj)
        for key, values in zip(("pre", "post", "w", "delay"), table):
            arrays[f"proj.{proj.name}.{key}"] = values
        entry = {"name": proj.name, "pre": proj.pre, "post": proj.post,
                 "brian2_name": f"syn{k}_{proj.name.replace('-', '_')}",
                 "delay": int(proj.delay) if np.ndim(proj.delay) == 0 else None}
        if isinstance(proj, ShapedProjection):
            entry["shaped"] = proj.describe()  # e.g. 'conv2d, kernel 16x2x5x5, stride 2x2, ...'
        projs.append(entry)
    spec = {"network": network.name, "dt": network.dt, "populations": pops, "inputs": srcs,
            "projections": projs, "equations": EQUATIONS, "step_code": STEP_CODE,
            "threshold": THRESHOLD, "trace_variables": dict(TRACE_VARIABLES)}
    return spec, arrays


def synapse_table(proj: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pre, post, w, delay) of every synapse of `proj`, one Brian2 synapse each (int64, int64,
    float64, int64 delays in neurosim steps).

    Dense and CSR projections: their entries (multapses kept). A convolution or pooling is
    expanded from its kernel: one synapse per (pre neuron, post neuron) pair a kernel tap joins,
    ``pre = (c*H + y)*W + x``, ``post = (o*H_out + oy)*W_out + ox`` with ``oy*s_h - p_h + ky*d_h
    = y`` and ``ox*s_w - p_w + kx*d_w = x`` for c in o's group, ``w = kernel[o, c % (C_in /
    groups), ky, kx]`` and that tap's delay (pooling: the kernel of ones or 1/(kh*kw), groups =
    channels; Flatten: k -> k, weight 1): :meth:`neurosim.conv.ConvGeometry.to_csr`, kernel
    zeros included, so that spikes equal ``torch.nn.functional.conv2d`` of the spike frame.
    """
    csr, delays = proj.to_csr()
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    return rows, np.asarray(csr.indices, np.int64), np.asarray(csr.values, np.float64), np.asarray(delays, np.int64)


# ---------------------------------------------------------------------------------------------
# Brian2 side. These functions use only brian2 and numpy: write_brian2_script copies their
# source into the standalone script, so the exporter and the script build the same network.


def set_prefs(b2: Any, target: str) -> None:
    """Brian2 preferences for an exact float64 run on `target` ('numpy', 'cython', 'cpp_standalone')."""
    b2.prefs.codegen.loop_invariant_optimisations = False
    b2.prefs.codegen.cpp.extra_compile_args_gcc = list(COMPILE_ARGS)
    if target in ("numpy", "cython"):
        b2.prefs.codegen.target = target
    b2.prefs.devices.cpp_standalone.openmp_threads = 0


def draw_poisson(p: np.ndarray, seed: int, index: int, steps: int, batch: int) -> np.ndarray:
    """The spikes neurosim.simulate draws for the PoissonInput at position `index` of the network's
    inputs with probability `p` per step: bool (steps, batch, size) from a generator seeded with
    (seed, index), uniform draws in (step, trial, channel) order, spike where draw < p."""
    p = np.asarray(p, np.float64)
    return np.random.default_rng([int(seed), int(index)]).random((steps, batch, len(p))) < p


def build_network(b2: Any, spec: dict, arrays: Mapping[str, np.ndarray], spikes: Mapping[str, np.ndarray],
                  steps: int, batch: int, traces: Optional[Mapping[str, list]] = None,
                  seed: int = 0) -> tuple[Any, dict]:
    """Brian2 objects for `spec`/`arrays`, `batch` replicas, input `spikes` name -> bool (steps, batch, size)
    for every SpikeInput; a PoissonInput is neurosim's draw for `seed` (mode 'exact') or a
    PoissonGroup (mode 'statistical').

    Returns (brian2.Network, handles) with handles: 'groups', 'inputs', 'synapses',
    'spike_monitors', 'state_monitors' (dicts keyed by neurosim name), 'sizes', 'batch',
    'steps', 'dt' and 'duration' (the Quantity to pass to Network.run).
    """
    dt = float(spec["dt"])
    clock = b2.Clock(dt=dt * b2.second, name="neurosim_clock")
    groups, inputs, synapses, spike_mons, state_mons, sizes = {}, {}, {}, {}, {}, {}
    for pop in spec["populations"]:
        name, n = pop["name"], int(pop["size"])
        g = b2.NeuronGroup(batch * n, spec["equations"], threshold=spec["threshold"], reset="",
                           clock=clock, name=pop["brian2_name"])
        for key in [k for k in arrays if k.startswith(f"pop.{name}.")]:
            field = key[len(f"pop.{name}."):]
            var = {"v0": "v", "i0": "i_syn", "a0": "a"}.get(field, field)
            setattr(g, var, np.tile(np.asarray(arrays[key], np.float64), batch))
        g.run_regularly(spec["step_code"], when="groups", name=pop["brian2_name"] + "_step")
        groups[name], sizes[name] = g, n
        spike_mons[name] = b2.SpikeMonitor(g, name=pop["brian2_name"] + "_spikes")
        wanted = [spec["trace_variables"][v] for v in (traces or {}).get(name, [])]
        if wanted:
            state_mons[name] = b2.StateMonitor(g, wanted, record=True, when="end",
                                               name=pop["brian2_name"] + "_state")
    for src in spec["inputs"]:
        name, n = src["name"], int(src["size"])
        if src.get("kind") == "poisson" and src.get("poisson") == "statistical":
            rates = np.tile(np.asarray(arrays[f"in.{name}.rate"], np.float64), batch)
            inputs[name], sizes[name] = b2.PoissonGroup(batch * n, rates * b2.Hz, clock=clock,
                                                        name=src["brian2_name"]), n
            spike_mons[name] = b2.SpikeMonitor(inputs[name], name=src["brian2_name"] + "_spikes")
            continue
        if src.get("kind") == "poisson":
            given = draw_poisson(arrays[f"in.{name}.p"], seed, src["index"], steps, batch)
        else:
            given = np.asarray(spikes[name], bool)[:steps]
        t, b, j = np.nonzero(given)
        gen = b2.SpikeGeneratorGroup(batch * n, (b * n + j).astype(np.int64), t * dt * b2.second,
                                     clock=clock, name=src["brian2_name"])
        inputs[name], sizes[name] = gen, n
        spike_mons[name] = b2.SpikeMonitor(gen, name=src["brian2_name"] + "_spikes")
    nodes = {**groups, **inputs}
    for proj in spec["projections"]:
        name = proj["name"]
        pre, post = arrays[f"proj.{name}.pre"], arrays[f"proj.{name}.post"]
        if len(pre) == 0:
            continue
        n_pre, n_post = sizes[proj["pre"]], sizes[proj["post"]]
        offsets = np.arange(batch, dtype=np.int64)[:, None]
        kw = {} if proj["delay"] is None else {"delay": (int(proj["delay"]) - 1) * dt * b2.second}
        syn = b2.Synapses(nodes[proj["pre"]], nodes[proj["post"]], "w : 1 (constant)",
                          on_pre="x_post += w", clock=clock, name=proj["brian2_name"], **kw)
        syn.connect(i=(pre[None, :] + offsets * n_pre).ravel(), j=(post[None, :] + offsets * n_post).ravel())
        syn.w = np.tile(np.asarray(arrays[f"proj.{name}.w"], np.float64), batch)
        if proj["delay"] is None:  # Brian2 adds one step itself: neurosim delay d -> d - 1 steps
            syn.delay = np.tile(np.asarray(arrays[f"proj.{name}.delay"], np.float64) - 1, batch) * dt * b2.second
        synapses[name] = syn
    net = b2.Network(*groups.values(), *inputs.values(), *synapses.values(),
                     *spike_mons.values(), *state_mons.values())
    handles = {"groups": groups, "inputs": inputs, "synapses": synapses, "spike_monitors": spike_mons,
               "state_monitors": state_mons, "sizes": sizes, "batch": batch, "steps": steps,
               "dt": dt, "duration": steps * dt * b2.second}
    return net, handles


def collect_spikes(handles: dict) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """name -> (step, batch, index) of every recorded spike, sorted by (step, batch, index)."""
    out = {}
    for name, mon in handles["spike_monitors"].items():
        n = handles["sizes"][name]
        flat = np.asarray(mon.i[:], np.int64)
        step = np.rint(np.asarray(mon.t_[:], np.float64) / handles["dt"]).astype(np.int64)
        b, j = flat // n, flat % n
        order = np.lexsort((j, b, step))
        out[name] = (step[order], b[order], j[order])
    return out


def collect_traces(handles: dict, trace_variables: Mapping[str, str]) -> dict[str, dict[str, np.ndarray]]:
    """population -> neurosim variable -> array (steps, batch, size), state after each step."""
    out: dict[str, dict[str, np.ndarray]] = {}
    back = {b2_name: ns_name for ns_name, b2_name in trace_variables.items()}
    for name, mon in handles["state_monitors"].items():
        n, batch = handles["sizes"][name], handles["batch"]
        out[name] = {back[var]: np.asarray(getattr(mon, var)[:], np.float64).T.reshape(-1, batch, n)
                     for var in mon.record_variables}
    return out

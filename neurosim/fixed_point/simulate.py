"""The integer simulator of Loihi's fixed-point mode: :func:`simulate_fixed`."""
from __future__ import annotations

import time
from typing import Any, Mapping, Optional

import numpy as np

from ..errors import NetworkError
from ..result import SimulationResult, SpikeTrains
from ..run import TraceSpec, describe_run
from .conv import FixedConv
from .records import TRACE_VARS, FixedPointNetwork, FixedProjection
from .step import fixed_traces, initial_state, neuron_step_fixed


def simulate_fixed(
    fixed: FixedPointNetwork,
    inputs: Optional[Mapping[str, Any]] = None,
    steps: Optional[int] = None,
    *,
    batch: Optional[int] = None,
    traces: TraceSpec = None,
) -> SimulationResult:
    """Simulate `fixed` with Lava 0.10's integer arithmetic (the :mod:`neurosim.fixed_point` docstring), bit-exactly.

    inputs, steps, batch: as :func:`neurosim.simulate`. traces: {'pop': [...]} or ['pop:var'];
    variables 'v_int', 'u_int', 'a_int' (the integers, int64) and 'v', 'i', 'a', 'threshold'
    (floats in the units of the float network, :func:`fixed_traces`). meta['u_wraps'],
    meta['v_clips'] and meta['a_clips'] count the 24-bit wraps of u and clips of v and a per
    population (0 for a well-scaled network). Mixed-sign mantissas act as Lava's Dense applies
    them, without their lowest bit (:attr:`FixedProjection.effective_weights`);
    meta['bit_dropped'] counts the synapses per projection that the drop changed. A
    :class:`~neurosim.fixed_point.conv.FixedConv` adds, one step later, the 24-bit wrapped
    convolution of Lava's fixed-point Conv (:meth:`FixedConv.step_input`).
    """
    t0 = time.perf_counter()
    if not isinstance(fixed, FixedPointNetwork):
        raise NetworkError("network", f"expected a FixedPointNetwork (from quantize), got {type(fixed).__name__}")
    run = describe_run(fixed, inputs, steps, batch=batch, traces=traces, trace_vars=TRACE_VARS,
                       no_counts="the fixed-point (Loihi) model takes binary input spikes")
    steps, batch, given, spec = run.steps, run.batch, run.inputs, run.traces

    rings = {p.name: np.zeros((max([q.max_delay for q in fixed.projections if q.post == p.name], default=1) + 1,
                               batch, p.size), np.int64) for p in fixed.populations}
    routes: dict[str, list[tuple[FixedProjection, list[tuple[int, np.ndarray]]]]] = {}
    convs: dict[str, list[tuple[FixedConv, tuple[np.ndarray, ...]]]] = {}
    for q in fixed.projections:
        if isinstance(q, FixedConv):
            convs.setdefault(q.pre, []).append((q, q.lowering()))
            continue
        by_delay = [(int(d), np.where(q.delays == d, q.effective_weights, 0)) for d in np.unique(q.delays)]
        routes.setdefault(q.pre, []).append((q, by_delay))
    state = {p.name: initial_state(p, batch) for p in fixed.populations}
    spikes = {p.name: np.zeros((steps, batch, p.size), bool) for p in fixed.populations}
    rec = {p: {v: np.zeros((steps, batch, fixed.population(p).size), np.int64) for v in ("u", "v", "a")}
           for p in spec}
    counters = {p.name: {"u_wraps": 0, "v_clips": 0, "a_clips": 0} for p in fixed.populations}
    t_setup = time.perf_counter()

    for t in range(steps):
        for p in fixed.populations:
            ring = rings[p.name]
            slot = t % len(ring)
            a_in = ring[slot].copy()
            ring[slot] = 0
            new = state[p.name] = neuron_step_fixed(p, state[p.name], a_in, counters[p.name])
            spikes[p.name][t] = new.z
            if p.name in rec:
                for var in ("u", "v", "a"):
                    rec[p.name][var][t] = getattr(new, var)
        for pre, conv_out in convs.items():
            s = (spikes[pre][t] if pre in spikes else given[pre][t]).astype(np.int64)
            for c, table in conv_out:
                if s.any():
                    ring = rings[c.post]
                    ring[(t + 1) % len(ring)] += c.step_input(s, table)
        for pre, outgoing in routes.items():
            s = (spikes[pre][t] if pre in spikes else given[pre][t]).astype(np.int64)
            if not s.any():
                continue
            for q, by_delay in outgoing:
                ring = rings[q.post]
                for d, w in by_delay:
                    acc = s @ w
                    ring[(t + d) % len(ring)] += (acc << q.weight_exp) if q.weight_exp > 0 else (acc >> -q.weight_exp)
    t_run = time.perf_counter()

    trains = {name: SpikeTrains.from_dense(arr) for name, arr in spikes.items()}
    for src in fixed.inputs:
        trains[src.name] = SpikeTrains.from_dense(np.asarray(given[src.name]))
    out_traces: dict[str, dict[str, np.ndarray]] = {}
    for name, variables in spec.items():
        r = rec[name]
        out_traces[name] = fixed_traces(fixed.population(name), r["u"], r["v"], r["a"], variables)
    t_end = time.perf_counter()
    return SimulationResult(
        spikes=trains, traces=out_traces,
        timings={"setup": t_setup - t0, "run": t_run - t_setup, "record": t_end - t_run, "total": t_end - t0},
        backend="fixed-point", dtype="int32", dt=fixed.dt, steps=steps, batch=batch, seed=0,
        meta={"populations": [p.name for p in fixed.populations],
              "u_wraps": {k: c["u_wraps"] for k, c in counters.items()},
              "v_clips": {k: c["v_clips"] for k, c in counters.items()},
              "a_clips": {k: c["a_clips"] for k, c in counters.items()},
              "bit_dropped": {q.name: q.n_bit_dropped for q in fixed.projections}},
    )

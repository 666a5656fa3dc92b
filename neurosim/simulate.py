"""`simulate`: run a Network on a backend and collect spikes, traces and timings."""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping, Optional

import numpy as np

from . import backends
from .errors import NetworkError
from .memory import available_memory
from .network import Network, SpikeInput
from .plan import Plan, cached_lower
from .result import SimulationResult, SpikeTrains
from .run import COUNT_MAX, TraceSpec, describe_run, trace_selection
from .traces import TraceSelection, describe_bytes, trace_bytes


def simulate(
    network: Network,
    inputs: Optional[Mapping[str, Any]] = None,
    steps: Optional[int] = None,
    *,
    batch: Optional[int] = None,
    backend: str = "numpy",
    dtype: str = "float64",
    seed: int = 0,
    traces: TraceSpec = None,
    progress: bool = False,
    chunk: Optional[int] = None,
    backend_options: Optional[Mapping[str, Any]] = None,
    partitions: int = 1,
    convolution: str = "events",
    trace_limit: Optional[int] = None,
) -> SimulationResult:
    """Simulate `network` for `steps` steps of ``network.dt`` on `backend`.

    inputs: SpikeInput name -> spikes, shape (T, size) or (T, batch, size) with T >= steps,
    values 0/1 (bool or numbers), or event counts (whole numbers up to 65535: `count` events of a
    source in one step deliver ``count * w`` on each of its synapses; numpy and numba backends
    only, see COUNT_BACKENDS; the input's recorded SpikeTrains hold one event per nonzero bin);
    Poisson inputs are drawn from `seed`, independently per
    input, trial and step, the same whatever the backend or chunking; `seed` is a whole number,
    0 <= seed < 2**63 (:func:`check_seed`).
    batch: number of independent trials (default: from the inputs, else 1).
    backend: 'numpy' (reference), 'numba' (compiled CPU), 'cupy' (GPU) or 'auto'.
    traces: {'pop': ['v', 'i', 'a', 'threshold']} or ['pop:v', ...]; recorded every step, or
    for some neurons every k-th step: 'pop:v:0-9,20:10' (neurosim.traces); the result's
    ``trace_selection`` names the neurons and stride kept.
    trace_limit: refuse (NetworkError on 'trace_limit', before running) a request whose traces
    would take more than this many bytes (:func:`neurosim.traces.trace_bytes`); None: no limit.
    backend_options: settings of the chosen backend, e.g. ``{'propagation': 'gather'}`` for
    cupy, ``{'dense': 'never'}`` for numba or numpy (see the backend module's ``OPTIONS``); a
    backend without options refuses any. The dense switch (neurosim.dense_blocks; numba: 'auto'
    by default, numpy: 'never') runs a dense projection from an input as one product over the
    batch when the chunk's input density reaches the backend's ``DENSE_CROSSOVER``; its sums
    then equal the event-driven ones to rounding (bit for bit where they are exact).
    The network is lowered once (:func:`neurosim.plan.cached_lower`, keyed on its identity).
    partitions: split the neurons into this many parts that exchange spike lists (numpy
    backend; neurosim.partition, the model of a multi-GPU run); the spikes are identical.
    convolution: 'events' (a spike adds the kernel patch it reaches, neurosim.conv_plan) or
    'lowered' (convolutions run as their CSR lowering, the reference); numpy and numba give the
    same spikes and states bit for bit either way (numba with ``dense='never'``, or exact sums).
    Partitioned runs use the lowering.
    """
    t_start = time.perf_counter()
    if not isinstance(network, Network):
        raise NetworkError("network", f"expected a neurosim.Network, got {type(network).__name__}")
    seed = check_seed(seed)
    run = describe_run(network, inputs, steps, batch=batch, traces=traces, max_count=COUNT_MAX, selectable=True)
    steps, batch, spike_inputs, trace_spec = run.steps, run.batch, run.inputs, run.traces
    selection = trace_selection(network.populations, traces)
    plan = cached_lower(network, dtype, "lowered" if partitions != 1 else convolution)  # once per network
    check_trace_size(network, trace_spec, selection, steps, batch, plan.dtype.itemsize, trace_limit)
    name = backends.resolve(backend)
    _check_counts(spike_inputs, name, partitions)
    module = backends.load(name)
    trace_idx = (np.concatenate([plan.slices[p][0] + selection[p].columns(network.population(p).size)
                                 for p in trace_spec]) if trace_spec else np.zeros(0, np.int64))
    trace_vars = sorted({v for vs in trace_spec.values() for v in vs}, key=backends.TRACE_VARS.index)
    options = _backend_options(name, module, backend_options)
    if partitions != 1:
        from .partition import PartitionedRunner

        if name != "numpy":
            raise NetworkError("partitions", f"parts are simulated on the numpy backend only, not {name!r}")
        runner = PartitionedRunner(plan, batch, trace_idx, trace_vars, partitions)
    else:
        runner = module.Runner(plan, batch, trace_idx, trace_vars, **options)
    rngs = {s.name: np.random.default_rng([int(seed), k]) for k, s in enumerate(network.inputs)}
    chunk = int(chunk) if chunk else _default_chunk(plan, batch)
    t_setup = time.perf_counter()

    events: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    src_events: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    trace_parts: list[dict[str, np.ndarray]] = []
    run_s = 0.0
    bar = _progress(steps, progress, f"simulate ({name})")
    try:
        for t0 in range(0, steps, chunk):
            n = min(chunk, steps - t0)
            src = _sources(network, plan, spike_inputs, rngs, t0, n, batch)
            tr = time.perf_counter()
            ev_t, ev_b, ev_j, tr_chunk = runner.run(t0, src)
            run_s += time.perf_counter() - tr
            events.append((ev_t, ev_b, ev_j))
            src_events.append(runner.source_events(src, t0) if hasattr(runner, "source_events") else
                              source_events(src, t0, plan.n_neurons))  # a compiled runner has its own
            trace_parts.append(_keep_traces(network, trace_spec, selection, tr_chunk, t0))
            bar.update(n)
            _check_projection(events, src_events, trace_parts, t0 + n, steps, run_s, bar)
    finally:
        bar.close()
    t_rec = time.perf_counter()
    spikes = {**_split_events(network.populations, plan, events, steps, batch,
                              known_sorted=getattr(runner, "events_sorted", False)),
              **_split_events(network.inputs, plan, src_events, steps, batch, known_sorted=True)}
    spikes = {node.name: spikes[node.name] for node in (*network.populations, *network.inputs)}
    trace_out = {pop: {v: np.concatenate([part[pop][v] for part in trace_parts], axis=0) for v in vs}
                 for pop, vs in trace_spec.items()}
    t_end = time.perf_counter()
    timings = {"setup": t_setup - t_start, "run": run_s, "record": t_end - t_rec, "total": t_end - t_start}
    meta: dict[str, Any] = {"populations": [p.name for p in network.populations], "n_synapses": int(len(plan.indices)),
                            "readouts": [p.name for p in network.populations if not p.spiking]}  # never spike (LI)
    if hasattr(runner, "stats"):  # a mapping (cupy) or a dataclass record (partition.Exchange)
        stats = runner.stats
        meta["backend_stats"] = dataclasses.asdict(stats) if dataclasses.is_dataclass(stats) else dict(stats)
    return SimulationResult(
        spikes=spikes, traces=trace_out, timings=timings, backend=name, dtype=str(plan.dtype),
        dt=network.dt, steps=steps, batch=batch, seed=int(seed), meta=meta,
        trace_selection={p: selection[p] for p in trace_spec if not selection[p].full},
    )


def _backend_options(name: str, module: Any, options: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """`options` checked against the backend module's OPTIONS (name -> description)."""
    allowed: Mapping[str, str] = getattr(module, "OPTIONS", {})
    for key in options or {}:
        if key not in allowed:
            known = f"its options: {', '.join(sorted(allowed))}" if allowed else "it takes none"
            raise NetworkError(f"backend_options.{key}", f"backend {name!r} has no option {key!r} ({known})")
    return dict(options or {})


SEED_LIMIT = 2**63  # seeds are stored as int64 (a result file's 'seed' attribute)


def check_seed(seed: Any, field: str = "seed") -> int:
    """`seed` as an int: a whole number with 0 <= seed < 2**63, else NetworkError naming `field`.
    The one check of every seed neurosim takes (the CLI's --seed options parse with it)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise NetworkError(field, f"expected a whole number >= 0 and < 2**63, got {seed!r}")
    if not 0 <= int(seed) < SEED_LIMIT:
        raise NetworkError(field, f"expected a whole number >= 0 and < 2**63, got {int(seed)}")
    return int(seed)


def _default_chunk(plan: Plan, batch: int) -> int:
    """Steps per runner call: keeps input chunks near 16 MB and progress responsive."""
    per_step = max(1, batch * max(plan.n_sources, 1))
    return int(max(1, min(2000, (16 << 20) // per_step)))


COUNT_BACKENDS = ("numpy", "numba")  # backends whose scatter multiplies a weight by the input's count


def _check_counts(spike_inputs: Mapping[str, np.ndarray], backend: str, partitions: int) -> None:
    """Refuse event counts (uint16 inputs) where the runner carries one bit per input source."""
    for key, arr in spike_inputs.items():
        if arr.dtype == bool:
            continue
        if backend not in COUNT_BACKENDS:
            raise NetworkError(f"inputs.{key}", f"holds event counts up to {int(arr.max())}; backend {backend!r} "
                                                "takes spikes 0/1 only (its kernels carry one bit per input source "
                                                f"and step): use backend {' or '.join(COUNT_BACKENDS)}")
        if partitions != 1:
            raise NetworkError(f"inputs.{key}", f"holds event counts up to {int(arr.max())}; a partitioned run "
                                                "exchanges spike lists of 0/1 events: use partitions=1")


def _sources(network: Network, plan: Plan, spike_inputs: Mapping[str, np.ndarray],
             rngs: dict[str, np.random.Generator], t0: int, n: int, batch: int) -> np.ndarray:
    """Input spikes of steps [t0, t0 + n) as bool (n, batch, n_sources), in plan order; uint16
    when a SpikeInput carries event counts (Poisson sources then count 0/1)."""
    parts = []
    for s in network.inputs:
        if isinstance(s, SpikeInput):
            parts.append(spike_inputs[s.name][t0:t0 + n])
        else:
            parts.append(rngs[s.name].random((n, batch, s.size)) < plan.poisson[s.name])
    if not parts:
        return np.zeros((n, batch, 0), dtype=bool)
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)  # read-only for runners


def source_events(src: np.ndarray, t0: int, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(step + t0, trial, source + offset) of every nonzero entry of `src` (steps, batch,
    sources), int64, in C order: ``np.nonzero``'s events, from one flat scan and two divisions
    (0.6x its time on a 5.6M-entry chunk at 20% density)."""
    flat = np.flatnonzero(src)
    t, rest = np.divmod(flat, src.shape[1] * src.shape[2])
    b, j = np.divmod(rest, src.shape[2])
    t += t0
    j += offset
    return t, b, j


def _split_events(nodes: Any, plan: Plan, events: list, steps: int, batch: int,
                  known_sorted: bool = False) -> dict[str, SpikeTrains]:
    """Per node (populations or inputs), its events sorted by (step, batch, index). Runners return
    each chunk's events sorted (backends' contract) and chunks come in step order, so a node's
    events are usually sorted already: checked in one pass, sorted only when they are not
    (`known_sorted`: the inputs' events, np.nonzero of each chunk in step order, are, and so are
    the events of a runner whose ``events_sorted`` says its loop emits them in that order)."""
    if len(events) == 1:  # one chunk: its arrays, not copies
        t, b, j = events[0]
    else:
        t, b, j = (np.concatenate([e[c] for e in events]) if events else np.zeros(0, np.int64) for c in range(3))
    out = {}
    for node in nodes:
        lo, hi = plan.slices[node.name]
        if len(nodes) == 1:  # every event is this node's
            tt, bb = np.asarray(t, np.int64), np.asarray(b, np.int32)  # no copy where the type is already right
            jj = np.subtract(j, lo, out=np.empty(len(j), np.int32), casting="unsafe")  # one pass, int32
        else:
            m = (j >= lo) & (j < hi)
            tt, bb, jj = t[m].astype(np.int64), b[m].astype(np.int32), (j[m] - lo).astype(np.int32)
        key = None if known_sorted else (tt * batch + bb) * node.size + jj
        if key is not None and key.size > 1 and np.any(key[1:] < key[:-1]):
            order = np.argsort(key, kind="stable")
            tt, bb, jj = tt[order], bb[order], jj[order]
        out[node.name] = SpikeTrains(tt, bb, jj, node.size, steps, batch)
    return out


def _keep_traces(network: Network, spec: Mapping[str, list[str]], selection: Mapping[str, TraceSelection],
                 chunk: dict[str, np.ndarray], t0: int) -> dict[str, dict[str, np.ndarray]]:
    """population -> variable -> the kept rows of a runner's traces of steps [t0, t0 + n): the
    population's selected columns (in trace_idx order) at the steps that are multiples of its
    stride; copies, so the runner's chunk is freed."""
    out: dict[str, dict[str, np.ndarray]] = {}
    offset = 0
    for pop, vs in spec.items():
        sel = selection[pop]
        width = sel.count(network.population(pop).size)
        first = (-t0) % sel.stride  # the first step of this chunk that is a multiple of the stride
        out[pop] = {v: np.ascontiguousarray(chunk[v][first::sel.stride, :, offset:offset + width]) for v in vs}
        offset += width
    return out


def check_trace_size(network: Network, spec: Mapping[str, list[str]], selection: Mapping[str, TraceSelection],
                     steps: int, batch: int, itemsize: int, limit: Optional[int]) -> int:
    """Bytes the requested traces will take (:func:`neurosim.traces.trace_bytes`); NetworkError on
    'trace_limit' when more than `limit` (None: no limit), naming the size and how to shrink it."""
    counts = {p: network.population(p).size for p in spec}
    need = trace_bytes(counts, dict(spec), dict(selection), steps, batch, itemsize)
    if limit is not None and need > limit:
        first = next(iter(spec))
        raise NetworkError("trace_limit", f"the traces would take about {describe_bytes(need)}, more than the limit "
                                          f"of {describe_bytes(limit)}; record some neurons every k-th step (e.g. "
                                          f"{first}:{spec[first][0]}:0-99:10) or raise the limit")
    return need


def _check_projection(events: list, src_events: list, trace_parts: list, done: int, steps: int, run_s: float,
                      bar: Any) -> None:
    """After each chunk: the whole run's time in words in the progress bar (tqdm's ETA is hours,
    e.g. 491818:11:19 for 10**12 CUBA steps), and a refusal (NetworkError on 'steps') as soon as
    the spikes and traces recorded so far, projected linearly to `steps`, exceed the memory
    available (:func:`neurosim.memory.available_memory`) instead of running out of it later."""
    if done >= steps:
        return
    if run_s > 0:
        bar.set_postfix_str(f"whole run about {_duration(run_s * steps / done)}", refresh=False)
    held = sum(a.nbytes for part in (events, src_events) for e in part for a in e)
    held += sum(a.nbytes for part in trace_parts for pop in part.values() for a in pop.values())
    projected = held * (steps / done)
    available = available_memory()
    if projected > available:
        raise NetworkError("steps", f"would record about {projected / 1e9:.3g} GB of spikes and "
                                    f"traces ({held / 1e6:.3g} MB in the first {done} steps), more than the "
                                    f"{available / 1e9:.3g} GB of memory available; simulate fewer steps "
                                    "(the run would take about " + _duration(run_s * steps / max(done, 1)) + ")")


def _duration(seconds: float) -> str:
    """A duration in words: '40 s', '12 min', '5.2 h', '3.1 days', '56 years'."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.2g} s"


def _progress(total: int, enabled: bool, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", unit_scale=True, leave=False, disable=not enabled)

"""The description of one run that every runner takes: network, checked inputs, steps, batch, traces.

:func:`describe_run` turns what a user passes (``inputs, steps, batch, traces``) into a
:class:`RunSpec`, with the checks and error messages of :func:`neurosim.simulate`:

- steps: a whole number >= 1; without it, the common length T of the inputs;
- batch: a whole number >= 1; without it, the inputs' number of trials (inputs with one trial,
  shape (T, size) or (T, 1, size), are broadcast to every trial);
- inputs: one 0/1 (bool or number) array per SpikeInput, shape (T, size) or (T, batch, size)
  with T >= steps; none for a PoissonInput (its spikes are drawn by the runner). A runner that
  takes event counts (graded input: ``count`` events of one source in one step deliver
  ``count * w`` on each of its synapses) passes ``max_count > 1``; whole numbers in
  [0, max_count] are then accepted and kept as uint16 counts;
- traces: ``{'pop': ['v', ...]}`` or ``['pop:v', ...]``, variables from the runner's list;
  ``'pop:v:0-9,20:10'`` keeps neurons 0-9 and 20 every 10th step (neurosim.traces) where the
  runner can (neurosim.simulate).

The numpy, numba and cupy backends (:func:`neurosim.simulate`), the fixed-point simulator
(:func:`neurosim.fixed_point.simulate_fixed`), Brian2 (:func:`mapping.brian2_export.run_brian2`)
and Lava (:func:`mapping.lava_export.run_lava`) all build their run through it. It needs of a
network only its input sources (``.inputs``: SpikeInput / PoissonInput) and its populations'
names (``.populations``), so a :class:`~neurosim.network.Network` and a
:class:`~neurosim.fixed_point.FixedPointNetwork` both describe a run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Protocol, Sequence, Union

import numpy as np

from .backends import TRACE_VARS
from .errors import NetworkError
from .network import PoissonInput, SpikeInput
from .traces import TraceSelection, parse_neurons, parse_stride, split_entry

TraceSpec = Union[None, Mapping[str, Iterable[str]], Iterable[str]]


class Named(Protocol):
    """Anything with a name and a size (a population of a Network or a FixedPointNetwork)."""

    name: str
    size: int


class RunnableNetwork(Protocol):
    """What a run needs of a network: its populations and its input sources, in order."""

    populations: Sequence[Any]
    inputs: Sequence[Union[SpikeInput, PoissonInput]]


@dataclass(frozen=True, eq=False)
class RunSpec:
    """One run of `network`: `steps` steps of `batch` independent trials.

    inputs: SpikeInput name -> bool array (steps, batch, size), or uint16 event counts when the
    runner takes counts and the input holds one above 1; read-only (a broadcast view
    when the caller gave one trial), one per SpikeInput of the network, none for a
    PoissonInput; traces: population -> variables to record, in population order.
    Built by :func:`describe_run`; checks on construction that its parts agree.
    """

    network: Any
    inputs: Mapping[str, np.ndarray]
    steps: int
    batch: int
    traces: Mapping[str, list[str]]

    def __post_init__(self) -> None:
        for name, value in (("steps", self.steps), ("batch", self.batch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise NetworkError(name, f"expected a whole number >= 1, got {value!r}")
        spike_inputs = {s.name: s for s in self.network.inputs if isinstance(s, SpikeInput)}
        if set(self.inputs) != set(spike_inputs):
            raise NetworkError("inputs", f"expected spikes for exactly {sorted(spike_inputs)}, "
                                         f"got {sorted(self.inputs)}")
        for name, arr in self.inputs.items():
            want = (self.steps, self.batch, spike_inputs[name].size)
            if arr.dtype not in (np.dtype(bool), np.dtype(np.uint16)) or arr.shape != want:
                raise NetworkError(f"inputs.{name}", f"expected bool spikes (or uint16 counts) of shape {want}, "
                                                     f"got {arr.dtype} {arr.shape}")
        populations = {p.name for p in self.network.populations}
        for pop in self.traces:
            if pop not in populations:
                raise NetworkError(f"traces.{pop}", f"no population named {pop!r}")


def describe_run(
    network: RunnableNetwork,
    inputs: Optional[Mapping[str, Any]] = None,
    steps: Optional[int] = None,
    *,
    batch: Optional[int] = None,
    traces: TraceSpec = None,
    trace_vars: Sequence[str] = TRACE_VARS,
    unavailable: Optional[Mapping[str, str]] = None,
    max_count: int = 1,
    no_counts: str = "",
    selectable: bool = False,
) -> RunSpec:
    """The :class:`RunSpec` of running `network` on `inputs` for `steps` steps (module docstring).

    trace_vars: the variables the runner records (default: the float backends'
    :data:`neurosim.backends.TRACE_VARS`); unavailable: variable -> why this runner cannot
    record it here (NetworkError on 'traces': ``'<var>' <why>``); selectable: the runner keeps
    the neurons and stride an entry may name (:func:`trace_selection`), else such an entry is
    refused. max_count: the largest event count per source and step the runner takes (1: spikes
    0/1 only; `no_counts` then says why this runner takes no counts, for the error). Raises
    NetworkError naming the field, with the messages of :func:`neurosim.simulate`.
    """
    given = dict(inputs or {})
    steps = check_steps(steps, given)
    batch = batch_size(given, batch)
    spikes = check_inputs(network.inputs, given, steps, batch, max_count=max_count, no_counts=no_counts)
    spec = trace_request(network.populations, traces, trace_vars, unavailable, selectable=selectable)
    return RunSpec(network=network, inputs=spikes, steps=steps, batch=batch, traces=spec)


def check_steps(steps: Any, inputs: Mapping[str, Any]) -> int:
    """`steps` as an int >= 1; None: the length shared by all `inputs` (NetworkError 'steps')."""
    if steps is None:
        lengths = {np.shape(v)[0] for v in inputs.values() if np.ndim(v) >= 1}
        if len(lengths) != 1:
            raise NetworkError("steps", "expected a number of steps (or inputs that all have the same length)")
        steps = lengths.pop()
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise NetworkError("steps", f"expected a whole number of steps >= 1, got {steps!r}")
    return int(steps)


def batch_size(inputs: Mapping[str, Any], batch: Optional[int]) -> int:
    """Trials: `batch` if given, else the inputs' batch size; inputs of batch 1 broadcast."""
    trials = {k: np.shape(v)[1] for k, v in inputs.items() if np.ndim(v) == 3 and np.shape(v)[1] != 1}
    found = set(trials.values())
    if len(found) > 1:
        raise NetworkError("inputs", f"inputs disagree on the number of trials: {trials}")
    if batch is None:
        batch = found.pop() if found else 1
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise NetworkError("batch", f"expected a whole number of trials >= 1, got {batch!r}")
    if found and found.pop() != batch:
        name, n = next(iter(trials.items()))
        raise NetworkError("batch", f"batch={batch} but input {name!r} has {n} trials")
    return int(batch)


def check_inputs(sources: Iterable[Union[SpikeInput, PoissonInput]], inputs: Mapping[str, Any], steps: int,
                 batch: int, *, max_count: int = 1, no_counts: str = "") -> dict[str, np.ndarray]:
    """Validate user spike arrays for the input `sources`; returns name -> array (steps, batch, size):
    bool for spikes 0/1, uint16 event counts where an input holds a whole number in (1, max_count].
    With ``max_count == 1`` a count above 1 is refused, the message ending in `no_counts` (why
    this runner takes no counts). Nothing is clipped: a value outside the accepted range is an error."""
    if not 1 <= max_count <= COUNT_MAX:
        raise ValueError(f"max_count: expected 1..{COUNT_MAX}, got {max_count}")
    sources = list(sources)
    names = {s.name: s for s in sources}
    for key in inputs:
        if key not in names:
            raise NetworkError(f"inputs.{key}", f"the network has no input named {key!r} (has {sorted(names)})")
        if isinstance(names[key], PoissonInput):
            raise NetworkError(f"inputs.{key}", "is a PoissonInput: its spikes are drawn, not given")
    out = {}
    for s in sources:
        if not isinstance(s, SpikeInput):
            continue
        if s.name not in inputs:
            raise NetworkError(f"inputs.{s.name}", f"missing spikes for SpikeInput {s.name!r}, "
                                                   f"expected shape ({steps}, {s.size}) or ({steps}, {batch}, {s.size})")
        arr = np.asarray(inputs[s.name])
        given_shape = arr.shape
        if arr.ndim == 2:
            arr = arr[:, None, :]
        if arr.ndim != 3 or arr.shape[2] != s.size or arr.shape[0] < steps or arr.shape[1] not in (1, batch):
            raise NetworkError(f"inputs.{s.name}", f"expected shape (T, {s.size}) or (T, {batch}, {s.size}) "
                                                   f"with T >= {steps}, got {given_shape}"
                                                   + swapped_axes_hint(given_shape, s.size, steps))
        if arr.dtype != bool:
            arr = _spikes_or_counts(s.name, np.asarray(inputs[s.name]), arr, max_count, no_counts)
        out[s.name] = np.broadcast_to(arr[:steps], (steps, batch, s.size))
    return out


COUNT_MAX = 65535  # counts travel as uint16


def _spikes_or_counts(name: str, given: np.ndarray, arr: np.ndarray, max_count: int, no_counts: str) -> np.ndarray:
    """`arr` (numbers) as bool spikes, or as uint16 counts when one exceeds 1 and counts are taken."""
    expected = "spikes as 0/1 or bool values" if max_count == 1 else f"event counts, whole numbers 0..{max_count}"
    if arr.dtype.kind not in "biuf":
        raise NetworkError(f"inputs.{name}", f"expected {expected}, got dtype {arr.dtype}")
    bad = (given < 0) | (given > max_count) | (given != np.floor(given))  # NaN compares unequal: bad
    if np.any(bad):
        found = given[bad].flat[0].item()  # a Python number: numpy 2 would print np.int64(5)
        why = f" ({no_counts})" if max_count == 1 and no_counts and found > 1 and found == np.floor(found) else ""
        raise NetworkError(f"inputs.{name}", f"expected {expected}, found {found!r} at index "
                                             f"{np.argwhere(bad)[0].tolist()}{why}")
    if max_count == 1 or not np.any(arr > 1):
        return arr != 0
    return arr.astype(np.uint16)


def swapped_axes_hint(shape: tuple[int, ...], size: int, steps: int) -> str:
    """'; ...' naming the swapped axes when `shape`, refused as an input of `size` channels for
    `steps` steps, is the batch-first form (B, T, size) with T >= steps (as a DataLoader yields
    it) or the channels-first form (size, T); '' otherwise."""
    if len(shape) == 3 and shape[2] == size and shape[1] >= steps and shape[0] < steps:
        return (f"; this looks batch-first, (B, T, n) = {tuple(shape)}: neurosim takes time first, "
                "(T, B, n); pass x.transpose(1, 0, 2) (np.swapaxes(x, 0, 1))")
    if len(shape) == 2 and shape[0] == size and shape[1] >= steps and shape[1] != size:
        return f"; this looks like (n, T) = {tuple(shape)}: neurosim takes time first, (T, n); pass x.T"
    return ""


def trace_request(populations: Iterable[Named], traces: TraceSpec, variables: Sequence[str] = TRACE_VARS,
                  unavailable: Optional[Mapping[str, str]] = None, *, selectable: bool = False) -> dict[str, list[str]]:
    """population -> variables to record, in population order, from ``{'pop': ['v', ...]}`` or
    ``['pop:var', ...]``; each variable one of `variables` and not in `unavailable`
    (variable -> why not). An entry may pick neurons and a stride, ``'pop:var:0-9,20:10'``
    (``{'pop': ['var:0-9,20:10']}``; neurosim.traces) where the runner keeps only those
    (`selectable`; else NetworkError). NetworkError naming 'traces' or 'traces.<pop>'."""
    if not traces:
        return {}
    order = [p.name for p in populations]
    spec: dict[str, list[str]] = {}
    for pop, v, neurons, stride in trace_entries(traces):
        if pop not in order:
            raise NetworkError(f"traces.{pop}", f"no population named {pop!r}")
        if v not in variables:
            raise NetworkError(f"traces.{pop}", f"unknown variable {v!r}, expected one of {tuple(variables)}")
        if unavailable and v in unavailable:
            raise NetworkError("traces", f"{v!r} {unavailable[v]}")
        if (neurons or stride) and not selectable:
            raise NetworkError(f"traces.{pop}", f"{pop}:{v}:{neurons}:{stride}: this runner records every neuron "
                                                "every step; neurons and a stride are kept by neurosim.simulate")
        spec.setdefault(pop, [])
        if v not in spec[pop]:
            spec[pop].append(v)
    return {p: spec[p] for p in order if p in spec}


def trace_entries(traces: TraceSpec) -> list[tuple[str, str, str, str]]:
    """(population, variable, neurons, stride) of every entry of a trace request (module
    docstring; neurons and stride as written, '' when absent)."""
    if not traces:
        return []
    if isinstance(traces, Mapping):
        texts = []
        for pop, requested in traces.items():
            requested = [requested] if isinstance(requested, str) else list(requested)
            texts += [f"{pop}:{v}" for v in requested]
    elif isinstance(traces, str):
        texts = [traces]
    else:
        texts = [str(t) for t in traces]
    return [split_entry(t) for t in texts]


def trace_selection(populations: Iterable[Named], traces: TraceSpec) -> dict[str, TraceSelection]:
    """population -> :class:`~neurosim.traces.TraceSelection` (neurons and stride) of a trace
    request; one selection per population (entries that disagree are a NetworkError)."""
    sizes = {p.name: p.size for p in populations}
    out: dict[str, TraceSelection] = {}
    for pop, v, neurons, stride in trace_entries(traces):
        where = f"traces.{pop}"
        if pop not in sizes:
            raise NetworkError(where, f"no population named {pop!r}")
        sel = TraceSelection(parse_neurons(neurons, sizes[pop], where), parse_stride(stride, where))
        if out.setdefault(pop, sel) != sel:
            raise NetworkError(where, f"one choice of neurons and stride per population, got "
                                      f"{out[pop].text()!r} and {sel.text()!r}")
    return out

"""Partition a network's neurons onto a chip's cores under the chip's per-core limits.

The network is taken in its chip form (:func:`chip_graph`): shaped projections as their exact
lowering (:meth:`Network.lowered`), multapses merged (:meth:`Network.without_multapses`), and
only nonzero weights as synapses. Per core c (the limits of :data:`mapping.chips.LIMITS`):

- ``neurons``: the neurons placed on c;
- ``fan_in_axons``: the distinct presynaptic sources (input channels and neurons) with a synapse
  onto a neuron of c;
- ``synaptic_memory`` (bits): one synapse list per presynaptic source and projection, each
  ``n_syn * (weight_bits + delay_bits + index_bits)`` bits rounded up to whole memory words,
  with ``delay_bits`` only for projections that use delays > 1 and ``index_bits =
  ceil(log2(neurons on c))`` (the chip file's ``memory_model``);
- ``fan_out_axons``: over the neurons of c, the number of distinct cores each one's synapses
  reach (inputs come from off the cores and use none).

The partitioner fills cores with consecutive neurons (populations in network order), adding a
neuron while every limit still holds: with limits that a sub-range of a feasible range also
meets (all four but fan-out do) this greedy fill gives the fewest cores of any partition into
consecutive ranges. Fan-out depends on where the targets land, so it is checked afterwards:
a core over it is split, and the fan-outs recomputed, until every core meets it. A neuron that
no core can hold alone is refused (:class:`~mapping.chips.ChipError`, naming the neuron, the
limit and its source). :func:`binding_limits` says which limit binds: the one whose removal
alone saves the most cores. (Removing a limit can also add cores: fuller cores may need more
splits for fan-out; the report then names no single binding limit.)
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from neurosim.network import Network

from .chips import LIMITS, Chip, ChipError


@dataclass(frozen=True)
class ChipGraph:
    """The synapses of a network in chip form, one entry per synapse (global indices).

    Sources are the input channels then the neurons (``source_offset``); neurons are the
    populations' in order (``neuron_offset``); ``lists`` number the (projection, presynaptic
    source) synapse lists, ``list_bits`` their bits per synapse before the index bits."""

    populations: tuple[str, ...]
    neuron_offset: dict[str, int]
    sizes: dict[str, int]
    source_offset: dict[str, int]
    n_neurons: int
    n_sources: int
    pre: np.ndarray      # global source id per synapse
    post: np.ndarray     # global neuron id per synapse
    lists: np.ndarray    # list id per synapse
    list_bits: np.ndarray

    def neuron_name(self, n: int) -> str:
        """'neuron k of population P' for global neuron n."""
        for p in self.populations:
            if self.neuron_offset[p] <= n < self.neuron_offset[p] + self.sizes[p]:
                return f"neuron {n - self.neuron_offset[p]} of population {p!r}"
        return f"neuron {n}"


def chip_network(network: Network) -> Network:
    """The network as a chip holds it: shaped projections lowered, multapses merged."""
    return network.lowered().without_multapses()


def chip_graph(network: Network, chip: Chip, weight_bits: Optional[Mapping[str, int]] = None) -> ChipGraph:
    """The synapses of :func:`chip_network` (`network`) with the bits each takes on `chip`
    (`weight_bits`: per projection name, default the chip's ``arithmetic.weight_bits``)."""
    net = chip_network(network)
    default_w = int(chip.value("arithmetic", "weight_bits") or 0)
    delay_bits = int(chip.value("memory_model", "delay_bits") or 0)
    src_off, k = {}, 0
    for node in (*net.inputs, *net.populations):
        src_off[node.name] = k
        k += node.size
    n_inputs = sum(s.size for s in net.inputs)
    neu_off = {p.name: src_off[p.name] - n_inputs for p in net.populations}
    pre, post, lists, bits = [], [], [], []
    n_lists = 0
    for proj in net.projections:
        csr, delays = proj.to_csr()
        nz = np.asarray(csr.values) != 0
        rows = csr.rows()[nz]
        pre.append(src_off[proj.pre] + rows)
        post.append(neu_off[proj.post] + np.asarray(csr.indices)[nz])
        lists.append(n_lists + rows)
        w = int((weight_bits or {}).get(proj.name, default_w))
        bits.append(np.full(proj.shape[0], w + (delay_bits if np.any(delays[nz] > 1) else 0), np.int64))
        n_lists += proj.shape[0]
    cat = lambda a: np.concatenate(a).astype(np.int64) if a else np.zeros(0, np.int64)  # noqa: E731
    return ChipGraph(tuple(p.name for p in net.populations), neu_off, {p.name: p.size for p in net.populations},
                     src_off, net.n_neurons, k, cat(pre), cat(post), cat(lists), cat(bits))


@dataclass(frozen=True)
class Partition:
    """Neurons on cores: ``core_of`` (n_neurons,), per-core usage of every limit (``usage``:
    limit -> (n_cores,)), the limits applied (None: not checked) and, for every core that was
    closed, the limits the next neuron would have broken (``closed_by``)."""

    core_of: np.ndarray
    usage: dict[str, np.ndarray]
    limits: dict[str, Optional[float]]
    closed_by: Counter

    @property
    def n_cores(self) -> int:
        return int(self.core_of.max()) + 1 if self.core_of.size else 0


def _index_bits(n: int) -> int:
    return int(np.ceil(np.log2(n))) if n > 1 else 0


def _words(n_syn: np.ndarray, bits: np.ndarray, word: int) -> np.ndarray:
    """Bits taken by lists of n_syn synapses of `bits` each, rounded up to whole words."""
    raw = n_syn * bits
    return -(-raw // word) * word if word > 0 else raw


def core_usage(graph: ChipGraph, core_of: np.ndarray, chip: Chip) -> dict[str, np.ndarray]:
    """Each core's use of every limit (:data:`mapping.chips.LIMITS`), counted from scratch."""
    n_cores = int(core_of.max()) + 1 if core_of.size else 0
    word = int(chip.value("memory_model", "word_bits") or 0)
    neurons = np.bincount(core_of, minlength=n_cores)
    syn_core = core_of[graph.post]
    fan_in = np.zeros(n_cores, np.int64)
    pairs = np.unique(graph.pre * n_cores + syn_core) if n_cores else np.zeros(0, np.int64)
    np.add.at(fan_in, pairs % max(n_cores, 1), 1)
    memory = np.zeros(n_cores, np.int64)
    if graph.lists.size:
        keys, counts = np.unique(graph.lists * n_cores + syn_core, return_counts=True)
        lst, core = keys // n_cores, keys % n_cores
        idx = np.array([_index_bits(int(k)) for k in neurons])[core]
        np.add.at(memory, core, _words(counts, graph.list_bits[lst] + idx, word))
    fan_out = np.zeros(n_cores, np.int64)
    n_in = graph.n_sources - graph.n_neurons
    from_neuron = graph.pre >= n_in
    if np.any(from_neuron):
        src = graph.pre[from_neuron] - n_in
        edges = np.unique(src * n_cores + syn_core[from_neuron])
        np.add.at(fan_out, core_of[edges // n_cores], 1)
    return {"neurons": neurons, "fan_in_axons": fan_in, "synaptic_memory": memory, "fan_out_axons": fan_out}


def partition(graph: ChipGraph, chip: Chip, rounds: int = 20) -> Partition:
    """Place the neurons of `graph` on cores of `chip` (see the module docstring). Fan-out:
    the fill is repeated with each neuron's fan-out under the previous placement as a weight
    summed against the limit (the largest seen so far, so the weights only grow), up to `rounds`
    times; a core still over the limit is then split."""
    limits = {name: chip.limit(name) for name in LIMITS}
    core_of, closed = _fill(graph, chip, limits)
    cap = limits["fan_out_axons"]
    if cap is not None and graph.n_neurons:
        weight = np.zeros(graph.n_neurons)
        for _ in range(rounds):
            fan = _fan_out(graph, core_of)
            if np.all(np.bincount(core_of, weights=fan) <= cap):
                break
            weight = np.minimum(np.maximum(weight, fan), cap)  # a neuron alone always fits the fill
            core_of, closed = _fill(graph, chip, limits, weight)
        core_of = _split_fan_out(graph, core_of, cap, closed, chip)
    return Partition(core_of, core_usage(graph, core_of, chip), limits, closed)


def _fan_out(graph: ChipGraph, core_of: np.ndarray) -> np.ndarray:
    """Per neuron, the number of distinct cores its synapses reach under `core_of`."""
    n_in = graph.n_sources - graph.n_neurons
    sel = graph.pre >= n_in
    n_cores = int(core_of.max()) + 1
    edges = np.unique((graph.pre[sel] - n_in) * n_cores + core_of[graph.post[sel]])
    return np.bincount(edges // n_cores, minlength=graph.n_neurons).astype(np.float64)


def _incoming(graph: ChipGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per neuron (CSR by `ptr`): its distinct sources, and its distinct lists with counts."""
    order = np.lexsort((graph.lists, graph.post))
    post, lists, pre = graph.post[order], graph.lists[order], graph.pre[order]
    keep = np.ones(post.size, bool)
    keep[1:] = (post[1:] != post[:-1]) | (lists[1:] != lists[:-1])
    starts = np.flatnonzero(keep)
    counts = np.diff(np.append(starts, post.size))
    l_post, l_id, l_pre = post[starts], lists[starts], pre[starts]
    ptr = np.searchsorted(l_post, np.arange(graph.n_neurons + 1))
    return ptr, l_id, counts, l_pre, l_post


def _fill(graph: ChipGraph, chip: Chip, limits: dict[str, Optional[float]],
          fan: Optional[np.ndarray] = None) -> tuple[np.ndarray, Counter]:
    """Greedy fill of consecutive neurons under neurons, fan-in axons and synaptic memory (and,
    given `fan`, a per-neuron fan-out estimate summed against the fan-out limit)."""
    word = int(chip.value("memory_model", "word_bits") or 0)
    cap = {k: (np.inf if v is None else v) for k, v in limits.items()}
    ptr, l_id, l_cnt, l_pre, _ = _incoming(graph)
    n_lists = int(graph.list_bits.size)
    on_core = np.zeros(n_lists, np.int64)       # synapses of each list on the open core
    src_seen = np.zeros(graph.n_sources, bool)
    touched_lists: list[np.ndarray] = []
    touched_src: list[np.ndarray] = []
    core_of = np.zeros(graph.n_neurons, np.int64)
    closed: Counter = Counter()
    core, n_on, fan_in, memory, fan_sum = 0, 0, 0, 0, 0.0
    fan_cap = cap["fan_out_axons"] if fan is not None else np.inf

    def reset() -> None:
        for a in touched_lists:
            on_core[a] = 0
        for a in touched_src:
            src_seen[a] = False
        touched_lists.clear()
        touched_src.clear()

    for n in range(graph.n_neurons):
        lo, hi = ptr[n], ptr[n + 1]
        ids, cnt, srcs = l_id[lo:hi], l_cnt[lo:hi], l_pre[lo:hi]
        while True:
            new_src = np.unique(srcs[~src_seen[srcs]])
            f_in = fan_in + new_src.size
            b_old, b_new = _index_bits(n_on), _index_bits(n_on + 1)
            if b_new != b_old and touched_lists:
                allt = np.unique(np.concatenate(touched_lists + [ids]))
                extra = np.zeros(allt.size, np.int64)
                extra[np.searchsorted(allt, ids)] = cnt
                mem = int(_words(on_core[allt] + extra, graph.list_bits[allt] + b_new, word).sum())
            else:
                old = on_core[ids]
                mem = memory + int((_words(old + cnt, graph.list_bits[ids] + b_new, word)
                                    - _words(old, graph.list_bits[ids] + b_new, word)).sum())
            f_out = fan_sum + (fan[n] if fan is not None else 0.0)
            broken = [k for k, v, c in (("neurons", n_on + 1, cap["neurons"]), ("fan_in_axons", f_in, cap["fan_in_axons"]),
                                        ("synaptic_memory", mem, cap["synaptic_memory"]),
                                        ("fan_out_axons", f_out, fan_cap)) if v > c]
            if not broken:
                break
            if n_on == 0:
                raise _refusal(graph, chip, n, broken[0], {"neurons": 1, "fan_in_axons": f_in,
                                                           "synaptic_memory": mem}[broken[0]])
            closed.update(broken)
            reset()
            core, n_on, fan_in, memory, fan_sum = core + 1, 0, 0, 0, 0.0
        on_core[ids] += cnt
        src_seen[srcs] = True
        touched_lists.append(ids)
        touched_src.append(srcs)
        core_of[n] = core
        n_on, fan_in, memory, fan_sum = n_on + 1, f_in, mem, f_out
    return core_of, closed


def _split_fan_out(graph: ChipGraph, core_of: np.ndarray, cap: Optional[float], closed: Counter,
                   chip: Chip) -> np.ndarray:
    """Split cores whose neurons' synapses reach more cores than `cap` allows, until none does."""
    if cap is None or not graph.n_neurons:
        return core_of
    while True:
        n_cores = int(core_of.max()) + 1
        fan = _fan_out(graph, core_of)
        per_core = np.bincount(core_of, weights=fan, minlength=n_cores)
        if np.all(per_core <= cap):
            return core_of
        worst = int(np.argmax(fan))
        if fan[worst] > cap:
            raise _refusal(graph, chip, worst, "fan_out_axons", int(fan[worst]))
        new = np.empty_like(core_of)
        next_core = 0
        for c in range(n_cores):
            members = np.flatnonzero(core_of == c)
            total = 0
            for m in members:
                if total + fan[m] > cap:
                    closed.update(["fan_out_axons"])
                    next_core, total = next_core + 1, 0
                new[m] = next_core
                total += fan[m]
            next_core += 1
        core_of = new


def _refusal(graph: ChipGraph, chip: Chip, n: int, limit: str, need: float) -> ChipError:
    fig = chip.figure("limits", limit)
    what = {"neurons": "neurons", "fan_in_axons": "presynaptic sources (input axons)",
            "synaptic_memory": "bits of synaptic memory", "fan_out_axons": "destination cores (fan-out axons)"}[limit]
    cited = fig.cite() if fig is not None else "a limit set by the caller"
    return ChipError(f"{chip.name}: {graph.neuron_name(n)} does not fit on any core: it needs {need:g} {what} "
                     f"and a core takes at most {chip.limit(limit):g} ({limit}: {cited})")


def binding_limits(graph: ChipGraph, chip: Chip, cores: Optional[int] = None) -> dict[str, int]:
    """Cores needed with each limit removed in turn (the others kept): limit -> cores. A limit
    binds when removing it saves cores; :func:`binding` names the one that saves the most."""
    cores = partition(graph, chip).n_cores if cores is None else cores
    out = {}
    for name in LIMITS:
        if chip.limit(name) is None:
            continue
        out[name] = partition(graph, chip.with_limits(**{name: None})).n_cores
    return out


def binding(relaxed: Mapping[str, int], cores: int) -> list[str]:
    """The limits whose removal alone saves the most cores (empty: none saves any)."""
    best = min(relaxed.values(), default=cores)
    return [] if best >= cores else sorted(k for k, v in relaxed.items() if v == best)

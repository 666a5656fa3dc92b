"""The network description: populations, input sources, projections and dt.

Records are immutable and validate themselves on construction; every error names the field.
Time unit: seconds (``dt``); delays and refractory periods are whole steps. Populations and
inputs may carry a shape (C, H, W) or (C, L), and projections may be shaped (convolution,
pooling, flatten: :mod:`neurosim.conv`, which states the contract) besides dense and CSR.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Union

import numpy as np

from .conv import ShapedProjection
from .csr import CSR, validate_csr
from .errors import NetworkError
from .fields import MAX_DELAY, NAME_PATTERN, check_delay, check_name, node_shape, readonly
from .models import LI, MODELS, Model, NeuronParams, per_neuron_vector, short_repr

REPR_LINES = 25  # repr(network): the summary, cut to one screen

__all__ = ["CSR", "MAX_DELAY", "NAME_PATTERN", "Population", "SpikeInput", "PoissonInput", "Projection",
           "AnyProjection", "Network"]

@dataclass(frozen=True, eq=False)
class Population:
    """`size` neurons of one model with per-neuron parameters and initial state (v0, i0, a0).

    shape: (size,) (default), (C, L) or (C, H, W) with prod(shape) = size, neurons flattened in
    C order (:mod:`neurosim.conv`); `size` may be given as the shape itself.
    """

    name: str
    size: Any
    model: Model
    v0: Any = 0.0
    i0: Any = 0.0
    a0: Any = 0.0
    shape: Any = None

    def __post_init__(self) -> None:
        where = f"populations.{self.name}"
        check_name(self.name, "populations.name")
        size, shape = node_shape(self.size, self.shape, where)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "shape", shape)
        if type(self.model) not in MODELS.values():
            raise NetworkError(f"{where}.model", f"expected LIF, ALIF, IF or LI, got {type(self.model).__name__}")
        for init in ("v0", "i0", "a0"):
            vals = per_neuron_vector(getattr(self, init), self.size, f"{where}.{init}")
            object.__setattr__(self, init, readonly(vals))
        params = self.model.lower(self.size, f"{where}.model")  # read-only: plans are cached per network
        object.__setattr__(self, "_params", type(params)(*(readonly(a) for a in params)))

    def __repr__(self) -> str:
        init = "".join(f", {k}={short_repr(getattr(self, k))}" for k in ("v0", "i0", "a0")
                       if np.any(getattr(self, k)))
        return f"Population({self.name!r}, size={self.size}, model={self.model!r}{init})"

    @property
    def params(self) -> NeuronParams:
        """Lowered per-neuron parameters (float64, shape (size,))."""
        return self._params  # type: ignore[attr-defined]

    @property
    def spiking(self) -> bool:
        return not isinstance(self.model, LI)


@dataclass(frozen=True, eq=False)
class SpikeInput:
    """A source of `size` channels whose spikes are given to :func:`neurosim.simulate`
    (flat, (T, [batch,] size)); `shape` as for :class:`Population`."""

    name: str
    size: Any
    shape: Any = None

    def __post_init__(self) -> None:
        check_name(self.name, "inputs.name")
        size, shape = node_shape(self.size, self.shape, f"inputs.{self.name}")
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "shape", shape)


@dataclass(frozen=True, eq=False)
class PoissonInput:
    """`size` independent Poisson sources; `rate` in Hz (scalar or per channel).

    A channel spikes in a step with probability ``rate * dt`` (must be <= 1).
    """

    name: str
    size: Any
    rate: Any = 10.0
    shape: Any = None

    def __repr__(self) -> str:
        return f"PoissonInput({self.name!r}, size={self.size}, rate={short_repr(self.rate)})"

    def __post_init__(self) -> None:
        check_name(self.name, "inputs.name")
        size, shape = node_shape(self.size, self.shape, f"inputs.{self.name}")
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "shape", shape)
        r = per_neuron_vector(self.rate, self.size, f"inputs.{self.name}.rate")
        if np.any(r < 0):
            raise NetworkError(f"inputs.{self.name}.rate", "expected rates >= 0 Hz")
        object.__setattr__(self, "rate", readonly(r))


Source = Union[SpikeInput, PoissonInput]


@dataclass(frozen=True, eq=False)
class Projection:
    """Synapses from node `pre` (population or input) to population `post`.

    `weights`: dense array (n_pre, n_post) or :class:`CSR` (or a scipy.sparse matrix);
    `delay`: whole steps >= 1, scalar or one per synapse (dense: (n_pre, n_post); CSR: (nnz,)).
    A spike sent at step t adds its weight to the target's input x at step t + delay.
    """

    name: str
    pre: str
    post: str
    weights: Any
    delay: Any = 1

    def __repr__(self) -> str:
        kind, values = (("csr", self.weights.values) if self.is_sparse else ("dense", self.weights))
        return (f"Projection({self.name!r}, {self.pre!r} -> {self.post!r}, {kind} {self.shape[0]}x{self.shape[1]}, "
                f"weights={short_repr(values)}, delay={short_repr(self.delay)})")

    def __post_init__(self) -> None:
        where = f"projections.{self.name}"
        check_name(self.name, "projections.name")
        check_name(self.pre, f"{where}.pre")
        check_name(self.post, f"{where}.post")
        w = self.weights
        if hasattr(w, "tocsr") and not isinstance(w, np.ndarray):  # scipy.sparse
            w = w.tocsr()
            w = CSR(np.asarray(w.indptr, np.int64), np.asarray(w.indices, np.int64),
                    np.asarray(w.data), (int(w.shape[0]), int(w.shape[1])))
        if isinstance(w, CSR):
            w = validate_csr(w, f"{where}.weights")
        else:
            try:
                w = np.asarray(w, dtype=np.float64)
            except (TypeError, ValueError):
                raise NetworkError(f"{where}.weights", "expected a 2-D array of numbers or a CSR") from None
            if w.ndim != 2:
                raise NetworkError(f"{where}.weights", f"expected a 2-D (n_pre, n_post) array, got shape {w.shape}")
            if not np.all(np.isfinite(w)):
                raise NetworkError(f"{where}.weights", "expected finite values, found NaN or inf")
            w = readonly(w)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "delay", self._validated_delay(where))

    def _validated_delay(self, where: str) -> Union[int, np.ndarray]:
        expected = (self.weights.nnz,) if isinstance(self.weights, CSR) else self.weights.shape
        return check_delay(self.delay, f"{where}.delay", expected)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weights.shape)  # type: ignore[return-value]

    @property
    def is_sparse(self) -> bool:
        return isinstance(self.weights, CSR)

    def to_csr(self) -> tuple[CSR, np.ndarray]:
        """(CSR of the synapses, per-synapse delays). Dense zeros are not synapses."""
        if isinstance(self.weights, CSR):
            csr = self.weights
            delays = np.broadcast_to(np.asarray(self.delay, np.int64), (csr.nnz,))
            return csr, np.array(delays)
        csr = CSR.from_dense(self.weights)
        if np.ndim(self.delay) == 0:
            delays = np.full(csr.nnz, int(self.delay), np.int64)
        else:
            rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
            delays = np.asarray(self.delay)[rows, csr.indices].astype(np.int64)
        return csr, delays

    @property
    def max_delay(self) -> int:
        return int(np.max(self.delay)) if np.size(self.delay) else 1

    def delay_classes(self) -> list[tuple[int, CSR]]:
        """(d, CSR of the synapses with delay d, duplicates summed) for each distinct delay d,
        ascending: the form every target that holds one weight per (pre, post, delay) takes.
        A projection without synapses gives one empty class at its smallest delay."""
        csr, delays = self.to_csr()
        if not delays.size:
            d0 = int(np.min(self.delay)) if np.size(self.delay) else 1
            return [(d0, CSR(np.zeros(csr.shape[0] + 1, np.int64), np.zeros(0, np.int64), np.zeros(0), csr.shape))]
        rows, out = csr.rows(), []
        for d in np.unique(delays):
            sel = delays == d
            part = CSR.from_coo(rows[sel], np.asarray(csr.indices)[sel], np.asarray(csr.values)[sel], csr.shape)
            out.append((int(d), part.sum_duplicates()))
        return out

    @property
    def has_multapses(self) -> bool:
        """Whether some (pre, post) pair holds more than one synapse (same or different delays)."""
        return self.is_sparse and self.weights.has_duplicates

    def without_multapses(self) -> tuple["Projection", ...]:
        """Projections with the same effect and at most one synapse per (pre, post): synapses on
        one (pre, post, delay) merged by addition; if a pair still has synapses of several
        delays, one projection per delay ``{name}_d{d}`` (names may need
        :meth:`Network.without_multapses` to stay unique). Itself when it has no multapse."""
        if not self.has_multapses:
            return (self,)
        merged = self.delay_classes()
        rows = np.concatenate([c.rows() for _, c in merged])
        cols = np.concatenate([np.asarray(c.indices) for _, c in merged])
        if np.unique(rows * self.shape[1] + cols).size == rows.size:  # pairs unique once merged
            vals = np.concatenate([np.asarray(c.values) for _, c in merged])
            dl = np.concatenate([np.full(c.nnz, d, np.int64) for d, c in merged])
            order = np.lexsort((cols, rows))
            one = CSR.from_coo(rows[order], cols[order], vals[order], self.shape)
            delay: Union[int, np.ndarray] = int(dl[0]) if np.all(dl == dl[0]) else dl[order]
            return (Projection(self.name, self.pre, self.post, one, delay),)
        return tuple(Projection(f"{self.name}_d{d}", self.pre, self.post, c, d) for d, c in merged)


AnyProjection = Union[Projection, ShapedProjection]


@dataclass(frozen=True, eq=False)
class Network:
    """A whole network: `dt` (seconds), populations, input sources and projections."""

    dt: float
    populations: tuple[Population, ...] = ()
    projections: tuple[AnyProjection, ...] = ()
    inputs: tuple[Source, ...] = ()
    name: str = "network"

    def __post_init__(self) -> None:
        if isinstance(self.dt, bool) or not isinstance(self.dt, (int, float, np.integer, np.floating)):
            raise NetworkError("dt", f"expected a time step in seconds (a number), got {self.dt!r}")
        dt = float(self.dt)
        if not isinstance(self.name, str) or len(self.name) > 256:
            raise NetworkError("name", f"expected a text label of at most 256 characters, got {self.name!r}")
        if not (np.isfinite(dt) and dt > 0):
            raise NetworkError("dt", f"expected a finite time step > 0 in seconds, got {self.dt!r}")
        object.__setattr__(self, "dt", dt)
        for attr, kinds, label in (("populations", (Population,), "Population"),
                                   ("projections", (Projection, ShapedProjection),
                                    "Projection or shaped projection (neurosim.conv)"),
                                   ("inputs", (SpikeInput, PoissonInput), "SpikeInput or PoissonInput")):
            items = tuple(getattr(self, attr))
            for k, item in enumerate(items):
                if not isinstance(item, kinds):
                    raise NetworkError(f"{attr}[{k}]", f"expected a {label}, got {type(item).__name__}")
            object.__setattr__(self, attr, items)
        if not self.populations:
            raise NetworkError("populations", "expected at least one population")
        nodes: dict[str, tuple[int, ...]] = {}
        for item in (*self.inputs, *self.populations):
            kind = "inputs" if isinstance(item, (SpikeInput, PoissonInput)) else "populations"
            if item.name in nodes:
                raise NetworkError(f"{kind}.{item.name}", "name already used by another population or input")
            nodes[item.name] = item.shape
        pops = {p.name for p in self.populations}
        seen: set[str] = set()
        bound = []
        for proj in self.projections:
            where = f"projections.{proj.name}"
            if proj.name in seen:
                raise NetworkError(where, "name already used by another projection")
            seen.add(proj.name)
            if proj.pre not in nodes:
                raise NetworkError(f"{where}.pre", f"no population or input named {proj.pre!r} (have {sorted(nodes)})")
            if proj.post not in pops:
                raise NetworkError(f"{where}.post", f"no population named {proj.post!r} (have {sorted(pops)})")
            if isinstance(proj, ShapedProjection):
                proj = proj.bind(nodes[proj.pre], nodes[proj.post])
            expected = (int(np.prod(nodes[proj.pre])), int(np.prod(nodes[proj.post])))
            if proj.shape != expected:
                raise NetworkError(f"{where}.weights", f"expected shape {expected} (pre.size, post.size), got {proj.shape}")
            if proj.pre in pops and not self.population(proj.pre).spiking:
                raise NetworkError(f"{where}.pre", f"{proj.pre!r} is an LI readout and never spikes")
            bound.append(proj)
        object.__setattr__(self, "projections", tuple(bound))
        for src in self.inputs:
            if isinstance(src, PoissonInput) and np.any(src.rate * dt > 1):
                raise NetworkError(f"inputs.{src.name}.rate", f"rate * dt must be <= 1 (rate <= {1 / dt:g} Hz)")

    # ----------------------------------------------------------------- lookups
    def population(self, name: str) -> Population:
        """The population called `name` (NetworkError if none)."""
        for p in self.populations:
            if p.name == name:
                return p
        raise NetworkError(f"populations.{name}", f"no population named {name!r} "
                                                  f"(have {[p.name for p in self.populations]})")

    def input(self, name: str) -> Source:
        """The input source called `name` (NetworkError if none)."""
        for s in self.inputs:
            if s.name == name:
                return s
        raise NetworkError(f"inputs.{name}", f"no input named {name!r} (have {[s.name for s in self.inputs]})")

    @property
    def n_neurons(self) -> int:
        return sum(p.size for p in self.populations)

    @property
    def n_synapses(self) -> int:
        """Synapses of dense and CSR projections plus the (pre, post) pairs shaped ones reach."""
        return sum(p.n_synapses if isinstance(p, ShapedProjection) else
                   p.weights.nnz if p.is_sparse else int(np.count_nonzero(p.weights)) for p in self.projections)

    @property
    def shaped(self) -> tuple[ShapedProjection, ...]:
        """The shaped projections (convolution, pooling, flatten), in order."""
        return tuple(j for j in self.projections if isinstance(j, ShapedProjection))

    def lowered(self) -> "Network":
        """The same network with every shaped projection replaced by its exact CSR lowering
        (``Projection(name, pre, post, csr, delays)``, :meth:`ShapedProjection.to_csr`): the
        dense-lowered reference, and the form for targets that take only dense and CSR
        projections. Itself when it has none."""
        if not self.shaped:
            return self
        projs = []
        for j in self.projections:
            if isinstance(j, ShapedProjection):
                csr, d = j.to_csr()
                j = Projection(j.name, j.pre, j.post, csr, int(d[0]) if d.size and np.all(d == d[0]) else d)
            projs.append(j)
        return self.replace(projections=tuple(projs))

    def refuse_shaped(self, target: str) -> None:
        """NetworkError naming the first shaped projection, for a `target` that takes dense and
        CSR projections only (the caller may lower first: :meth:`lowered`)."""
        for j in self.shaped:
            raise NetworkError(f"projections.{j.name}", f"{target} takes dense and CSR projections only, not "
                                                        f"{type(j).__name__} (lower it first: Network.lowered())")

    def without_multapses(self) -> "Network":
        """The same network with at most one synapse per (pre, post) in every projection (see
        :meth:`Projection.without_multapses`), for targets that hold one weight per pair (Lava
        connections, NetX layers, the fixed-point network); itself when it has no multapse.
        Split projections get unique names ``{name}_d{d}`` (``_1``, ... appended on a clash)."""
        if not any(isinstance(j, Projection) and j.has_multapses for j in self.projections):
            return self  # shaped projections reach each (pre, post) pair at most once
        taken = {j.name for j in self.projections if isinstance(j, ShapedProjection) or not j.has_multapses}
        projs = []
        for j in self.projections:
            for part in (j,) if isinstance(j, ShapedProjection) else j.without_multapses():
                name, k = part.name, 1
                while part.name != j.name and name in taken:
                    name, k = f"{part.name}_{k}", k + 1
                taken.add(name)
                projs.append(part if name == part.name else replace(part, name=name))
        return self.replace(projections=tuple(projs))

    def replace(self, **changes: Any) -> "Network":
        """A validated copy with some fields changed."""
        return replace(self, **changes)

    def __repr__(self) -> str:
        """The summary, at most REPR_LINES lines (a dataclass repr would print every weight)."""
        lines = self.summary().splitlines()
        if len(lines) > REPR_LINES:
            lines = lines[:REPR_LINES - 1] + [f"  ... {len(lines) - REPR_LINES + 1} more (net.summary() lists all)"]
        return "\n".join(["neurosim.Network: " + lines[0], *lines[1:]])

    def summary(self) -> str:
        """Human-readable multi-line description."""
        lines = [f"network {self.name!r}: dt = {self.dt:g} s, {self.n_neurons} neurons, "
                 f"{self.n_synapses} synapses"]
        for s in self.inputs:
            extra = f", rate {float(np.mean(s.rate)):g} Hz mean" if isinstance(s, PoissonInput) else ""
            shape = f" shape {s.shape}" if len(s.shape) > 1 else ""
            lines.append(f"  input      {s.name:<16} {type(s).__name__:<12} size {s.size}{shape}{extra}")
        for p in self.populations:
            shape = f" shape {p.shape}" if len(p.shape) > 1 else ""
            lines.append(f"  population {p.name:<16} {type(p.model).__name__:<12} size {p.size}{shape}")
        for j in self.projections:
            if isinstance(j, ShapedProjection):
                lines.append(f"  projection {j.name:<16} {j.pre} -> {j.post} ({j.describe()}, "
                             f"{j.n_weights} weights, {j.n_synapses} synapses)")
                continue
            kind = "csr" if j.is_sparse else "dense"
            nnz = j.weights.nnz if j.is_sparse else int(np.count_nonzero(j.weights))
            lines.append(f"  projection {j.name:<16} {j.pre} -> {j.post} ({kind}, {nnz} synapses, "
                         f"delay {j.delay if np.ndim(j.delay) == 0 else f'{int(np.min(j.delay))}..{j.max_delay}'})")
        return "\n".join(lines)

"""NeuroBench's complexity metrics for a network and a simulation of it.

The definitions are NeuroBench 2.3's (Yik et al., "The neurobench framework for benchmarking
neuromorphic computing algorithms and systems", Nature Communications 16, 1545 (2025);
``neurobench.metrics``), applied to the layer form of a neurosim network, in which every
projection (one per delay class d) is the weight matrix W_d of shape (n_pre, n_post) that a
``torch.nn.Linear`` without bias would hold:

- **synaptic operations** (per sample, i.e. per trial): at each step every projection computes
  ``binary(W_d)^T binary(x[t])`` where x[t] is its presynaptic activity;
  *effective* operations count the (nonzero input, nonzero weight) pairs,
  ``sum_t sum_j [x_j(t) != 0] * nnz(W_d[j, :])``; they are accumulates (ACs) when every input is
  in {-1, 0, 1} (spikes) and multiply-accumulates (MACs) otherwise (graded input).
  *Dense* operations count every pair, ``steps * n_pre * n_post`` per matrix. A spike is counted
  when it is sent (NeuroBench runs every layer at every step), also when the run ends before its
  delay delivers it. Biases are not synaptic operations.
- a **convolution** is NeuroBench's Conv layer: effective operations as above on its exact
  lowering, dense operations ``steps * (every (output, in-bound tap) pair)`` (the all-ones
  convolution NeuroBench runs), its kernel's entries as parameters and for connection sparsity.
  Pooling and flatten are not connection layers in NeuroBench: no operations, no parameters.
- **activation sparsity**: ``1 - (spikes) / (neurons * steps * trials)`` over the spiking
  populations (NeuroBench hooks the spiking-neuron layers; inputs and LI readouts emit no spikes
  and are not counted).
- **connection sparsity**: zero entries over all entries of the matrices W_d, with multapses
  (several synapses on one (pre, post, delay)) summed as the matrix holds them.
- **parameter count**: the entries of the matrices W_d (a dense projection all n_pre * n_post
  entries of each, a sparse one its synapses, multapses summed) plus the biases of populations
  that have one, as torch counts a layer's parameters.
- **footprint** (bytes): the parameters at the simulation's float width, plus the column
  indices and row pointers (int64) of the sparse matrices W_d. NeuroBench adds torch's buffers, which are a
  framework's own (snnTorch keeps beta, threshold and state there), so this figure is compared
  with hand counts, not with NeuroBench's.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Collection, Mapping, Union

import numpy as np

from .conv import Convolution, ShapedProjection
from .network import Network, Projection
from .result import SimulationResult

DTypeLike = Union[str, np.dtype, type]


@dataclass(frozen=True)
class Metrics:
    """NeuroBench metrics of one network (and, for the workload ones, one simulation of it).

    Synaptic operations are per trial (NeuroBench's per-sample average)."""

    effective_acs: float
    effective_macs: float
    dense_synops: float
    activation_sparsity: float
    connection_sparsity: float
    parameter_count: int
    footprint_bytes: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def table(self) -> str:
        """A small aligned table, one metric per line."""
        rows = [("synaptic operations, effective ACs / trial", f"{self.effective_acs:,.1f}"),
                ("synaptic operations, effective MACs / trial", f"{self.effective_macs:,.1f}"),
                ("synaptic operations, dense / trial", f"{self.dense_synops:,.1f}"),
                ("activation sparsity", f"{self.activation_sparsity:.4f}"),
                ("connection sparsity", f"{self.connection_sparsity:.4f}"),
                ("parameters", f"{self.parameter_count:,}"),
                ("footprint", f"{self.footprint_bytes:,} bytes")]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _layers(network: Network) -> list[Any]:
    """The projections NeuroBench counts: weight matrices and convolutions (pooling and flatten
    are not connection layers in NeuroBench: no synaptic operations, no parameters)."""
    return [p for p in network.projections if not isinstance(p, ShapedProjection) or isinstance(p, Convolution)]


def _nonzero_per_row(projection: Any) -> list[np.ndarray]:
    """For each delay class (a convolution: its lowering), the number of nonzero weights in
    every presynaptic row."""
    if isinstance(projection, Convolution):
        csr, _ = projection.to_csr()
        nz = np.asarray(csr.values) != 0
        return [np.bincount(csr.rows()[nz], minlength=csr.shape[0])]
    out = []
    for _, csr in projection.delay_classes():
        nz = np.asarray(csr.values) != 0
        out.append(np.bincount(csr.rows()[nz], minlength=csr.shape[0]))
    return out


def connection_counts(network: Network) -> tuple[int, int]:
    """(zero entries, all entries) over the layer matrices W_d of every projection (a
    convolution: over its kernel, as torch holds it)."""
    zeros = total = 0
    for p in _layers(network):
        if isinstance(p, Convolution):
            zeros, total = zeros + int(np.sum(np.asarray(p.kernel) == 0)), total + int(np.size(p.kernel))
            continue
        for rows in _nonzero_per_row(p):
            n_pre, n_post = p.shape
            total += n_pre * n_post
            zeros += n_pre * n_post - int(rows.sum())
    return zeros, total


def parameter_count(network: Network) -> int:
    """Entries of the layer matrices W_d (dense projection: all n_pre * n_post entries of each;
    sparse: its synapses, multapses summed) plus the biases of populations that have one."""
    n = 0
    for p in _layers(network):
        if isinstance(p, Convolution):
            n += int(np.size(p.kernel))
            continue
        for _, csr in p.delay_classes():
            n += csr.nnz if p.is_sparse else p.shape[0] * p.shape[1]
    return n + sum(pop.size for pop in network.populations if np.any(pop.params.bias != 0))


def footprint_bytes(network: Network, dtype: DTypeLike = "float32") -> int:
    """Bytes of the parameters at `dtype` plus, for each sparse W_d, its column indices and row
    pointers (int64)."""
    size = np.dtype(dtype).itemsize * parameter_count(network)
    for p in _layers(network):
        if isinstance(p, Projection) and p.is_sparse:
            size += sum(8 * (c.nnz + p.shape[0] + 1) for _, c in p.delay_classes())
    return int(size)


def event_counts(result: SimulationResult) -> dict[str, np.ndarray]:
    """Events per channel of every node of `result`, summed over steps and trials: name -> (size,)."""
    return {name: np.bincount(tr.index, minlength=tr.size) for name, tr in result.spikes.items()}


def synaptic_operations(network: Network, counts: Mapping[str, np.ndarray], steps: int, trials: int,
                        graded: Collection[str] = ()) -> tuple[float, float, float]:
    """(effective ACs, effective MACs, dense operations) per trial, NeuroBench's definitions.

    counts: node -> events (nonzero activity) per channel over `steps` steps of `trials` trials;
    graded: the nodes whose activity is not in {-1, 0, 1}: their operations are MACs."""
    acs = macs = dense = 0
    for p in _layers(network):
        for rows in _nonzero_per_row(p):
            ops = int(np.dot(rows, np.asarray(counts[p.pre], np.int64)))
            if p.pre in graded:
                macs += ops
            else:
                acs += ops
            # per trial already; a convolution: every (output, in-bound tap) pair, as NeuroBench's all-ones conv
            dense += steps * (p.n_synapses if isinstance(p, Convolution) else p.shape[0] * p.shape[1])
    return acs / trials, macs / trials, float(dense)


def activation_sparsity(network: Network, counts: Mapping[str, np.ndarray], steps: int, trials: int) -> float:
    """1 - spikes / (neurons * steps * trials) over the spiking populations (nan without any)."""
    pops = [p for p in network.populations if p.spiking]
    total = sum(p.size for p in pops) * steps * trials
    if total == 0:
        return float("nan")
    return 1.0 - sum(int(np.sum(counts[p.name])) for p in pops) / total


def metrics_from_counts(network: Network, counts: Mapping[str, np.ndarray], steps: int, trials: int,
                        dtype: DTypeLike = "float32", graded: Collection[str] = ()) -> Metrics:
    """All metrics from the events per channel of every node (as :func:`event_counts` gives; a
    torch evaluation loop sums ``z != 0`` over steps and trials the same way)."""
    for p in network.projections:
        if p.pre not in counts or np.shape(counts[p.pre]) != (p.shape[0],):
            raise ValueError(f"counts: expected {p.shape[0]} event counts of {p.pre!r}, the source of "
                             f"projection {p.name!r}; count the same network")
    acs, macs, dense = synaptic_operations(network, counts, steps, trials, graded)
    zeros, total = connection_counts(network)
    return Metrics(effective_acs=acs, effective_macs=macs, dense_synops=dense,
                   activation_sparsity=activation_sparsity(network, counts, steps, trials),
                   connection_sparsity=zeros / total if total else float("nan"),
                   parameter_count=parameter_count(network),
                   footprint_bytes=footprint_bytes(network, dtype))


def neurobench_metrics(network: Network, result: SimulationResult) -> Metrics:
    """All metrics of `network` and its simulation `result` (footprint at the result's dtype)."""
    for p in network.projections:
        if p.pre not in result.spikes:
            raise ValueError(f"result.spikes: no spikes of {p.pre!r}, the source of projection "
                             f"{p.name!r}; simulate the same network")
    return metrics_from_counts(network, event_counts(result), result.steps, result.batch, result.dtype)

"""The CSR rows of a plan cut into runs of one delay, the form the compiled event loop walks.

Row j (presynaptic index j) of the merged CSR is reordered stably by delay, then cut into
segments of one (delay, dense block) each. A spike of j at step t adds each segment to ring
slot ``(t + delay) mod R``, computed once per segment (``slot = t mod R + delay``, minus R
when past the end) instead of once per synapse; a segment whose targets are consecutive
(``indices = lo, lo+1, ...``, the rows of dense projections) is a contiguous add that the
compiler vectorises, with no index to look up.

Reordering a row by delay changes no sum: synapses of different delays reach different slots,
and synapses of one delay keep their order (the stable sort), so two synapses of one row that
reach the same target in the same slot (multapses) are added in the reference order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class RowSegments:
    """seg_ptr (n_total + 1,): row j holds segments seg_ptr[j]:seg_ptr[j+1]; segment s covers
    synapses seg_start[s]:seg_start[s+1] of (indices, weights), all of delay seg_delay[s] and
    dense block seg_block[s] (-1: none); seg_lo[s]: its first target when its targets are
    consecutive, else -1. indices (int32), weights (plan dtype): the synapses in segment order."""

    seg_ptr: np.ndarray
    seg_start: np.ndarray
    seg_delay: np.ndarray
    seg_block: np.ndarray
    seg_lo: np.ndarray
    indices: np.ndarray
    weights: np.ndarray

    @property
    def n_segments(self) -> int:
        return int(len(self.seg_delay))


def row_segments(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, delays: np.ndarray,
                 block: np.ndarray) -> RowSegments:
    """The :class:`RowSegments` of a CSR with per-synapse `delays` and dense-block ids `block`."""
    n_rows = len(indptr) - 1
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(indptr))
    order = np.lexsort((np.asarray(delays), rows))  # stable: ties keep the row order
    r, d, b, i = rows[order], np.asarray(delays)[order], np.asarray(block)[order], np.asarray(indices)[order]
    nnz = len(r)
    new = np.ones(nnz, bool)
    new[1:] = (r[1:] != r[:-1]) | (d[1:] != d[:-1]) | (b[1:] != b[:-1])
    start = np.flatnonzero(new)
    seg_id = np.cumsum(new) - 1
    broken = np.zeros(len(start), bool)
    inner = ~new[1:] & (i[1:].astype(np.int64) != i[:-1].astype(np.int64) + 1)
    broken[seg_id[1:][inner]] = True
    seg_row = r[start]
    return RowSegments(
        seg_ptr=np.searchsorted(seg_row, np.arange(n_rows + 1)).astype(np.int64),
        seg_start=np.append(start, nnz).astype(np.int64),
        seg_delay=d[start].astype(np.int64),
        seg_block=b[start].astype(np.int64),
        seg_lo=np.where(broken, -1, i[start]).astype(np.int64),
        indices=np.ascontiguousarray(i, np.int32),
        weights=np.ascontiguousarray(np.asarray(weights)[order]),
    )

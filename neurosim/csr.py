"""Compressed sparse rows, the sparse form of a projection's weights (and the lowering of
every shaped projection, :mod:`neurosim.conv`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import NetworkError
from .fields import readonly


@dataclass(frozen=True, eq=False)
class CSR:
    """Compressed sparse rows: row j (presynaptic) holds columns ``indices[indptr[j]:indptr[j+1]]``."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def from_dense(cls, w: np.ndarray) -> "CSR":
        """Nonzero entries of a dense (n_pre, n_post) matrix, rows in order."""
        w = np.asarray(w)
        rows, cols = np.nonzero(w)
        indptr = np.zeros(w.shape[0] + 1, dtype=np.int64)
        np.add.at(indptr, rows + 1, 1)
        return cls(np.cumsum(indptr), cols.astype(np.int64), w[rows, cols], (w.shape[0], w.shape[1]))

    @classmethod
    def from_coo(cls, pre: np.ndarray, post: np.ndarray, values: np.ndarray,
                 shape: tuple[int, int]) -> "CSR":
        """From (pre, post, value) triplets; stable order within a row."""
        pre = np.asarray(pre, dtype=np.int64)
        order = np.argsort(pre, kind="stable")
        counts = np.bincount(pre, minlength=shape[0]) if pre.size else np.zeros(shape[0], np.int64)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(indptr, np.asarray(post, dtype=np.int64)[order],
                   np.asarray(values)[order], (int(shape[0]), int(shape[1])))

    def to_dense(self) -> np.ndarray:
        """The (n_pre, n_post) matrix; duplicate entries (multapses) are summed."""
        out = np.zeros(self.shape, dtype=np.asarray(self.values).dtype)
        np.add.at(out, (self.rows(), np.asarray(self.indices)), self.values)
        return out

    def rows(self) -> np.ndarray:
        """Row (presynaptic index) of every entry, (nnz,) int64."""
        return np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))

    def sum_duplicates(self) -> "CSR":
        """The same matrix with duplicate (row, column) entries merged by addition, columns
        ascending within a row (a merged entry that sums to 0 stays an entry)."""
        rows, cols = self.rows(), np.asarray(self.indices, np.int64)
        key = rows * self.shape[1] + cols
        uniq, inverse = np.unique(key, return_inverse=True)
        values = np.zeros(uniq.size, dtype=np.asarray(self.values).dtype)
        np.add.at(values, inverse, self.values)
        counts = np.bincount(uniq // max(self.shape[1], 1), minlength=self.shape[0]) if uniq.size \
            else np.zeros(self.shape[0], np.int64)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return CSR(indptr, (uniq % max(self.shape[1], 1)).astype(np.int64), values, self.shape)

    @property
    def has_duplicates(self) -> bool:
        """Whether some (row, column) holds more than one entry (a multapse)."""
        key = self.rows() * self.shape[1] + np.asarray(self.indices, np.int64)
        return bool(np.unique(key).size < key.size)

    @property
    def nnz(self) -> int:
        return int(len(self.indices))


def validate_csr(c: CSR, where: str) -> CSR:
    try:
        indptr = np.asarray(c.indptr)
        indices = np.asarray(c.indices)
        values = np.asarray(c.values, dtype=np.float64)
        n_pre, n_post = (int(s) for s in c.shape)
    except (TypeError, ValueError):
        raise NetworkError(where, "expected CSR(indptr, indices, values, (n_pre, n_post))") from None
    if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        raise NetworkError(where, "expected integer indptr and indices")
    if indptr.shape != (n_pre + 1,) or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        raise NetworkError(f"{where}.indptr", f"expected {n_pre + 1} non-decreasing offsets starting at 0")
    if indices.shape != (int(indptr[-1]),) or values.shape != indices.shape:
        raise NetworkError(f"{where}.indices", f"expected {int(indptr[-1])} indices and values, "
                                               f"got {indices.shape} and {values.shape}")
    if indices.size and (indices.min() < 0 or indices.max() >= n_post):
        raise NetworkError(f"{where}.indices", f"expected column indices in [0, {n_post})")
    if not np.all(np.isfinite(values)):
        raise NetworkError(f"{where}.values", "expected finite values, found NaN or inf")
    return CSR(readonly(indptr.astype(np.int64)), readonly(indices.astype(np.int64)),
               readonly(values), (n_pre, n_post))

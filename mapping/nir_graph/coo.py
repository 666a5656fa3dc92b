"""Sparse weight matrices as triplets while the NIR importer composes a path's nodes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurosim.csr import CSR


@dataclass
class Coo:
    """A sparse (n_source, n_here) weight matrix as triplets, duplicates allowed until summed."""

    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def eye(cls, n: int) -> "Coo":
        idx = np.arange(n, dtype=np.int64)
        return cls(idx, idx.copy(), np.ones(n), (n, n))

    def summed(self) -> "Coo":
        """Duplicates added, entries sorted by (row, column)."""
        key = self.rows * self.shape[1] + self.cols
        uniq, inv = np.unique(key, return_inverse=True)
        vals = np.zeros(uniq.size)
        np.add.at(vals, inv, self.vals)
        return Coo(uniq // self.shape[1], uniq % self.shape[1], vals, self.shape)

    def times(self, m: CSR) -> "Coo":
        """This (n, k) matrix times the CSR (k, p) matrix `m`, summed: row j of m is added,
        scaled, to every entry of column j here (each product formed once)."""
        indptr, idx, vals = np.asarray(m.indptr), np.asarray(m.indices), np.asarray(m.values)
        counts = indptr[self.cols + 1] - indptr[self.cols]
        rep = np.repeat(np.arange(self.rows.size), counts)
        k = np.repeat(indptr[self.cols] - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
        return Coo(self.rows[rep], idx[k], self.vals[rep] * vals[k], (self.shape[0], int(m.shape[1]))).summed()

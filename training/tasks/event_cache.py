"""Binned event data cached once as HDF5 and read back in batches (`EventFrames`).

A cache file holds one split, sparse: sample n's nonzero bins are entries
``indptr[n] <= e < indptr[n+1]`` of ``step`` (int32), ``channel`` (int32) and ``count`` (uint16,
events of that channel in that step), plus ``labels`` (int64, one per sample). Its attributes:
``format`` (CACHE_FORMAT), ``version`` (CACHE_VERSION), ``key`` (the JSON of everything the
binning depends on: the dataset, split, dt, steps, transforms, sensor, source files' names, sizes
and times; a cache whose key differs is stale and rebuilt), ``steps``, ``n_in`` and event totals.
The file is written through :func:`neurosim.atomic.atomic_path` (a temporary file beside it,
renamed over it when complete), one sample at a time, so neither building nor reading needs
more memory than one sample or one batch.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional

import numpy as np

from neurosim.atomic import atomic_path
from neurosim.errors import FileFormatError, NetworkError
from neurosim.h5read import FileKind, H5Reader

CACHE_KIND = FileKind(expected="an event cache written by neurosim (delete it to rebuild)",
                      unopened="not an HDF5 file ({exc}); delete it to rebuild the cache",
                      intact="an intact event cache (delete it to rebuild)")
MAX_COUNT = 2**62  # bound of the whole-number attributes of a cache

CACHE_FORMAT = "neurosim-event-cache"
CACHE_VERSION = 1
COUNT_MAX = 65535  # counts are stored as uint16


class EventFrames:
    """Lazy (N, T, n_in) float32 event counts of one cached split: ``frames[idx]`` reads samples
    `idx` (an int array, any order, repeats allowed) from the cache file and returns them dense,
    (len(idx), T, n_in) (a view of `time_major`'s (T, len(idx), n_in) array). Only `indptr` and the
    labels are held in memory."""

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, path: str | os.PathLike, index: Optional[np.ndarray] = None) -> None:
        import h5py

        self.path = str(path)
        r = H5Reader(self.path)

        def head(f: "h5py.File") -> tuple[np.ndarray, np.ndarray, int, int]:
            return (np.asarray(f["indptr"][()], np.int64), np.asarray(f["labels"][()], np.int64),
                    r.attr_int(f, "steps", "", 1, MAX_COUNT), r.attr_int(f, "n_in", "", 1, MAX_COUNT))

        self._indptr, self._labels, steps, n_in = r.read(CACHE_KIND, head)
        n = len(self._labels)
        self.index = np.arange(n, dtype=np.int64) if index is None else np.asarray(index, np.int64)
        self.shape = (len(self.index), steps, n_in)
        self._file: Any = None

    @property
    def labels(self) -> np.ndarray:
        """(N,) int64 labels of the samples in this view."""
        return self._labels[self.index]

    def subset(self, index: np.ndarray) -> "EventFrames":
        """The view of samples `index` (positions in this view)."""
        return EventFrames(self.path, self.index[np.asarray(index, np.int64)])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx: Any) -> np.ndarray:
        return self.time_major(idx).transpose(1, 0, 2)  # a view: no second copy

    def time_major(self, idx: Any) -> np.ndarray:
        """Samples `idx` dense as (T, len(idx), n_in) float32, the layout of a training batch."""
        rows = np.arange(len(self))[idx] if isinstance(idx, slice) else np.asarray(idx, np.int64).reshape(-1)
        if rows.size and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"{self.path}: sample index out of range 0..{len(self) - 1}")
        out = np.zeros((self.shape[1], len(rows), self.shape[2]), np.float32)
        f = self._open()
        for k, n in enumerate(self.index[rows]):
            lo, hi = self._indptr[n], self._indptr[n + 1]
            if hi > lo:
                out[f["step"][lo:hi], k, f["channel"][lo:hi]] = f["count"][lo:hi]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """All samples dense (the whole split in memory: for small splits only)."""
        a = self[np.arange(len(self))]
        return a if dtype is None else a.astype(dtype)

    def _open(self) -> Any:
        import h5py

        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None}


def read_key(path: Path) -> Optional[str]:
    """The cache key stored in `path`, or None when it is missing, not a cache of this version, or unreadable."""
    import h5py

    if not path.is_file():
        return None
    r = H5Reader(path)

    def key(f: "h5py.File") -> Optional[str]:
        if r.attr_str(f, "format", "") != CACHE_FORMAT or r.attr_int(f, "version", "", 0, MAX_COUNT) != CACHE_VERSION:
            return None
        if not all(k in f for k in ("indptr", "step", "channel", "count", "labels")):
            return None
        return r.attr_str(f, "key", "")

    try:
        return r.read(CACHE_KIND, key)
    except FileFormatError:  # not a cache of this version, or unreadable: rebuilt
        return None


def cache_key(fields: Mapping[str, Any]) -> str:
    """The canonical JSON of `fields` (sorted keys): equal keys mean the same binned data."""
    return json.dumps(fields, sort_keys=True, default=str)


def write_cache(path: Path, key: str, steps: int, n_in: int,
                samples: Iterable[tuple[np.ndarray, int, int]]) -> dict[str, int]:
    """Write the cache of `samples` (each: frames (steps, n_in) of integer counts, label, events
    before binning) to `path` atomically; returns the totals stored in its attributes."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    totals = {"samples": 0, "events_in": 0, "events_binned": 0}
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(format=CACHE_FORMAT, version=CACHE_VERSION, key=key, steps=steps, n_in=n_in)
            cols = {name: f.create_dataset(name, (0,), dtype=dt, maxshape=(None,), chunks=(1 << 16,))
                    for name, dt in (("step", np.int32), ("channel", np.int32), ("count", np.uint16))}
            indptr, labels = [0], []
            for frames, label, n_events in samples:
                t, c = np.nonzero(frames)
                counts = frames[t, c]
                if counts.size and counts.max() > COUNT_MAX:
                    raise NetworkError("cache", f"{int(counts.max())} events in one bin; at most {COUNT_MAX}")
                _append(cols, t, c, counts)
                indptr.append(indptr[-1] + len(t))
                labels.append(int(label))
                totals["samples"] += 1
                totals["events_in"] += int(n_events)
                totals["events_binned"] += int(counts.sum())
            f.create_dataset("indptr", data=np.asarray(indptr, np.int64))
            f.create_dataset("labels", data=np.asarray(labels, np.int64))
            f.attrs.update(**totals)
    return totals


def _append(cols: Mapping[str, Any], t: np.ndarray, c: np.ndarray, counts: np.ndarray) -> None:
    n0 = cols["step"].shape[0]
    for name, values in (("step", t), ("channel", c), ("count", counts)):
        cols[name].resize((n0 + len(values),))
        cols[name][n0:] = values


def cache_totals(path: Path) -> dict[str, int]:
    """The event totals stored in cache `path` (samples, events_in, events_binned)."""
    import h5py

    r = H5Reader(path)
    return r.read(CACHE_KIND, lambda f: {k: r.attr_int(f, k, "", 0, MAX_COUNT)
                                         for k in ("samples", "events_in", "events_binned")})


def iter_progress(items: Iterable[Any], total: int, label: str, show: bool) -> Iterator[Any]:
    """`items`, with a tqdm bar on stderr when `show`."""
    if not show:
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=label, leave=False)

"""Any tonic dataset, or your own event arrays, as a Task: `events_task`.

    import tonic
    from training.tasks.own_events import events_task
    task = events_task(tonic.datasets.POKERDVS("data", train=True), tonic.datasets.POKERDVS("data", train=False),
                       sensor=tonic.datasets.POKERDVS.sensor_size, n_out=4, dt=1e-3, duration=0.02,
                       cache="data/poker-cache")
    # or your own: a list of (events, label) with events a structured array t (us), x, [y,] p
    task = events_task(train_pairs, test_pairs, sensor=(64, 1, 1), n_out=3, dt=1e-3, duration=0.5, cache="cache")

Binning and caching are those of the bundled event datasets (training.tasks.tonic_data: tonic's
Downsample, Denoise and ToFrame, event counts, one HDF5 cache per split in `cache`, streamed in
batches). The cache is rebuilt when the binning or the source changes: the source signature is
the sha256 of the events themselves for in-memory sequences (lists, tuples), or, for a dataset
object, its class, length and its ``data`` file list with sizes and times (tonic's datasets keep
their sample files there). Train with it from Python: ``training.trainer`` takes any Task through
``training.tasks.TASKS`` (register a builder there), or loop over ``training.runfiles.to_batch``.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from neurosim.errors import NetworkError

from .base import Split, Task, choice_option, float_option, int_option
from .event_cache import EventFrames, cache_key, cache_totals, read_key, write_cache
from .tonic_data import binner, samples, tonic_module


def source_signature(ds: Any) -> str:
    """sha256 of what `ds` holds: its events and labels (in-memory sequences) or its file list."""
    h = hashlib.sha256()
    if isinstance(ds, (list, tuple)):
        for events, label in ds:
            a = np.ascontiguousarray(events)
            h.update(repr((a.dtype.descr, a.shape, int(np.asarray(label)))).encode())
            h.update(a.tobytes())
        return h.hexdigest()
    h.update(f"{type(ds).__module__}.{type(ds).__qualname__}|{len(ds)}".encode())
    for f in getattr(ds, "data", []):
        if isinstance(f, (str, os.PathLike)) and os.path.exists(f):
            st = os.stat(f)
            h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def events_task(train: Any, test: Any, *, sensor: Sequence[int], n_out: int, dt: float, duration: float,
                cache: str | os.PathLike, downsample: float = 1.0, denoise: float = 0.0, align: str = "zero",
                name: str = "events") -> Task:
    """A classification Task of `train` and `test` (``ds[i] -> (events, label)``, labels 0..n_out-1),
    binned into ``round(duration / dt)`` steps of `dt` seconds and cached in folder `cache`."""
    dt = float_option(name, "dt", dt, 0.0)
    steps = int(round(float_option(name, "duration", duration, 0.0) / dt))
    if steps < 1:
        raise NetworkError(f"{name}.duration", f"expected at least one step of dt = {dt} s, got {duration} s")
    n_out = int_option(name, "n_out", n_out, 2)
    downsample = float_option(name, "downsample", downsample, 0.0, 1.0)
    denoise = float_option(name, "denoise", denoise, 0.0, lo_open=False)
    align = choice_option(name, "align", align, ("zero", "first"))
    if len(tuple(sensor)) != 3 or any(isinstance(v, bool) or int(v) != v or v < 1 for v in sensor):
        raise NetworkError(f"{name}.sensor", f"expected tonic's sensor size (W, H, P) of whole numbers >= 1, got {sensor!r}")
    sensor = tuple(int(v) for v in sensor)
    frames, n_in = binner(sensor, dt, steps, downsample=downsample, denoise=denoise, align=align)  # type: ignore[arg-type]
    splits, totals = [], {}
    for split, ds in (("train", train), ("test", test)):
        if len(ds) < 1:
            raise NetworkError(f"{name}.{split}", "expected at least one sample")
        key = cache_key(dict(dataset=name, split=split, dt=dt, steps=steps, downsample=downsample, denoise=denoise,
                             align=align, sensor=sensor, n_in=n_in, tonic=tonic_module().__version__,
                             source=source_signature(ds)))
        path = Path(cache).expanduser() / f"{name}-{split}.h5"
        if read_key(path) != key:
            write_cache(path, key, steps, n_in, samples(ds, frames, f"cache {name} {split}"))
        part = EventFrames(path)
        if part.labels.min() < 0 or part.labels.max() >= n_out:
            raise NetworkError(f"{name}.{split}", f"expected labels in 0..{n_out - 1}, got {part.labels.min()}.."
                                                  f"{part.labels.max()}")
        totals[split] = cache_totals(path)
        splits.append(Split(part, part.labels, np.ones(steps, bool)))  # type: ignore[arg-type]
    return Task(name, n_in, n_out, steps, dt, "classification", splits[0], splits[1],
                f"{name}: event counts in {steps} bins of {dt} s (cache {cache})", 1.0 / n_out,
                "chance level (your own data: no published figure)", {"events": (0, n_in)},
                dict(dt=dt, steps=steps, downsample=downsample, denoise=denoise, align=align, sensor=sensor,
                     events=totals))

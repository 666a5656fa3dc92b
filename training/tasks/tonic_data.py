"""Neuromorphic datasets from local files, read through tonic (pinned 1.7.0): `shd`, `ssc`,
`nmnist`, `dvs_gesture`.

Nothing is downloaded. Option ``root`` names the folder tonic's ``save_to`` would be; the files
must lie in tonic's layout under it (LAYOUTS), else NetworkError names the file expected, the
layout and the URL to download it from. tonic's own readers (``tonic.datasets.SHD`` ...) read
every sample; only their existence check and download are replaced (`_local`).

Binning, with tonic's transforms, per sample: ``Downsample(spatial_factor=downsample)`` (SHD's 700
channels or the camera's pixels; floor(x * f)), ``Denoise(filter_time=denoise)`` (camera sets),
then ``ToFrame(time_window=dt, start_time, end_time)`` into ``steps = round(duration / dt)``
bins ``[start + k dt, start + (k+1) dt)``, start 0 (``align="zero"``) or the sample's first event
(``align="first"``). Frames hold event **counts** per (step, polarity, y, x), flattened row-major
to channels; events at or after ``start + steps*dt`` fall outside the frames and, with denoised
ones, are counted in ``task.params['events_dropped']`` (never silently: the totals are stored).
The frames are cached once per split as HDF5 (training.tasks.event_cache) in
``<root>/<Dataset>/neurosim-cache/`` (or option ``cache``), rebuilt when any binning option or a
source file changes, and read back one batch at a time (`EventFrames`), so a split larger than
memory trains. Labels: the dataset's class index. The loss mask covers every step.
"""
from __future__ import annotations

import hashlib
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np

from neurosim.errors import NetworkError

from .base import Split, Task, choice_option, float_option, resolve_options, split_rngs
from .event_cache import EventFrames, cache_key, cache_totals, iter_progress, read_key, write_cache

TONIC_VERSION = "1.7.0"


@dataclass(frozen=True)
class Source:
    """One dataset: tonic's class, its sensor (W, H, P), classes, layout and defaults."""

    cls: str
    sensor: tuple[int, int, int]
    n_out: int
    files: dict[str, str]      # split -> path under root (a file, or a folder of sample files)
    pattern: str               # sample files inside a folder split ('' for one HDF5 file)
    layout: str
    url: str
    defaults: dict[str, Any]
    bar: float
    bar_source: str


_COMMON = dict(root=None, cache=None, downsample=1.0, denoise=0.0)
SOURCES: dict[str, Source] = {
    "shd": Source("SHD", (700, 1, 1), 20, {"train": "SHD/shd_train.h5", "test": "SHD/shd_test.h5"}, "",
                  "ROOT/SHD/shd_train.h5 and ROOT/SHD/shd_test.h5 (unzipped; HDF5 with spikes/times, spikes/units, "
                  "labels, extra/keys, extra/speaker)", "https://zenkelab.org/datasets/ (shd_train.h5.zip, shd_test.h5.zip)",
                  dict(_COMMON, dt=1e-2, duration=1.0, align="zero"), 0.832,
                  "Cramer et al. 2020, IEEE TNNLS 33(7), recurrent LIF SNN with BPTT: 83.2 +- 1.3 % test accuracy"),
    "ssc": Source("SSC", (700, 1, 1), 35, {"train": "SSC/ssc_train.h5", "test": "SSC/ssc_test.h5"}, "",
                  "ROOT/SSC/ssc_train.h5 and ROOT/SSC/ssc_test.h5 (unzipped; the SHD HDF5 layout)",
                  "https://zenkelab.org/datasets/ (ssc_train.h5.zip, ssc_test.h5.zip)",
                  dict(_COMMON, dt=1e-2, duration=1.0, align="zero"), 0.509,
                  "Cramer et al. 2020, IEEE TNNLS 33(7), recurrent LIF SNN with BPTT: 50.9 +- 1.1 % test accuracy"),
    "nmnist": Source("NMNIST", (34, 34, 2), 10, {"train": "NMNIST/Train", "test": "NMNIST/Test"}, "*/*.bin",
                     "ROOT/NMNIST/Train/<digit>/<n>.bin and ROOT/NMNIST/Test/<digit>/<n>.bin (unzipped train.zip, "
                     "test.zip; 40-bit events)", "https://www.garrickorchard.com/datasets/n-mnist "
                     "(Mendeley data 468j46mzdv)", dict(_COMMON, dt=5e-3, duration=0.3, align="zero",
                                                        first_saccade_only=False), 0.9866,
                     "Lee, Delbruck, Pfeiffer 2016, Front. Neurosci. 10:508, fully connected 2312-800-10 SNN: 98.66 %"),
    "dvs_gesture": Source("DVSGesture", (128, 128, 2), 11,
                          {"train": "DVSGesture/ibmGestureTrain", "test": "DVSGesture/ibmGestureTest"}, "user*_*/*.npy",
                          "ROOT/DVSGesture/ibmGestureTrain/userNN_<lighting>/<label>.npy and the same under "
                          "ibmGestureTest (tonic's preprocessed archives ibmGestureTrain.tar.gz, ibmGestureTest.tar.gz, "
                          "extracted; each .npy (n, 4): x, y, p, t in ms)",
                          "https://figshare.com/ndownloader/files/38022171 (train) and /38020584 (test)",
                          dict(_COMMON, dt=2.5e-2, duration=1.5, align="first", downsample=0.25), 0.9364,
                          "Shrestha & Orchard 2018, SLAYER, NeurIPS, convolutional SNN: 93.64 % (a dense recurrent "
                          "net is not expected to reach it)"),
}


def tonic_module() -> Any:
    """tonic, or NetworkError saying how to install the pinned version without its audio stack."""
    try:
        import tonic
    except ImportError as exc:
        raise NetworkError("tonic", f"the event datasets are read by tonic {TONIC_VERSION} ({exc}); install it with "
                                    f"pip install --no-deps tonic=={TONIC_VERSION} importRosbag==1.0.4 requests") from None
    return tonic


def _local(cls: type, source: Source) -> type:
    """tonic's dataset class with its existence check (we check the layout first) and its
    download (never: nothing is downloaded) replaced; its readers are untouched."""

    def download(self: Any) -> None:
        raise NetworkError(f"{source.cls}.root", f"expected {source.layout}; download it from {source.url}")

    return type(cls.__name__, (cls,), {"_check_exists": lambda self: True, "download": download})


def check_root(name: str, root: Any) -> Path:
    """`root` as a Path holding every file of dataset `name` in tonic's layout, else one
    NetworkError naming the first file missing, the layout and the URL."""
    src = SOURCES[name]
    if root is None or not isinstance(root, (str, os.PathLike)) or not str(root):
        raise NetworkError(f"{name}.root", f"expected the folder holding {src.layout} (--task-option root=PATH); "
                                           f"download from {src.url}")
    base = Path(root).expanduser()
    for split, rel in src.files.items():
        where = base / rel
        if not src.pattern:
            if not where.is_file():
                raise NetworkError(f"{name}.root", f"{where}: not found; expected {src.layout}; download from {src.url}")
            _check_hdf5(name, where)
        elif not where.is_dir() or next(where.glob(src.pattern), None) is None:
            raise NetworkError(f"{name}.root", f"{where / src.pattern}: no such file; expected {src.layout}; "
                                               f"download from {src.url}")
    return base


def _check_hdf5(name: str, path: Path) -> None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            for key in ("spikes/times", "spikes/units", "labels", "extra/keys", "extra/speaker"):
                if key not in f:
                    raise NetworkError(f"{name}.root", f"{path}: no dataset {key!r}; expected the SHD HDF5 layout "
                                                       "(spikes/times, spikes/units, labels, extra/keys, extra/speaker)")
            if len(f["spikes/times"]) != len(f["labels"]) or len(f["spikes/units"]) != len(f["labels"]):
                raise NetworkError(f"{name}.root", f"{path}: spikes/times, spikes/units and labels differ in length")
    except OSError as exc:
        raise NetworkError(f"{name}.root", f"{path}: not an HDF5 file ({exc})") from None


def _signature(base: Path, src: Source, split: str) -> str:
    """sha256 of the split's source files' relative names, sizes and modification times."""
    where = base / src.files[split]
    files = [where] if not src.pattern else sorted(where.glob(src.pattern))
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(base)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _dataset(name: str, base: Path, split: str, o: dict[str, Any]) -> Any:
    tonic = tonic_module()
    src = SOURCES[name]
    cls = _local(getattr(tonic.datasets, src.cls), src)
    if name == "ssc":
        return cls(str(base), split=split)
    if name == "nmnist":
        return cls(str(base), train=split == "train", first_saccade_only=bool(o["first_saccade_only"]))
    return cls(str(base), train=split == "train")


def binner(sensor: tuple[int, int, int], dt: float, steps: int, *, downsample: float = 1.0, denoise: float = 0.0,
           align: str = "zero") -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """(events -> frames (steps, n_in) of int64 counts, n_in) with tonic's transforms (module
    docstring): `events` a structured array with fields t (us), x, p and, for a camera, y, as tonic
    datasets return them; `sensor` tonic's (W, H, P); dt and denoise in seconds."""
    T = tonic_module().transforms
    w, h, p = sensor
    size = (int(math.ceil(w * downsample)), int(math.ceil(h * downsample)) if h > 1 else 1, p)
    pre: list[Any] = []
    if downsample != 1.0:
        pre.append(T.Downsample(spatial_factor=downsample))
    if denoise > 0:
        pre.append(T.Denoise(filter_time=denoise * 1e6))
    transform = T.Compose(pre) if pre else None
    window = dt * 1e6  # tonic's time unit: microseconds
    n_in = size[0] * size[1] * size[2]

    def frames(events: np.ndarray) -> np.ndarray:
        ev = transform(events) if transform is not None else events
        if len(ev) == 0:
            return np.zeros((steps, n_in), np.int64)
        start = float(ev["t"][0]) if align == "first" else 0.0
        to_frame = T.ToFrame(sensor_size=size, time_window=window, start_time=start,
                             end_time=start + (steps + 0.5) * window)  # exactly `steps` windows
        return np.asarray(to_frame(ev)).reshape(steps, n_in).astype(np.int64)

    return frames, n_in


def samples(ds: Any, frames: Callable[[np.ndarray], np.ndarray], label: str) -> Iterator[tuple[np.ndarray, int, int]]:
    """(frames, label, events read) of every sample of `ds` (``ds[i] -> (events, label)``), one at a time."""
    for events, target in iter_progress((ds[i] for i in range(len(ds))), len(ds), label, sys.stderr.isatty()):
        yield frames(events), int(np.asarray(target)), len(events)


def cached_split(name: str, base: Path, split: str, o: dict[str, Any], steps: int) -> EventFrames:
    """The binned split, from its cache when the cache's key matches, else binned and cached now."""
    tonic = tonic_module()
    src = SOURCES[name]
    frames, n_in = binner(src.sensor, o["dt"], steps, downsample=o["downsample"], denoise=o["denoise"],
                          align=o["align"])
    key = cache_key(dict(dataset=name, split=split, dt=o["dt"], steps=steps, downsample=o["downsample"],
                         denoise=o["denoise"], align=o["align"], first_saccade_only=o.get("first_saccade_only"),
                         sensor=src.sensor, n_in=n_in, tonic=tonic.__version__,
                         source=_signature(base, src, split)))
    folder = Path(o["cache"]).expanduser() if o["cache"] else base / src.cls / "neurosim-cache"
    path = folder / f"{split}.h5"
    if read_key(path) != key:
        try:
            write_cache(path, key, steps, n_in, samples(_dataset(name, base, split, o), frames, f"cache {name} {split}"))
        except PermissionError as exc:
            raise NetworkError(f"{name}.cache", f"{folder}: not writable ({exc.strerror}); name a writable "
                                                "folder with --task-option cache=PATH") from None
    return EventFrames(path)


def _subset(name: str, key: str, frames: EventFrames, n: Optional[int], rng: np.random.Generator) -> EventFrames:
    if n is None:
        return frames
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(frames):
        raise NetworkError(f"{name}.{key}", f"expected a whole number in [1, {len(frames)}] (samples on disk), got {n!r}")
    return frames.subset(np.sort(rng.permutation(len(frames))[:n]))


def event_task(name: str, seed: int, n_train: Optional[int], n_test: Optional[int], **options: Any) -> Task:
    """Task `name` (a key of SOURCES) read from ``options['root']``; module docstring."""
    src = SOURCES[name]
    o = resolve_options(name, src.defaults, options)
    base = check_root(name, o["root"])
    o["dt"] = float_option(name, "dt", o["dt"], 0.0)
    duration = float_option(name, "duration", o["duration"], 0.0)
    steps = int(round(duration / o["dt"]))
    if steps < 1:
        raise NetworkError(f"{name}.duration", f"expected at least one step of dt = {o['dt']} s, got {duration} s")
    o["downsample"] = float_option(name, "downsample", o["downsample"], 0.0, 1.0)
    o["denoise"] = float_option(name, "denoise", o["denoise"], 0.0, lo_open=False)
    if o["denoise"] and src.sensor[1] == 1:
        raise NetworkError(f"{name}.denoise", "tonic's Denoise needs x and y coordinates; this dataset has channels only")
    o["align"] = choice_option(name, "align", o["align"], ("zero", "first"))
    if o["cache"] is not None and not isinstance(o["cache"], (str, os.PathLike)):
        raise NetworkError(f"{name}.cache", f"expected a folder path, got {o['cache']!r}")
    r_train, r_test = split_rngs(name, seed)
    mask = np.ones(steps, bool)
    splits, totals = [], {}
    for split, n, key, rng in (("train", n_train, "n_train", r_train), ("test", n_test, "n_test", r_test)):
        frames = cached_split(name, base, split, o, steps)
        totals[split] = cache_totals(Path(frames.path))
        frames = _subset(name, key, frames, n, rng)
        splits.append(Split(frames, frames.labels, mask))  # type: ignore[arg-type]
    dropped = {s: t["events_in"] - t["events_binned"] for s, t in totals.items()}
    return Task(name, int(splits[0].inputs.shape[2]), src.n_out, steps, o["dt"], "classification", splits[0], splits[1],
                f"{src.cls} from {base} through tonic {TONIC_VERSION}: event counts in {steps} bins of {o['dt']} s; "
                f"events not binned (denoised or past duration): train {dropped['train']}, test {dropped['test']}",
                src.bar, src.bar_source, {"events": (0, int(splits[0].inputs.shape[2]))},
                dict(o, root=str(base), steps=steps, events_dropped=dropped, events=totals))


def shd(seed: int, n_train: Optional[int], n_test: Optional[int], **options: Any) -> Task:
    """Spiking Heidelberg Digits (Cramer et al. 2020), 700 channels (downsample=0.2: 140), 20 classes."""
    return event_task("shd", seed, n_train, n_test, **options)


def ssc(seed: int, n_train: Optional[int], n_test: Optional[int], **options: Any) -> Task:
    """Spiking Speech Commands (Cramer et al. 2020), SHD's format, 35 classes."""
    return event_task("ssc", seed, n_train, n_test, **options)


def nmnist(seed: int, n_train: Optional[int], n_test: Optional[int], **options: Any) -> Task:
    """N-MNIST (Orchard et al. 2015), 34x34 pixels x 2 polarities, 10 classes."""
    return event_task("nmnist", seed, n_train, n_test, **options)


def dvs_gesture(seed: int, n_train: Optional[int], n_test: Optional[int], **options: Any) -> Task:
    """IBM DVS Gesture (Amir et al. 2017), 128x128 x 2 (downsample 0.25 by default: 32x32x2), 11 classes."""
    return event_task("dvs_gesture", seed, n_train, n_test, **options)

"""Small dataset roots written in each dataset's genuine on-disk format (as tonic 1.7.0 reads them),
with class-dependent events so that a network can learn something from them.

- SHD/SSC: HDF5 ``spikes/times`` (vlen float, seconds), ``spikes/units`` (vlen uint16), ``labels``
  (uint16), ``extra/keys``, ``extra/speaker`` (the Zenke lab files' layout).
- N-MNIST: ``Train|Test/<digit>/<n>.bin``, 5 bytes per event: x, y, then polarity in bit 7 and a
  23-bit microsecond timestamp in the remaining 3 bytes (Orchard's format; tonic.io.read_mnist_file).
- DVS Gesture: tonic's preprocessed ``ibmGestureTrain|Test/userNN_<lighting>/<label>.npy``, arrays
  (n, 4) of x, y, p, t with t in milliseconds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_shd(root: Path, n_train: int = 24, n_test: int = 12, classes: int = 20, dataset: str = "SHD",
              duration: float = 0.5, seed: int = 0) -> dict[str, list[tuple[int, dict[str, np.ndarray]]]]:
    """ROOT/SHD/shd_{train,test}.h5; class k fires channels around 35k. Returns split -> [(label,
    {"t": seconds as stored, "x": unit})] in file order."""
    import h5py

    r = np.random.default_rng(seed)
    folder = root / dataset
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[str, list] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % classes
        times, units = [], []
        for k in labels:
            m = int(r.integers(200, 400))
            t = np.sort(r.uniform(0, duration, m))
            u = np.clip(35 * k + r.integers(-10, 10, m), 0, 699)
            times.append(t.astype(np.float16 if dataset == "SHD" else np.float32))
            units.append(u.astype(np.uint16))
        with h5py.File(folder / f"{dataset.lower()}_{split}.h5", "w") as f:
            f.create_dataset("spikes/times", data=np.array(times, dtype=object), dtype=h5py.vlen_dtype(times[0].dtype))
            f.create_dataset("spikes/units", data=np.array(units, dtype=object), dtype=h5py.vlen_dtype(np.uint16))
            f.create_dataset("labels", data=labels.astype(np.uint16))
            f.create_dataset("extra/keys", data=np.array([f"word-{k}".encode() for k in range(classes)]))
            f.create_dataset("extra/speaker", data=r.integers(0, 12, n).astype(np.uint16))
        truth[split] = [(int(k), {"t": t, "x": u}) for k, t, u in zip(labels, times, units)]
    return truth


def nmnist_bytes(x: np.ndarray, y: np.ndarray, p: np.ndarray, t_us: np.ndarray) -> bytes:
    """Events in N-MNIST's 40-bit format (t < 2**23 us)."""
    raw = np.zeros((len(x), 5), np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    raw[:, 2] = (p.astype(np.uint32) << 7) | ((t_us >> 16) & 0x7F)
    raw[:, 3], raw[:, 4] = (t_us >> 8) & 0xFF, t_us & 0xFF
    return raw.tobytes()


def write_nmnist(root: Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> dict[str, list]:
    """ROOT/NMNIST/{Train,Test}/<digit>/<n>.bin; digit k lights a 6x6 patch at a k-dependent place.
    Returns split -> [(label, {"x", "y", "p", "t" (us)})]."""
    r = np.random.default_rng(seed)
    truth: dict[str, list] = {"train": [], "test": []}
    for folder, n in (("Train", n_train), ("Test", n_test)):
        for i in range(n):
            k = i % 10
            m = int(r.integers(150, 300))
            x0, y0 = 2 + 3 * (k % 5) * 2 % 26, 4 + 14 * (k // 5)
            x = x0 + r.integers(0, 6, m)
            y = y0 + r.integers(0, 6, m)
            t = np.sort(r.integers(0, 300_000, m)).astype(np.uint32)
            d = root / "NMNIST" / folder / str(k)
            d.mkdir(parents=True, exist_ok=True)
            p = r.integers(0, 2, m)
            (d / f"{i:05d}.bin").write_bytes(nmnist_bytes(x, y, p, t))
            truth[folder.lower()].append((k, {"x": x, "y": y, "p": p, "t": t.astype(np.int64)}))
    return truth


def write_dvs_gesture(root: Path, n_train: int = 22, n_test: int = 11, seed: int = 0,
                      t0_ms: int = 5000) -> dict[str, list]:
    """ROOT/DVSGesture/ibmGesture{Train,Test}/userNN_<lighting>/<label>.npy; gesture k: a blob at k.
    Returns split -> [(label, {"x", "y", "p", "t" (us)})]."""
    r = np.random.default_rng(seed)
    truth: dict[str, list] = {"train": [], "test": []}
    for folder, n in (("ibmGestureTrain", n_train), ("ibmGestureTest", n_test)):
        for i in range(n):
            k, user = i % 11, 1 + i // 11
            m = int(r.integers(300, 600))
            cx, cy = 10 + 10 * k, 64
            ev = np.zeros((m, 4), np.float64)
            ev[:, 0] = np.clip(cx + r.integers(-6, 6, m), 0, 127)
            ev[:, 1] = np.clip(cy + r.integers(-6, 6, m), 0, 127)
            ev[:, 2] = r.integers(0, 2, m)
            ev[:, 3] = np.sort(t0_ms + r.integers(0, 1500, m))  # ms, recordings start late
            d = root / "DVSGesture" / folder / f"user{user:02d}_fluorescent"
            d.mkdir(parents=True, exist_ok=True)
            np.save(d / f"{k}.npy", ev)
            truth["train" if folder.endswith("Train") else "test"].append(
                (k, {"x": ev[:, 0].astype(np.int64), "y": ev[:, 1].astype(np.int64), "p": ev[:, 2].astype(np.int64),
                     "t": ev[:, 3].astype(np.int64) * 1000}))
    return truth

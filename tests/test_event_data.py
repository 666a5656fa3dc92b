"""Event datasets from local files through tonic (training.tasks.tonic_data): small roots in each
dataset's genuine on-disk format (tests/event_files.py), read through tonic's own readers, binned
to counts, cached, streamed, trained from the CLI; wrong roots give one line and exit 2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("tonic")
torch = pytest.importorskip("torch")

from event_files import write_dvs_gesture, write_nmnist, write_shd  # noqa: E402

from neurosim.cli import main  # noqa: E402
from neurosim.errors import NetworkError  # noqa: E402
from training.runfiles import to_batch  # noqa: E402
from training.tasks import make_task  # noqa: E402
from training.tasks.event_cache import CACHE_VERSION  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WRITERS = {"shd": write_shd, "nmnist": write_nmnist, "dvs_gesture": write_dvs_gesture}


def _expected(name: str, ev: dict[str, np.ndarray], dt: float, steps: int, f: float) -> np.ndarray:
    """Counts (steps, n_in) binned here without tonic: step = (t - start) // (dt in us), channel
    row-major over (p, y, x) of the downsampled sensor (floor(x * f)); later events dropped."""
    w = int(round(dt * 1e6))
    if name == "shd":  # tonic: float seconds * 1e6 into an int field (truncation)
        t = np.trunc(ev["t"].astype(np.float64) * 1e6).astype(np.int64)
        ch, n_in, start = np.floor(ev["x"] * f).astype(np.int64), int(np.ceil(700 * f)), 0
    else:
        side = 34 if name == "nmnist" else 128
        s = int(np.ceil(side * f))
        t = ev["t"]
        x, y = np.floor(ev["x"] * f).astype(np.int64), np.floor(ev["y"] * f).astype(np.int64)
        ch, n_in = ev["p"] * s * s + y * s + x, 2 * s * s
        start = int(t[0]) if name == "dvs_gesture" else 0
    step = (t - start) // w
    keep = step < steps
    out = np.zeros((steps, n_in), np.int64)
    np.add.at(out, (step[keep], ch[keep]), 1)
    return out


def _per_label(frames: np.ndarray, labels: np.ndarray, n_out: int) -> np.ndarray:
    out = np.zeros((n_out, *frames.shape[1:]))
    np.add.at(out, labels, frames)
    return out


@pytest.mark.parametrize("name,opts", [("shd", {}), ("shd", {"downsample": 0.2, "dt": 4e-3}),
                                       ("nmnist", {}), ("dvs_gesture", {})])
def test_frames_equal_an_independent_binning_of_the_written_events(tmp_path, name, opts):
    truth = WRITERS[name](tmp_path)
    task = make_task(name, root=str(tmp_path), **opts)
    f = task.params["downsample"]
    for split, part in (("train", task.train), ("test", task.test)):
        want = np.stack([_expected(name, ev, task.dt, task.steps, f) for _, ev in truth[split]])
        labels = np.array([k for k, _ in truth[split]])
        got = np.asarray(part.inputs)
        assert got.shape == want.shape and sorted(part.targets.tolist()) == sorted(labels.tolist())
        assert got.max() > 1  # counts, not 0/1
        np.testing.assert_array_equal(_per_label(got, part.targets, task.n_out), _per_label(want, labels, task.n_out))
        assert task.params["events"][split]["events_binned"] == int(want.sum())


def test_events_past_duration_are_counted_not_silently_dropped(tmp_path):
    truth = write_shd(tmp_path)
    task = make_task("shd", root=str(tmp_path), duration=0.25)
    past = sum(int(np.sum(np.trunc(ev["t"].astype(np.float64) * 1e6) >= 250_000)) for _, ev in truth["train"])
    assert past > 0 and task.params["events_dropped"]["train"] == past
    assert f"train {past}" in task.description


def test_cache_is_versioned_reused_and_rebuilt_when_the_binning_or_the_data_change(tmp_path):
    write_shd(tmp_path)
    make_task("shd", root=str(tmp_path))
    cache = tmp_path / "SHD" / "neurosim-cache" / "train.h5"
    with h5py.File(cache, "r") as f:
        assert f.attrs["version"] == CACHE_VERSION and json.loads(f.attrs["key"])["dt"] == 1e-2
    stamp = cache.stat().st_mtime_ns
    make_task("shd", root=str(tmp_path))
    assert cache.stat().st_mtime_ns == stamp  # reused
    task = make_task("shd", root=str(tmp_path), dt=2e-2)
    with h5py.File(cache, "r") as f:
        assert json.loads(f.attrs["key"])["dt"] == 2e-2 and f.attrs["steps"] == task.steps == 50
    src = tmp_path / "SHD" / "shd_train.h5"
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    before = cache.stat().st_mtime_ns
    make_task("shd", root=str(tmp_path), dt=2e-2)
    assert cache.stat().st_mtime_ns != before  # the source changed: rebuilt
    assert not [p for p in cache.parent.iterdir() if p.name.endswith(".tmp")]


def test_batches_stream_only_the_samples_asked_with_their_counts(tmp_path):
    write_nmnist(tmp_path)
    task = make_task("nmnist", root=str(tmp_path), n_train=12, seed=3)
    idx = np.array([5, 0, 5, 11])
    b = to_batch(task.train, idx, torch.float64)
    dense = np.asarray(task.train.inputs)
    np.testing.assert_array_equal(b.inputs.numpy(), dense[idx].transpose(1, 0, 2))
    np.testing.assert_array_equal(b.targets.numpy(), task.train.targets[idx])
    assert len(task.train) == 12 and b.inputs.max() > 1


@pytest.mark.parametrize("breakage,match", [
    ("nothing", r"shd\.root: .*SHD/shd_train\.h5: not found; expected ROOT/SHD/shd_train\.h5 .*zenkelab\.org"),
    ("no test", r"shd\.root: .*SHD/shd_test\.h5: not found.*download from https://zenkelab\.org"),
    ("no labels", r"shd\.root: .*shd_train\.h5: no dataset 'labels'"),
    ("not hdf5", r"shd\.root: .*shd_train\.h5: not an HDF5 file"),
])
def test_a_wrong_root_is_one_line_naming_the_file_layout_and_url(tmp_path, breakage, match):
    if breakage != "nothing":
        write_shd(tmp_path)
        if breakage == "no test":
            (tmp_path / "SHD" / "shd_test.h5").unlink()
        elif breakage == "no labels":
            with h5py.File(tmp_path / "SHD" / "shd_train.h5", "a") as f:
                del f["labels"]
        else:
            (tmp_path / "SHD" / "shd_train.h5").write_bytes(b"not hdf5")
    with pytest.raises(NetworkError, match=match) as err:
        make_task("shd", root=str(tmp_path))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name,layout", [("nmnist", r"NMNIST/Train/\*/\*\.bin: no such file"),
                                         ("dvs_gesture", r"ibmGestureTrain/user\*_\*/\*\.npy: no such file")])
def test_cli_wrong_root_exits_2_with_one_line(tmp_path, capsys, name, layout):
    assert main(["train", "--task", name, "--task-option", f"root={tmp_path}", "--epochs", "1",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and len(__import__("re").findall(layout, err)) == 1, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["shd", "nmnist", "dvs_gesture"])
def test_one_epoch_from_the_cli(tmp_path, capsys, name):
    data = tmp_path / "data"
    WRITERS[name](data)
    out = tmp_path / "run"
    assert main(["train", "--task", name, "--task-option", f"root={data}", "--task-option", "duration=0.3",
                 "--epochs", "1", "--hidden", "8", "--batch-size", "8", "--no-progress", "--out", str(out)]) == 0
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 2 and (out / "model.h5").is_file()
    loss = float(rows[1].split(",")[1])
    assert np.isfinite(loss) and loss > 0


@pytest.mark.slow
def test_streamed_epoch_peaks_below_two_batches_plus_the_model():
    """bench/event_stream_memory.py: VmHWM - VmRSS(baseline) of a child training one epoch on a
    cached SHD-format split 7x larger (dense) than one batch's input."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "event_stream_memory.py"), "--samples", "112",
                          "--batch", "16", "--json"], capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["dense_train_bytes"] >= 7 * r["batch_input_bytes"]
    assert r["increase"] < r["bound"], r


def test_own_event_arrays_bin_cache_and_train_through_the_registry(tmp_path, monkeypatch):
    from training.config import TrainConfig
    from training.tasks import TASKS
    from training.tasks.own_events import events_task
    from training.trainer import train

    r = np.random.default_rng(5)
    dtype = np.dtype([("t", np.int64), ("x", np.int64), ("p", np.int64)])

    def pairs(n):
        out = []
        for i in range(n):
            m = int(r.integers(20, 60))
            ev = np.zeros(m, dtype)
            ev["t"], ev["x"] = np.sort(r.integers(0, 50_000, m)), 4 * (i % 3) + r.integers(0, 4, m)
            out.append((ev, i % 3))
        return out

    train_pairs, test_pairs = pairs(12), pairs(6)

    def build(seed, n_train, n_test, **o):
        return events_task(train_pairs, test_pairs, sensor=(12, 1, 1), n_out=3, dt=5e-3, duration=0.05,
                           cache=tmp_path / "cache", name="mine")

    task = build(0, None, None)
    want = np.zeros((12, 10, 12), np.int64)
    for k, (ev, _) in enumerate(train_pairs):
        np.add.at(want[k], (ev["t"] // 5000, ev["x"]), 1)
    np.testing.assert_array_equal(np.asarray(task.train.inputs), want)
    np.testing.assert_array_equal(task.train.targets, [k for _, k in train_pairs])
    monkeypatch.setitem(TASKS, "mine", build)
    out = train(TrainConfig(task="mine", epochs=1, hidden=8, batch_size=4), tmp_path / "run", progress=False,
                device="cpu")
    assert len(out["history"]) == 1 and np.isfinite(out["history"][0]["train_loss"])


def test_no_network_access_whatever_the_root(tmp_path, monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for name, write in WRITERS.items():
        with pytest.raises(NetworkError, match=rf"{name}\.root"):
            make_task(name, root=str(tmp_path / "empty"))
        write(tmp_path / name)
        assert len(make_task(name, root=str(tmp_path / name), n_train=5, n_test=5).train) == 5

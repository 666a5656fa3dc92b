"""Interrupted and failing runs lose nothing already saved: Ctrl-C during training, a full disk
(ENOSPC injected into the atomic rename) during training and during a cross-check report."""
from __future__ import annotations

import errno
import os

import numpy as np
import pytest

pytest.importorskip("torch")

import torch  # noqa: E402

from neurosim import atomic  # noqa: E402
from neurosim.cli import main  # noqa: E402

TRAIN = ["train", "--task", "digits", "--hidden", "8", "--n-train", "32", "--n-test", "16", "--no-progress"]


def _leftovers(path) -> list[str]:
    return [f for _, _, fs in os.walk(path) for f in fs if f.endswith(".tmp")]


def _full_disk_after(monkeypatch, n_ok: int) -> None:
    """The first `n_ok` atomic renames succeed, every later one fails with ENOSPC."""
    real = os.replace
    calls = {"n": 0}

    def replace(src, dst):
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)


def test_ctrl_c_during_training_leaves_a_resumable_checkpoint(tmp_path, monkeypatch, capsys):
    import training.trainer as trainer

    straight = tmp_path / "straight"
    assert main([*TRAIN, "--epochs", "3", "--out", str(straight)]) == 0
    run = tmp_path / "run"
    real_evaluate = trainer.evaluate
    calls = {"n": 0}

    def evaluate(*args, **kwargs):  # Ctrl-C arrives while the second epoch is being evaluated
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(trainer, "evaluate", evaluate)
    assert main([*TRAIN, "--epochs", "3", "--out", str(run)]) == 130
    assert "interrupted" in capsys.readouterr().err
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 0 and not _leftovers(run)
    monkeypatch.setattr(trainer, "evaluate", real_evaluate)
    assert main([*TRAIN, "--epochs", "3", "--out", str(run), "--resume"]) == 0
    a = torch.load(straight / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_full_disk_during_training_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    # config.json, then epoch 0's checkpoint and metrics.csv succeed; epoch 1's checkpoint fails.
    _full_disk_after(monkeypatch, 3)
    assert main([*TRAIN, "--epochs", "3", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "checkpoint.pt" in err
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 0 and not _leftovers(run)
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2  # header and epoch 0: what was saved is whole
    monkeypatch.undo()
    assert main([*TRAIN, "--epochs", "3", "--out", str(run), "--resume"]) == 0
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 2


def test_full_disk_during_a_crosscheck_report(tmp_path, monkeypatch, capsys):
    import neurosim as ns
    from training.nets import recurrent_network

    model = tmp_path / "m.h5"
    ns.save(recurrent_network(4, 10, 2, model="lif", seed=0), str(model))
    np.savez(tmp_path / "in.npz", **{"in": np.random.default_rng(0).random((50, 4)) < 0.2})
    report = tmp_path / "report"
    _full_disk_after(monkeypatch, 1)  # the first overlay is written, the CSV is not
    code = main(["crosscheck", str(model), "--against", "numba", "--steps", "50", "--input",
                 str(tmp_path / "in.npz"), "--report", str(report), "--no-progress"])
    assert code == 2
    assert "No space left on device" in capsys.readouterr().err
    assert not _leftovers(tmp_path)
    assert sorted(os.listdir(report)) == ["overlay_numba.png"]

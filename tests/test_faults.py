"""Interrupted and failing runs lose nothing already saved: Ctrl-C and kill -9 during training,
kill -9 during export and of a distributed launcher, a full disk (ENOSPC injected into the
atomic rename) during training and during a cross-check report, and CUDA running out of memory
(injected: this machine has no GPU)."""
from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    """The first `n_ok` atomic renames succeed, every later one fails with ENOSPC (renames of
    other writers, such as numba's cache, pass and are not counted)."""
    real = os.replace
    calls = {"n": 0}

    def replace(src, dst):
        if not re.fullmatch(r"\..+\.\d+@.+\.tmp", os.path.basename(os.fspath(src))):
            return real(src, dst)
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
    # epoch 0's checkpoint, metrics.csv, config.json and curve.png succeed; epoch 1's checkpoint fails.
    _full_disk_after(monkeypatch, 4)
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


# ------------------------------------------------------------------------- kill -9, out of memory
ROOT = str(Path(__file__).resolve().parents[1])
KILL_TRAIN = ["train", "--task", "digits", "--hidden", "16", "--n-train", "160", "--n-test", "10",
              "--batch-size", "16", "--epochs", "4", "--no-progress", "--device", "cpu"]
LAST = 3  # epoch index of the last checkpoint


@pytest.fixture
def one_thread():
    """Runs in this process use one torch thread, as the subprocesses do (faster on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "neurosim", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _saved_epoch(run: Path) -> int:
    """Epoch of run/checkpoint.pt (-1 without one); torch.load fails on a corrupt file."""
    if not (run / "checkpoint.pt").exists():
        return -1
    return int(torch.load(run / "checkpoint.pt", weights_only=True)["epoch"])


def _last_epoch_seconds(run: Path) -> float:
    return float(torch.load(run / "checkpoint.pt", weights_only=True)["history"][-1]["seconds"])


def _wait_for(condition, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_kill_9_during_training_then_resume_equals_an_uninterrupted_run(tmp_path, one_thread):
    """SIGKILL in the middle of epochs 1 and 2 (half an epoch after the previous checkpoint,
    as long as the process's own last epoch took), resume after each: every checkpoint loads,
    none is lost, the end equals a straight run."""
    straight = tmp_path / "straight"
    assert main([*KILL_TRAIN, "--out", str(straight)]) == 0
    run = tmp_path / "run"
    for epoch in (0, 1):
        proc = _start([*KILL_TRAIN, "--out", str(run), *(["--resume"] if _saved_epoch(run) >= 0 else [])])
        _wait_for(lambda: _saved_epoch(run) >= epoch)
        time.sleep(_last_epoch_seconds(run) / 2)
        proc.kill()
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
        assert epoch <= _saved_epoch(run) < LAST and not (run / "model.h5").exists()
        rows = (run / "metrics.csv").read_text().splitlines()
        assert len(rows) - 2 in (_saved_epoch(run), _saved_epoch(run) - 1)  # whole rows, at most one behind
    assert main([*KILL_TRAIN, "--out", str(run), "--resume"]) == 0
    a = torch.load(straight / "checkpoint.pt", weights_only=True)
    b = torch.load(run / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    assert not _leftovers(run)  # the killed writers' temporary files were removed by later writes


# Run `neurosim` with os.fsync of its temporary output paused: the temporary file is written and
# not yet renamed, the widest point a kill can hit. A marker file says the pause was reached, so
# the kill lands there on every machine (polling for the .tmp file raced on faster CPUs).
_PAUSED_AT_FSYNC = """
import os, sys, time
real = os.fsync
def fsync(fd):
    if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
        open(os.environ["NEUROSIM_TEST_PAUSED"], "w").close()
        time.sleep(600)
    return real(fd)
os.fsync = fsync
from neurosim.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_9_during_export_leaves_the_old_file_or_none(tmp_path):
    """SIGKILL while `neurosim export` writes (its temporary file is complete, not yet renamed):
    first with no output yet (none is left), then over a previous output (it is left whole);
    a re-run removes the dead writer's temporary file and writes what an uninterrupted export
    writes."""
    from assets.cuba import cuba_network
    from mapping.nir_graph import read_nir

    import neurosim as ns

    model = tmp_path / "cuba.h5"
    ns.save(cuba_network(1500, seed=0), model)
    export = ["export", str(model), "--to", "nir", "--extensions"]
    assert main([*export, "--out", str(tmp_path / "straight.nir")]) == 0
    out = tmp_path / "out" / "net.nir"
    out.parent.mkdir()
    for previous in (False, True):
        if previous:
            assert main([*export, "--out", str(out)]) == 0
        before = out.read_bytes() if out.exists() else None
        paused = tmp_path / f"paused{int(previous)}"
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   OMP_NUM_THREADS="1", NEUROSIM_TEST_PAUSED=str(paused))
        proc = subprocess.Popen([sys.executable, "-c", _PAUSED_AT_FSYNC, *export, "--out", str(out)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_for(lambda: paused.exists() or proc.poll() is not None, 120)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL and paused.exists(), proc.stderr.read().decode()
        assert len(_leftovers(out.parent)) == 1  # the dead writer's complete temporary file
        assert (out.read_bytes() if out.exists() else None) == before  # untouched: old file or none
    assert main([*export, "--out", str(out)]) == 0
    assert not _leftovers(out.parent)
    a, b = read_nir(tmp_path / "straight.nir", 1e-4), read_nir(out, 1e-4)
    assert a.n_synapses == b.n_synapses
    for p, q in zip(a.projections, b.projections):
        assert np.array_equal(p.to_csr()[0].values, q.to_csr()[0].values)


@pytest.mark.slow
def test_kill_9_of_the_distributed_launcher_ends_its_ranks(tmp_path, one_thread):
    """kill -9 of `neurosim train --nproc 2`: both ranks die with it (no orphan keeps writing),
    the checkpoint loads, and a 1-process resume completes the run."""
    run = tmp_path / "run"
    proc = _start([*KILL_TRAIN, "--nproc", "2", "--out", str(run)])
    _wait_for(lambda: _saved_epoch(run) >= 0)
    ranks = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    assert len(ranks) == 2
    proc.kill()
    proc.wait()
    _wait_for(lambda: not any(Path(f"/proc/{r}").exists() and "Z" not in _state(r) for r in ranks), 10)
    saved = _saved_epoch(run)
    time.sleep(0.5)
    assert _saved_epoch(run) == saved  # nobody writes any more
    assert main([*KILL_TRAIN, "--out", str(run), "--resume"]) == 0
    assert _saved_epoch(run) == LAST


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]
    except (OSError, IndexError):
        return "Z"


@pytest.mark.parametrize("rule", ["bptt", "ottt"])
def test_cuda_out_of_memory_suggests_what_fits(tmp_path, monkeypatch, capsys, rule):
    """torch.cuda.OutOfMemoryError injected into the rule: one line; for BPTT a --budget (which
    bounds stored states plus working memory) within the free memory (a quarter of what BPTT
    keeps) that holds stored states, and training with it works; for an online rule (memory
    independent of T) a smaller batch."""
    from training import rules
    from training.layers import from_network
    from training.nets import recurrent_network
    from training.rules.ottt import OTTT
    from training.rules import BudgetedBPTT, parse_bytes, stored_state_nbytes
    from training.tasks import make_task
    from training.runfiles import to_batch as _to_batch

    task = make_task("digits", seed=0, n_train=32, n_test=16)
    model = from_network(recurrent_network(task.n_in, 8, task.n_out, dt=task.dt, seed=0))
    batch = _to_batch(task.train, np.arange(32), torch.float32)
    s = stored_state_nbytes(model, batch)
    alpha, T = BudgetedBPTT(1).measure_alpha(model, batch), batch.steps
    free = int(T * alpha * s / 4)

    def out_of_memory(self, model, batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    monkeypatch.setattr(rules.BPTT if rule == "bptt" else OTTT, "backward", out_of_memory)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (free, 8 * free))
    assert main([*TRAIN, "--epochs", "1", "--rule", rule, "--out", str(tmp_path / "oom")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "CUDA out of memory" in err
    if rule == "ottt":
        assert "--batch-size 16" in err
        return
    budget = re.search(r"--rule budgeted --budget (\S+) fits", err).group(1)
    assert parse_bytes(budget) <= free < T * alpha * s
    assert BudgetedBPTT(budget).slots(model, batch) >= 1
    monkeypatch.undo()
    assert main([*TRAIN, "--epochs", "1", "--rule", "budgeted", "--budget", budget, "--out", str(tmp_path / "ok")]) == 0


def test_resume_completes_the_files_a_kill_left_behind(tmp_path):
    """A kill between checkpoint.pt and metrics.csv of the last epoch: the checkpoint says the
    run is done, metrics.csv is an epoch short, config.json, curve.png and model.h5 are missing
    and the killed writer's temporary file remains. `--resume` completes them all. Before the
    fix it exited 0 and said it wrote metrics.csv and curve.png, but metrics.csv stayed an epoch
    short (nothing rewrote it: no epoch was left to train) and the .tmp stayed."""
    import socket

    run = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "2", "--out", str(run)]) == 0
    whole = (run / "metrics.csv").read_text()
    rows = whole.splitlines()
    assert len(rows) == 3  # header, epochs 0 and 1
    (run / "metrics.csv").write_text("\n".join(rows[:-1]) + "\n")  # as written after epoch 0
    for name in ("config.json", "curve.png", "model.h5"):
        (run / name).unlink()
    dead = subprocess.Popen(["true"])
    dead.wait()  # the pid of a writer that no longer runs
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())
    (run / f".metrics.csv.{dead.pid}@{host}.k1ll3d00.tmp").write_text("epoch,train_loss\n0,")
    assert main([*TRAIN, "--epochs", "2", "--out", str(run), "--resume"]) == 0
    assert (run / "metrics.csv").read_text() == whole
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    assert (run / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run / "model.h5").is_file()
    assert not _leftovers(run)

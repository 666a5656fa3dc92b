"""`neurosim train` refuses what it would otherwise ignore or destroy, and a failed start leaves
no run directory behind; the run's files are written after every epoch."""
from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

from neurosim.cli import main  # noqa: E402
from neurosim.errors import NeurosimError  # noqa: E402
from training.trainer import TrainConfig, train  # noqa: E402

TINY = ["--task", "store_recall", "--hidden", "8", "--n-train", "16", "--n-test", "8", "--epochs", "1",
        "--no-progress"]


def _err(capsys) -> str:
    return capsys.readouterr().err.strip()


def test_an_existing_run_is_refused_without_resume_or_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    before = (run / "checkpoint.pt").read_bytes()
    assert main(["train", *TINY, "--seed", "1", "--out", str(run)]) == 2
    err = _err(capsys)
    assert "holds a run already" in err and "--resume" in err and "--overwrite" in err
    assert (run / "checkpoint.pt").read_bytes() == before  # untouched
    assert main(["train", *TINY, "--seed", "1", "--out", str(run), "--overwrite"]) == 0
    assert (run / "checkpoint.pt").read_bytes() != before


def test_a_failed_start_leaves_no_directory(tmp_path, capsys):
    missing = tmp_path / "never"
    assert main(["train", *TINY, "--out", str(missing), "--resume"]) == 2
    assert "no checkpoint to resume from" in _err(capsys) and not missing.exists()
    refused = tmp_path / "refused"  # the budget is checked on the first batch, after the directory exists
    assert main(["train", *TINY, "--rule", "budgeted", "--budget", "1KB", "--out", str(refused)]) == 2
    assert "budget" in _err(capsys) and not refused.exists()
    kept = tmp_path / "kept"  # a directory that was there before is never removed
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    assert main(["train", *TINY, "--rule", "budgeted", "--budget", "1KB", "--out", str(kept)]) == 2
    assert sorted(os.listdir(kept)) == ["notes.txt"]
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["train", *TINY, "--out", str(afile)]) == 2
    assert "exists and is not a directory" in _err(capsys) and afile.read_text() == "x"


@pytest.mark.parametrize("args,needle", [
    (["--k", "10"], "--k 10: only rule tbptt truncates"),
    (["--budget", "2MB"], "--budget 2MB: only rule budgeted"),
    (["--policy", "mixed"], "--policy mixed: only rule budgeted"),
    (["--nproc", "9"], "--nproc 9: more processes than samples in a batch (--batch-size 8)"),
])
def test_flags_a_rule_does_not_use_are_refused(tmp_path, capsys, args, needle):
    run = tmp_path / "r"
    assert main(["train", *TINY, "--batch-size", "8", *args, "--out", str(run)]) == 2
    assert needle in _err(capsys) and not run.exists()


def test_more_processes_than_cores_are_refused(tmp_path, capsys):
    cores = os.cpu_count() or 1
    run = tmp_path / "r"
    assert main(["train", *TINY, "--nproc", str(cores + 1), "--batch-size", str(cores + 8), "--device", "cpu",
                 "--out", str(run)]) == 2
    assert f"this machine has {cores} CPU cores" in _err(capsys) and not run.exists()


@pytest.mark.parametrize("config,needle", [
    (dict(task="copy", rule="sab", model="lif"), "--model lif: rule sab does not use it; its cell is --rule-option"),
    (dict(task="copy", rule="sab", surrogate="atan"), "--surrogate atan: rule sab does not use it"),
    (dict(task="copy", rule="sab", k=10), "--k 10: rule sab does not use it; its truncation is --rule-option k_trunc"),
    (dict(task="sbm", rule="msg", n_train=5), "--n-train 5: rule msg does not use it; the split of an sbm graph"),
    (dict(task="digits_static", rule="ep", tau_adapt=2.0), "--tau-adapt 2.0: rule ep does not use it"),
    (dict(task="digits_static", rule="ep", clip=1.0), "--clip 1.0: rule ep does not use it"),
])
def test_methods_refuse_the_settings_they_would_ignore(tmp_path, config, needle):
    with pytest.raises(NeurosimError) as exc:
        train(TrainConfig(epochs=1, **config), tmp_path / "r", progress=False)
    assert needle in str(exc.value)
    assert not (tmp_path / "r").exists()


def test_every_epoch_writes_the_curve_and_config(tmp_path):
    """Interrupted after its first epoch, a run already has curve.png and config.json."""
    run = tmp_path / "run"

    def stop(row):
        raise KeyboardInterrupt

    cfg = TrainConfig(task="store_recall", hidden=8, n_train=16, n_test=8, epochs=3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run, progress=False, on_epoch=stop)
    assert {"checkpoint.pt", "metrics.csv", "curve.png", "config.json"} <= set(os.listdir(run))
    assert (run / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (run / "model.h5").exists()

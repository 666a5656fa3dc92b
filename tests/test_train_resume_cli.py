"""`neurosim train --resume` needs only --out (the options come from RUN/config.json), an
interrupt names the command that continues the run, and epochs count from 1 everywhere."""
from __future__ import annotations

import csv
import json

import pytest

torch = pytest.importorskip("torch")

from neurosim.cli import main  # noqa: E402
from neurosim.errors import Terminated  # noqa: E402
from training import trainer  # noqa: E402

RUN = ["--task", "store_recall", "--hidden", "8", "--n-train", "16", "--n-test", "8", "--batch-size", "8",
       "--seed", "3", "--no-progress"]


def _interrupt_after_first_epoch(monkeypatch, signal=KeyboardInterrupt):
    real = trainer.write_checkpoint

    def write_then_interrupt(*args, **kwargs):
        real(*args, **kwargs)
        raise signal()

    monkeypatch.setattr(trainer, "write_checkpoint", write_then_interrupt)


@pytest.mark.parametrize("signal,code", [(KeyboardInterrupt, 130), (Terminated, 143)])
def test_resume_with_only_out_gives_the_uninterrupted_weights(tmp_path, monkeypatch, capsys, signal, code):
    """Ctrl-C (KeyboardInterrupt) or SIGTERM (Terminated) after epoch 1 of 3 (cosine schedule,
    the default), then `train --out RUN --resume`: the weights equal an uninterrupted run's."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(["train", *RUN, "--epochs", "3", "--out", str(whole)]) == 0
    with monkeypatch.context() as m:
        _interrupt_after_first_epoch(m, signal)
        assert main(["train", *RUN, "--epochs", "3", "--out", str(cut)]) == code
    err = capsys.readouterr().err
    assert f"resume with: neurosim train --out {cut} --resume" in err
    assert torch.load(cut / "checkpoint.pt", weights_only=True)["epoch"] == 0
    assert main(["train", "--out", str(cut), "--resume"]) == 0
    a = torch.load(whole / "checkpoint.pt", weights_only=True)
    b = torch.load(cut / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key  # bit-identical
    assert (whole / "model.h5").read_bytes() != b"" and (cut / "model.h5").stat().st_size > 0


def test_resume_names_a_changed_option_and_may_extend_epochs(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *RUN, "--schedule", "constant", "--epochs", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--resume", "--hidden", "9"]) == 2
    assert "--hidden 8 there, 9 here" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2"]) == 0  # constant schedule: extendable
    out = capsys.readouterr().out
    assert "epoch 2/2: train loss" in out and "epoch 1/" not in out
    assert json.loads((run / "config.json").read_text())["epochs"] == 2


def test_task_is_required_without_resume_and_resume_needs_a_run(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "x")]) == 2
    assert "--task: required" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "config.json: missing" in err and "no checkpoint to resume from" in err and not (tmp_path / "none").exists()


def test_an_interrupt_before_the_first_epoch_says_there_is_nothing_to_resume(tmp_path, monkeypatch, capsys):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "write_checkpoint", interrupt)
    assert main(["train", *RUN, "--epochs", "1", "--out", str(tmp_path / "r")]) == 130
    assert "nothing to resume" in capsys.readouterr().err


def test_epochs_count_from_one_in_metrics_and_on_the_console(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *RUN, "--epochs", "2", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "epoch 1/2: train loss" in out and "epoch 2/2: train loss" in out
    with open(run / "metrics.csv") as f:
        assert [int(float(r["epoch"])) for r in csv.DictReader(f)] == [1, 2]


def test_the_progress_bar_shows_loss_and_accuracy(tmp_path, monkeypatch):
    shown = []
    import tqdm.auto

    real = tqdm.auto.tqdm

    class Recording(real):  # type: ignore[misc, valid-type]
        def set_postfix(self, *args, **kwargs):
            shown.append(kwargs)
            return super().set_postfix(*args, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    cfg = trainer.TrainConfig(task="store_recall", hidden=8, n_train=16, n_test=8, batch_size=8, epochs=1)
    trainer.train(cfg, tmp_path / "run", progress=True, device="cpu")
    assert shown and {"epoch", "loss", "acc"} <= set(shown[-1])
    assert 0.0 <= float(shown[-1]["acc"]) <= 1.0 and float(shown[-1]["loss"]) > 0


def test_options_json_cannot_type_exactly_come_back_from_the_checkpoint(tmp_path):
    """JSON writes a tuple option as a list; the resumed run takes the checkpoint's tuple, so
    the option matches the checkpoint's and the run resumes."""
    from neurosim.cli.train_resume import exact_types

    config = {"rule_options": {"lr_layers": (0.1, 0.05)}, "epochs": 3}
    torch.save({"config": config}, tmp_path / "checkpoint.pt")
    from_json = json.loads(json.dumps(config))
    assert from_json["rule_options"]["lr_layers"] == [0.1, 0.05]
    got = exact_types(from_json, str(tmp_path / "checkpoint.pt"))
    assert got == config and isinstance(got["rule_options"]["lr_layers"], tuple)
    edited = dict(from_json, epochs=5)  # config.json says otherwise: config.json wins
    assert exact_types(edited, str(tmp_path / "checkpoint.pt"))["epochs"] == 5

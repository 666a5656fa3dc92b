"""training.scoring.score, the one definition of accuracy, against hand-counted answers; the
trainer reports it for every task kind (no NaN for per-step targets)."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neurosim.errors import NeurosimError  # noqa: E402
from training.scoring import score  # noqa: E402
from training.tasks import make_task  # noqa: E402
from training.trainer import TrainConfig, train  # noqa: E402


def test_labels_score_the_argmax_of_the_mean_readout():
    task = make_task("delayed_xor", n_train=4, n_test=4)
    # sample 0: step 10 says class 1 strongly, step 11 says 0 weakly -> mean says 1
    readouts = {10: torch.tensor([[0.0, 3.0], [1.0, 0.0], [0.0, 1.0]]),
                11: torch.tensor([[1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])}
    # means: [0.5, 1.5] -> 1, [1, 0] -> 0, [1, 0.5] -> 0
    assert score(task, readouts, torch.tensor([1, 0, 1])) == (2, 3)


def test_per_step_classes_count_one_answer_per_window():
    task = make_task("delayed_copy", n_train=4, n_test=4)
    rs, rec, length = task.params["recall_start"], task.params["recall_steps"], task.params["length"]
    assert task.windows == tuple((rs + k * rec, rs + (k + 1) * rec) for k in range(length))
    split = task.test
    targets = torch.as_tensor(split.targets)
    B, n_sym = targets.shape[0], targets.shape[2]
    readouts = {t: targets[:, t].clone() for t in range(rs, task.steps)}  # every window right
    assert score(task, readouts, targets) == (length * B, length * B)
    # window 0 of sample 0: wrong on most steps by a little, right on one step by a lot -> still right
    lo, hi = task.windows[0]
    right = int(targets[0, lo].argmax())
    wrong = (right + 1) % n_sym
    for t in range(lo, hi):
        readouts[t] = readouts[t].clone()
        readouts[t][0] = 0.0
        readouts[t][0, wrong] = 0.1
    readouts[lo][0, right] = 10.0
    assert score(task, readouts, targets) == (length * B, length * B)
    readouts[lo][0, right] = 0.0  # now the window's mean says `wrong`
    assert score(task, readouts, targets) == (length * B - 1, length * B)


def test_per_step_classes_without_windows_count_every_masked_step():
    task = make_task("copy", T=5, n_copy=3, n_symbols=4, n_train=2, n_test=2)
    targets = torch.as_tensor(task.test.targets)
    steps = np.flatnonzero(task.test.loss_mask)
    readouts = {int(t): targets[:, t].clone() for t in steps}
    readouts[int(steps[1])] = torch.roll(readouts[int(steps[1])], 1, dims=1)  # one step wrong in both samples
    assert score(task, readouts, targets) == (3 * 2 - 2, 3 * 2)


def test_regression_counts_sequences_within_the_tolerance():
    task = make_task("adding", T=6, n_train=2, n_test=3, tolerance=0.05)
    targets = torch.as_tensor(task.test.targets)
    out = targets[:, -1].clone()
    out[0] += 0.049  # inside
    out[1] -= 0.051  # outside
    assert score(task, {5: out}, targets) == (2, 3)


def test_a_window_outside_the_mask_is_an_error():
    task = make_task("delayed_copy", n_train=2, n_test=2)
    targets = torch.as_tensor(task.test.targets)
    lo, hi = task.windows[0]
    with pytest.raises(NeurosimError, match="outside the loss mask"):
        score(task, {t: targets[:, t] for t in range(lo + 1, task.steps)}, targets)


@pytest.mark.parametrize("task", ["delayed_copy", "copy"])
def test_trainer_reports_accuracy_for_per_step_targets(tmp_path, task):
    options = {"copy": dict(T=10, n_copy=3, n_symbols=4)}.get(task, {})
    cfg = TrainConfig(task=task, rule="bptt", epochs=1, batch_size=16, hidden=12, n_train=32, n_test=16,
                      seed=0, task_options=options)
    res = train(cfg, tmp_path / "run", progress=False)
    row = res["history"][0]
    for key in ("train_acc", "test_acc"):
        assert not math.isnan(row[key]) and 0.0 <= row[key] <= 1.0
    # the reported test accuracy is the fraction of windows (or steps) a forward pass gets right
    t = res["task"]
    model = res["model"]
    x = torch.as_tensor(t.test.inputs, dtype=model.v0.dtype).transpose(0, 1)
    lo, hi = model.slices["out"]
    state, v = model.initial_state(x.shape[1]), []
    with torch.no_grad():
        for step in range(x.shape[0]):
            state = model.step(state, x[step])
            v.append(state.neurons.v[:, lo:hi].numpy().copy())
    v = np.stack(v, 1)  # (N, T, n_out)
    y = t.test.targets
    windows = t.windows or [(s, s + 1) for s in np.flatnonzero(t.test.loss_mask)]
    right = [v[:, a:b].mean(1).argmax(1) == y[:, a].argmax(1) for a, b in windows]
    assert row["test_acc"] == pytest.approx(np.mean(right), abs=1e-12)
    with open(tmp_path / "run" / "metrics.csv") as f:
        assert float(next(csv.DictReader(f))["test_acc"]) == pytest.approx(row["test_acc"], abs=1e-6)

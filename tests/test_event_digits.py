"""The bundled event-camera task (nmnist_digits) and its DVS sensor model (training.tasks.dvs)."""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("sklearn")

from neurosim.errors import NetworkError  # noqa: E402
from training.tasks import make_task  # noqa: E402
from training.tasks.dvs import dvs_events, saccade_path, scene  # noqa: E402


def test_a_brightness_step_gives_one_event_per_step_until_the_log_change_is_used_up():
    """Closed form: a jump of log intensity by D (not a multiple of C) sends ceil(D / C) - 1 events of one
    polarity (the remainder stays below the threshold), one per step, then nothing."""
    T, bg, eps = 12, 0.1, 1e-3
    I = np.zeros((T, 1, 2))
    I[1:, 0, 0] = 1.0                     # pixel 0 turns bright at step 1
    I[0, 0, 1] = 1.0                      # pixel 1 turns dark at step 1
    C = np.array([[0.33, 0.29]])
    ev = dvs_events(I, C, background=bg, eps=eps)
    D = math.log((1.0 + bg + eps) / (bg + eps))
    n_on, n_off = math.ceil(D / 0.33) - 1, math.ceil(D / 0.29) - 1
    assert n_on == 7 and n_off == 8
    np.testing.assert_array_equal(ev[:, 0, 0, 0], (np.arange(T - 1) < n_on).astype(np.uint8))
    np.testing.assert_array_equal(ev[:, 1, 0, 1], (np.arange(T - 1) < n_off).astype(np.uint8))
    assert ev[:, 1, 0, 0].sum() == 0 and ev[:, 0, 0, 1].sum() == 0


def test_saccades_follow_a_closed_triangle_and_the_scene_moves_with_them():
    p = saccade_path(6, 4.0)
    assert p.shape == (19, 2)
    np.testing.assert_allclose(p[0], p[-1])
    np.testing.assert_allclose(p.max(0) + p.min(0), 0.0, atol=1e-12)  # centred
    np.testing.assert_allclose(np.ptp(p, axis=0), [4.0, 4.0])
    img = np.zeros((8, 8))
    img[3, 4] = 1.0
    frames = scene(img, np.array([[0.0, 0.0], [0.0, 3.0]]), 34, 3.0)
    assert frames.shape == (2, 34, 34)
    peak = [np.unravel_index(np.argmax(f), f.shape) for f in frames]
    assert peak[1][0] == peak[0][0] and peak[1][1] == peak[0][1] + 3


def test_task_shapes_splits_and_seed():
    t = make_task("nmnist_digits", seed=1, n_train=60, n_test=20, n_val=10)
    assert t.train.inputs.shape == (50, 18, 2312) and t.val.inputs.shape == (10, 18, 2312)
    assert t.test.inputs.shape == (20, 18, 2312) and t.params["shape"] == (2, 34, 34)
    x = t.train.inputs
    assert set(np.unique(x)) == {0, 1}
    on, off = x.reshape(50, 18, 2, 34 * 34).sum(axis=(0, 1, 3))
    assert on > 1000 and off > 1000
    again = make_task("nmnist_digits", seed=1, n_train=60, n_test=20, n_val=10)
    np.testing.assert_array_equal(again.train.inputs, x)
    np.testing.assert_array_equal(again.val.targets, t.val.targets)
    other = make_task("nmnist_digits", seed=2, n_train=60, n_test=20, n_val=10)
    assert not np.array_equal(other.train.inputs, x)
    assert sorted(np.bincount(t.val.targets, minlength=10)) == [1] * 10  # stratified
    with pytest.raises(NetworkError) as e:
        make_task("nmnist_digits", threshold=-1)
    assert e.value.field == "nmnist_digits.threshold"
    with pytest.raises(NetworkError) as e:
        make_task("nmnist_digits", n_train=20, n_val=15)
    assert e.value.field == "nmnist_digits.n_train"


def test_cli_trains_a_conv_model_on_the_event_task_and_writes_its_network(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from neurosim.cli import main
    from neurosim.storage import load
    from training.layered import LayeredSNN, from_network, load_arch

    run = tmp_path / "run"
    args = ["train", "--task", "nmnist_digits", "--arch", "conv(2,k=5,s=4,p=2),pool(2),flatten,dense(10)",
            "--epochs", "1", "--n-train", "40", "--n-test", "20", "--task-option", "n_val=10", "--batch-size", "20",
            "--no-progress", "--dtype", "float64"]
    assert main([*args, "--out", str(run)]) == 0
    assert "best validation accuracy" in capsys.readouterr().out
    assert "val_acc" in (run / "metrics.csv").read_text().splitlines()[0]
    layers = load_arch(run / "arch.json")
    net = load(run / "model.h5")
    model = from_network(net, layers, dtype=torch.float64)
    state = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    trained = LayeredSNN(layers, (2, 34, 34), dtype=torch.float64)
    trained.load_state_dict(state)
    for k, v in trained.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert main([*args[:4], "conv(2,k=5,s=4,p=2),flatten,dense(3)", *args[5:], "--out", str(tmp_path / "r2")]) == 2
    assert "--arch: the last layer has 3 neurons" in capsys.readouterr().err

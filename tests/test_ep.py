"""Equilibrium Propagation in discrete time: the GDU property against autograd BPTT, the fixed
point of the free phase, dPhi against finite differences and autograd, and the training run."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from neurosim.cli import main  # noqa: E402
from neurosim.errors import NeurosimError  # noqa: E402
from training.methods import ep_net as E  # noqa: E402
from training.methods.ep import EPOptions, batch_gradient, digits_static, load_weights  # noqa: E402
from training.trainer import TrainConfig, train  # noqa: E402


def _data(batch=8):
    x, lab, _, _ = digits_static(0, 64, 32)
    x = torch.as_tensor(x[:batch], dtype=torch.float64)
    return x, torch.nn.functional.one_hot(torch.as_tensor(lab[:batch]), 10).double()


def _net(hidden=(32,), seed=0):
    return E.init_params([10, *hidden, 64], seed, torch.float64)


@pytest.mark.parametrize("hidden,T", [((32,), 80), ((16, 16), 200)])
def test_gdu_ep_updates_match_bptt_gradients_for_small_beta(hidden, T):
    x, y = _data()
    tab = E.gdu_table(x, y, _net(hidden), T=T, K=12, beta=0.01, tol=1e-10)
    keys = [f"s{n}" for n in range(len(hidden) + 1)] + [f"{c}{n}" for c in "Wb" for n in range(len(hidden) + 1)]
    for k in keys:
        assert tab[k]["components"] > 0, k
        assert tab[k]["median_rel_rmse"] < 0.05, (k, tab[k])
        assert tab[k]["sign"] > 0.95, (k, tab[k])


def _worst(tab):
    return max(v["median_rel_rmse"] for k, v in tab.items() if not k.endswith("_all"))


def test_gdu_error_is_linear_in_beta_one_sided_and_quadratic_symmetric():
    """Below the beta where a unit crosses a saturation boundary of sigma (about 0.02 here)."""
    x, y = _data()
    p = _net()
    one = [_worst(E.gdu_table(x, y, p, T=80, K=12, beta=b, tol=1e-10)) for b in (0.02, 0.01)]
    sym = [_worst(E.gdu_table(x, y, p, T=80, K=12, beta=b, symmetric=True, tol=1e-10)) for b in (0.01, 0.005)]
    assert 1.6 < one[0] / one[1] < 2.4, one
    assert 3.0 < sym[0] / sym[1] < 5.0, sym
    assert sym[1] < one[1] / 5


def test_nudge_after_sigma_breaks_gdu_on_saturated_outputs():
    """The authors' code adds beta*(y - s^0) after sigma; saturated outputs then feed an error
    signal that BPTT (sigma' = 0 there) does not have: synapses stop matching."""
    x, y = _data()
    tab = E.gdu_table(x, y, _net(), T=80, K=12, beta=0.001, symmetric=True, tol=1e-10, outside=True)
    assert tab["W1"]["median_rel_rmse"] > 0.1


def test_free_phase_reaches_a_fixed_point_of_sigma_of_dphi():
    x, _ = _data()
    p = _net((16, 16))
    s, res = E.free_phase(x, p, 200)
    assert res < 1e-10
    s_req = [v.clone().requires_grad_(True) for v in s]
    grads = torch.autograd.grad(E.phi(x, s_req, p).sum(), s_req)  # dPhi/ds by autograd, not dphi_ds
    for v, g in zip(s, grads):
        torch.testing.assert_close(v, g.clamp(0, 1), rtol=0, atol=1e-10)
    with pytest.raises(NeurosimError, match="not converged"):
        E.gdu_table(x, x[:, :10], p, T=3, K=2, beta=0.1)


def test_dphi_matches_finite_differences_and_autograd():
    x, _ = _data(4)
    p = _net((6, 5))
    g = torch.Generator().manual_seed(1)
    s = [torch.rand(4, n, generator=g, dtype=torch.float64) for n in (10, 6, 5)]
    exact = E.dphi_dtheta(x, s)
    h = 1e-6
    for name, v in p.items():
        flat = v.view(-1)
        for i in torch.randperm(flat.numel(), generator=g)[:5].tolist():
            old = float(flat[i])
            flat[i] = old + h
            up = float(E.phi(x, s, p).mean())
            flat[i] = old - h
            down = float(E.phi(x, s, p).mean())
            flat[i] = old
            assert abs((up - down) / (2 * h) - float(exact[name].view(-1)[i])) < 1e-7, (name, i)
    s_req = [v.clone().requires_grad_(True) for v in s]
    auto = torch.autograd.grad(E.phi(x, s_req, p).sum(), s_req)
    for a, b in zip(E.dphi_ds(x, s, p), auto):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_training_gradient_of_ep_approaches_bptt_as_beta_shrinks():
    x, y = _data(16)
    p = _net()
    ref, *_ = batch_gradient(x, y, p, EPOptions(T=200, K=10, baseline="bptt", tol=1e-12))
    for nudge, beta, tol in (("symmetric", 1e-3, 1e-4), ("one_sided", 1e-3, 5e-3)):
        ep, *_ = batch_gradient(x, y, p, EPOptions(T=200, K=10, beta=beta, nudge=nudge, tol=1e-12))
        for k in ref:
            assert float((ep[k] - ref[k]).norm() / ref[k].norm()) < tol, (nudge, k)


def test_cli_ep_writes_the_run_files_and_reloadable_weights(tmp_path, capsys):
    import json

    out = tmp_path / "run"
    assert main(["train", "--task", "digits_static", "--rule", "ep", "--hidden", "16", "--epochs", "2",
                 "--n-train", "64", "--n-test", "32", "--rule-option", "K=4", "--rule-option", "activation=sigmoid",
                 "--no-progress", "--out", str(out)]) == 0
    files = ("checkpoint.pt", "metrics.csv", "curve.png", "weights.pt", "config.json")
    assert f"wrote {out}/{', '.join(files)}" in capsys.readouterr().out
    for f in files:
        assert (out / f).stat().st_size > 0, f
    assert json.loads((out / "config.json").read_text())["rule_options"] == {"K": 4, "activation": "sigmoid"}
    rows = np.genfromtxt(out / "metrics.csv", delimiter=",", names=True)
    assert {"test_acc", "residual", "unconverged", "free_steps", "dead_target"} <= set(rows.dtype.names)
    assert np.all((rows["free_steps"] >= 1) & (rows["free_steps"] <= 500))
    params, T, tol, act = load_weights(out / "weights.pt")
    assert params["W1"].shape == (16, 64) and (T, tol, act) == (500, 1e-3, "sigmoid")
    x, _, _, _ = digits_static(0, 64, 32)
    pred = E.free_phase_until(torch.as_tensor(x[:5]), params, T, tol, act)[0][0].argmax(1)
    assert pred.shape == (5,)


@pytest.mark.parametrize("option,needle", [
    ("beta=-1", "beta=-1: expected a finite number > 0"), ("layers=3", "layers=3: expected a whole number 1..2"),
    ("nudge=both", "nudge='both': expected one of one_sided, symmetric"), ("T=0", "T=0"),
    ("baseline=rbp", "expected one of ep, bptt"), ("k_att=3", "rule ep has no option 'k_att'"),
    ("lr_layers=(0.1,0.2,0.3)", "expected 2 learning rates > 0"), ("activation=relu", "expected one of hard, sigmoid"),
    ("optimizer=rmsprop", "expected one of adam, sgd")])
def test_cli_ep_bad_options_name_the_option(tmp_path, capsys, option, needle):
    assert main(["train", "--task", "digits_static", "--rule", "ep", "--rule-option", option, "--no-progress",
                 "--out", str(tmp_path / "x")]) == 2
    assert needle in capsys.readouterr().err
    assert main(["train", "--task", "digits", "--rule", "ep", "--no-progress", "--out", str(tmp_path / "y")]) == 2
    assert "rule ep trains on digits_static" in capsys.readouterr().err


def _cfg(**kw):
    base = dict(task="digits_static", rule="ep", epochs=3, hidden=16, n_train=64, n_test=32, batch_size=16,
                lr=1e-2, rule_options={"K": 4, "nudge": "one_sided"})
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("baseline", ["ep", "bptt"])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, monkeypatch, baseline):
    import training.runfiles as trainer

    cfg = _cfg(rule_options={"K": 4, "nudge": "one_sided", "baseline": baseline})
    straight = train(cfg, tmp_path / "a", progress=False)
    write = trainer.write_metrics

    class Stop(Exception):
        pass

    def stop(path, history):  # the checkpoint of epoch 0 is on disk when the metrics are written
        write(path, history)
        raise Stop

    monkeypatch.setattr(trainer, "write_metrics", stop)
    with pytest.raises(Stop):
        train(cfg, tmp_path / "c", progress=False)
    monkeypatch.setattr(trainer, "write_metrics", write)
    resumed = train(cfg, tmp_path / "c", resume=True, progress=False)
    for k, v in straight["model"].items():
        assert torch.equal(v, resumed["model"][k]), k
    a = np.genfromtxt(tmp_path / "a" / "metrics.csv", delimiter=",", names=True)
    c = np.genfromtxt(tmp_path / "c" / "metrics.csv", delimiter=",", names=True)
    np.testing.assert_array_equal(a["train_loss"], c["train_loss"])
    assert not list((tmp_path / "c").glob("*.tmp"))


def test_resume_refuses_other_config_and_tampered_checkpoint(tmp_path):
    train(_cfg(epochs=1), tmp_path, progress=False)
    with pytest.raises(NeurosimError, match=r"config: .*--lr [0-9.e-]+ there, 0.1 here"):
        train(_cfg(epochs=1, lr=0.1), tmp_path, resume=True, progress=False)

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    (tmp_path / "checkpoint.pt").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(NeurosimError, match="not a readable neurosim checkpoint"):
        train(_cfg(epochs=1), tmp_path, resume=True, progress=False)


def test_ep_training_memory_does_not_grow_with_k_but_bptt_does():
    from training.budget.memory import LiveBytes

    x, y = _data(16)
    p = _net()
    peaks = {}
    for baseline in ("ep", "bptt"):
        for K in (5, 40):
            with LiveBytes() as lb:
                batch_gradient(x, y, p, EPOptions(T=20, K=K, baseline=baseline, tol=1e-12))
            peaks[baseline, K] = lb.peak
    assert peaks["ep", 40] == peaks["ep", 5]
    assert peaks["bptt", 40] > 4 * peaks["bptt", 5]


def test_adaptive_free_phase_stops_at_tol_and_equals_the_fixed_step_one():
    x, _ = _data()
    p = _net((16, 16))
    for act in ("hard", "sigmoid"):
        s, res, used = E.free_phase_until(x, p, 500, 1e-6, act)
        assert res <= 1e-6 and 1 < used < 500
        ref, ref_res = E.free_phase(x, p, used, act=act)  # the same number of plain steps
        assert ref_res == res
        for a, b in zip(s, ref):
            assert torch.equal(a, b)
        _, res_before = E.free_phase(x, p, used - 1, act=act)
        assert res_before > 1e-6  # it stopped at the first step under tol
    s, res, used = E.free_phase_until(x, p, 3, 1e-6)
    assert used == 3 and res > 1e-6


@pytest.mark.parametrize("act", ["hard", "sigmoid"])
def test_bptt_gradient_matches_finite_differences_of_the_unrolled_loss(act):
    """The baseline's gradient (sum of the instantaneous BPTT gradients) against central
    differences of l(s_K) with s_* held fixed, for both activations."""
    x, y = _data(6)
    p = _net((12,), seed=3)
    s_star, _ = E.free_phase(x, p, 200, act=act)
    g = {k: v.sum(0) for k, v in E.bptt_gradients(x, y, p, s_star, 6, act).synapses.items()}

    def loss():
        s = s_star
        for _ in range(6):
            s = E.step(x, s, p, act=act)
        return float(E.loss_fn(s[0], y))

    gen = torch.Generator().manual_seed(2)
    h = 1e-6
    for name, v in p.items():
        flat = v.view(-1)
        for i in torch.randperm(flat.numel(), generator=gen)[:6].tolist():
            old = float(flat[i])
            flat[i] = old + h
            up = loss()
            flat[i] = old - h
            down = loss()
            flat[i] = old
            assert abs((up - down) / (2 * h) - float(g[name].view(-1)[i])) < 1e-7, (name, i)


def test_sgd_with_per_layer_rates_takes_one_plain_step_per_batch(tmp_path):
    """optimizer=sgd, lr_layers: after one batch, theta_n = theta0_n - lr_n * update_n (the
    authors' plain SGD with per-layer rates), the update computed independently on the batch."""
    opts = {"K": 4, "nudge": "one_sided", "optimizer": "sgd", "lr_layers": (0.3, 0.7), "beta": 0.2}
    cfg = _cfg(epochs=1, n_train=16, batch_size=16, rule_options=opts)
    trained = train(cfg, tmp_path, progress=False)["model"]
    p0 = E.init_params([10, 16, 64], 0, torch.float32)
    x, lab, _, _ = digits_static(0, 16, 32)
    xb = torch.as_tensor(x)
    grads, *_ = batch_gradient(xb, torch.nn.functional.one_hot(torch.as_tensor(lab), 10).float(), p0,
                               EPOptions(K=4, nudge="one_sided", beta=0.2, T=200))
    for k, lr in (("W0", 0.3), ("b0", 0.3), ("W1", 0.7), ("b1", 0.7)):
        torch.testing.assert_close(trained[k], p0[k] - lr * grads[k], rtol=0, atol=1e-6)
        assert float((trained[k] - p0[k]).abs().max()) > 1e-4, k

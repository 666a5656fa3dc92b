"""MSG (training.methods.msg) and its graphs (training.methods.graphs): manifold maps against closed forms,
DvM's gradient against autograd of the manifold chain, the BPTT twin against finite
differences, the SBM's statistics, the file loader's errors, the CLI and resume."""
from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from neurosim.cli import main
from neurosim.errors import FileFormatError, NeurosimError
from neurosim.models import heaviside
from training.methods.graphs import load_graph, sbm
from training.methods.msg import Manifold, MSGNet, Options, build, graph_data

torch.set_num_threads(1)
F64 = torch.float64


def _points(mf: Manifold, n: int = 64, m: int = 5, scale: float = 1.0, seed: int = 0):
    """Points on mf (the exponential map of random tangent vectors at the origin) and tangent
    vectors at them."""
    g = torch.Generator().manual_seed(seed)
    o = mf.origin(n, m, F64)
    x = mf.exp_autograd(o, mf.proj(o, scale * torch.randn(n, m, generator=g, dtype=F64)))
    v = mf.proj(x, scale * torch.randn(n, m, generator=g, dtype=F64))
    return x, v


@pytest.mark.parametrize("kind,k", [("lorentz", 1.0), ("lorentz", 0.7), ("sphere", 1.0), ("sphere", 2.5),
                                    ("euclidean", 1.0)])
def test_exp_and_log_are_inverse_and_stay_on_the_manifold(kind, k):
    mf = Manifold(kind, k)
    x, v = _points(mf, scale=0.3)
    if kind == "sphere":  # stay inside the injectivity radius pi / sqrt(K)
        v = v * torch.clamp((2.5 / math.sqrt(k)) / mf.theta(v).clamp(min=1e-12) * math.sqrt(k), max=1.0)
    y = mf.exp(x, v)
    assert float(mf.constraint(x).abs().max()) < 1e-12
    size = 1 + k * y.square().sum(1, keepdim=True)  # float64 rounding of <y,y> scales with |y|^2
    assert float((mf.constraint(y).abs() / size).max()) < 1e-12
    if kind == "lorentz":
        assert bool((y[:, 0] > 0).all())
        assert float(((mf.inner(y, y) + 1 / k).abs() / size).max()) < 1e-12  # <y,y>_L = -1/K
    if kind == "sphere":
        assert float((y.norm(dim=1) - 1 / math.sqrt(k)).abs().max()) < 1e-10
    torch.testing.assert_close(mf.log(x, y), v, atol=1e-10, rtol=0)
    torch.testing.assert_close(mf.exp(x, mf.log(x, y)), y, atol=1e-10, rtol=0)
    # Log is a tangent vector at x whose length is the geodesic distance
    if kind != "euclidean":
        assert float(mf.inner(x, mf.log(x, y)).abs().max()) < 1e-10
    # tiny tangent vectors (the series branch) too
    torch.testing.assert_close(mf.log(x, mf.exp(x, 1e-4 * v)), 1e-4 * v, atol=1e-13, rtol=0)


def test_closed_forms_of_the_maps():
    e = Manifold("euclidean")
    x, v = torch.randn(4, 3, dtype=F64), torch.randn(4, 3, dtype=F64)
    torch.testing.assert_close(e.exp(x, v), x + v, atol=0, rtol=0)
    # unit hyperbola/circle in the plane: Exp_o(t e_1) = (cosh t, sinh t) and (cos t, sin t)
    t = torch.tensor([[0.3], [1.7]], dtype=F64)
    v = torch.cat([torch.zeros_like(t), t], 1)
    o = Manifold("lorentz").origin(2, 2, F64)
    torch.testing.assert_close(Manifold("lorentz").exp(o, v), torch.cat([t.cosh(), t.sinh()], 1), atol=1e-15, rtol=0)
    torch.testing.assert_close(Manifold("sphere").exp(o, v), torch.cat([t.cos(), t.sin()], 1), atol=1e-15, rtol=0)


@pytest.mark.parametrize("kind", ["lorentz", "sphere", "euclidean"])
def test_exp_vjp_is_the_derivative_of_the_exponential_map(kind):
    mf = Manifold(kind, 0.8)
    for scale in (0.5, 0.03):  # closed form and series branch
        x, v = _points(mf, n=6, m=4, scale=scale, seed=3)
        x, v = x.requires_grad_(), v.requires_grad_()
        assert torch.autograd.gradcheck(lambda a, b: mf.exp(a, b), (x, v), eps=1e-6, atol=1e-8)
        g = torch.randn(6, 4, dtype=F64)
        got = torch.autograd.grad(mf.exp(x, v), (x, v), g)
        ref = torch.autograd.grad(mf.exp_autograd(x, v), (x, v), g)
        for a, b in zip(got, ref):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def _tiny(seed: int = 0, n: int = 40):
    g = sbm(n_nodes=n, n_classes=2, n_features=3, p_in=0.3, p_out=0.05, feature_noise=0.5, seed=seed)
    return g, graph_data(g, F64)


@pytest.mark.parametrize("kind", ["lorentz", "sphere", "euclidean"])
def test_dvm_gradient_equals_autograd_of_the_manifold_chain_with_rates_held(kind):
    """DvM differentiates L(Log_o(z_{L+1})) through z_{l+1} = Exp_{z_l}(eps PT_{o->z_l}(P_o(A r^{l-1} W_l)))
    with the rates r held constant: the same chain built from plain torch ops (exp_autograd)
    and differentiated by autograd gives the same gradient."""
    g, d = _tiny()
    model = MSGNet(3, 2, 4, layers=3, manifold=Manifold(kind, 1.3), steps=6, step=0.4, theta=0.5, dtype=F64)
    logits = model(d.adj, d.x, "dvm")
    loss = torch.nn.functional.cross_entropy(logits, d.y)
    got = torch.autograd.grad(loss, list(model.parameters()))
    c0 = torch.sparse.mm(d.adj, d.x @ model.w_in)
    rates = [r.detach() for r in model.rates(d.adj, c0.detach(), heaviside)]
    assert 0 < float(sum(r.mean() for r in rates)) < len(rates)  # spikes, but not everywhere
    z = model.chain(d.adj, c0, rates, exp=model.manifold.exp_autograd)
    ref_loss = torch.nn.functional.cross_entropy(model.readout(model.manifold.log0(z)), d.y)
    torch.testing.assert_close(loss, ref_loss, atol=1e-12, rtol=0)
    ref = torch.autograd.grad(ref_loss, list(model.parameters()))
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-8, rtol=1e-8)


def test_bptt_twin_gradient_equals_finite_differences_with_a_smooth_spike():
    """With a smooth spike function (a sigmoid in place of the Heaviside) the BPTT twin is a smooth
    function of its weights; gradcheck compares its autograd through all T steps with finite
    differences. The Heaviside forward with the surrogate backward is the same graph."""
    g, d = _tiny(n=16)
    model = MSGNet(3, 2, 3, layers=2, manifold=Manifold("lorentz"), steps=5, step=0.4, theta=0.5, dtype=F64)
    model.spike_fn = lambda u: torch.sigmoid(4 * u)
    names = [n for n, _ in model.named_parameters()]

    def loss(*params):
        out = torch.func.functional_call(model, dict(zip(names, params)), (d.adj, d.x, "bptt"))
        return torch.nn.functional.cross_entropy(out, d.y)

    params = tuple(p.detach().clone().requires_grad_() for p in model.parameters())
    assert torch.autograd.gradcheck(loss, params, eps=1e-6, atol=1e-7)


def test_dvm_and_bptt_share_the_forward_and_differ_only_by_the_spike_path():
    g, d = _tiny()
    model = MSGNet(3, 2, 4, layers=2, manifold=Manifold("lorentz"), steps=6, step=0.4, theta=0.5, dtype=F64)
    a, b = model(d.adj, d.x, "dvm"), model(d.adj, d.x, "bptt")
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    ga = torch.autograd.grad(a.square().sum(), list(model.parameters()))
    gb = torch.autograd.grad(b.square().sum(), list(model.parameters()))
    # the last layer's weights and the readout see no spike path: equal; w_in differs (surrogate path)
    torch.testing.assert_close(ga[-3], gb[-3], atol=1e-10, rtol=0)
    torch.testing.assert_close(ga[-1], gb[-1], atol=1e-10, rtol=0)
    assert float((ga[0] - gb[0]).abs().max()) > 1e-6


def test_dvm_memory_does_not_grow_with_T():
    from training.budget.memory import LiveBytes

    g = sbm(n_nodes=200, seed=1)
    d = graph_data(g)
    peaks = {}
    for mode in ("dvm", "bptt"):
        for steps in (4, 16):
            model = MSGNet(16, 4, 8, layers=2, steps=steps)
            with LiveBytes() as mem:
                model(d.adj, d.x, mode).square().sum().backward()
            peaks[mode, steps] = mem.peak
    assert peaks["dvm", 16] == peaks["dvm", 4]
    assert peaks["bptt", 16] > 2.5 * peaks["bptt", 4] > 2.5 * peaks["dvm", 4]


def test_sbm_edge_densities_match_p_in_and_p_out():
    n, c, p_in, p_out = 600, 3, 0.05, 0.01
    g = sbm(n_nodes=n, n_classes=c, p_in=p_in, p_out=p_out, seed=4)
    same = g.labels[g.edges[:, 0]] == g.labels[g.edges[:, 1]]
    per = n // c
    pairs_in, pairs_out = c * per * (per - 1) / 2, per * per * c * (c - 1) / 2
    for count, pairs, p in ((same.sum(), pairs_in, p_in), ((~same).sum(), pairs_out, p_out)):
        sd = math.sqrt(pairs * p * (1 - p))
        assert abs(count - pairs * p) < 4 * sd, (count, pairs * p, sd)
    assert (g.edges[:, 0] < g.edges[:, 1]).all() and len(np.unique(g.edges, axis=0)) == len(g.edges)
    # class means of the features differ, masks partition the nodes, the seed fixes everything
    assert (g.train_mask.astype(int) + g.val_mask + g.test_mask == 1).all()
    h = sbm(n_nodes=n, n_classes=c, p_in=p_in, p_out=p_out, seed=4)
    assert np.array_equal(g.edges, h.edges) and np.array_equal(g.features, h.features)
    with pytest.raises(NeurosimError, match="p_in"):
        sbm(p_in=1.5)


def _write(tmp_path, edges="0 1\n1 2 # comment\n\n2 3\n", feats="1,2\n3 4\n5,6\n7,8\n", labels="0\n1\n0\n1\n"):
    paths = []
    for name, text in (("e.txt", edges), ("f.csv", feats), ("l.txt", labels)):
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    return paths


def test_loader_reads_user_files(tmp_path):
    g = load_graph(*_write(tmp_path), train_frac=0.25, val_frac=0.25)
    assert g.edges.tolist() == [[0, 1], [1, 2], [2, 3]]
    assert g.features.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]] and g.labels.tolist() == [0, 1, 0, 1]
    a = g.norm_adjacency(F64).to_dense()
    torch.testing.assert_close(a, a.T)
    assert float(a[0, 0]) == pytest.approx(0.5) and float(a[0, 1]) == pytest.approx(1 / math.sqrt(6))


@pytest.mark.parametrize("kw,match", [
    (dict(edges="0 1\n1 x\n"), r"e\.txt:line 2: expected an integer node id"),
    (dict(edges="0 1 2\n"), r"e\.txt:line 1: expected two integer node ids"),
    (dict(edges="0 1\n\n0 9\n"), r"e\.txt:line 3: expected node ids in \[0, 4\)"),
    (dict(edges="0 1\n1 0\n"), r"e\.txt:line 2: edge 1 0 repeats line 1"),
    (dict(edges="2 2\n"), r"e\.txt:line 1: self-loop"),
    (dict(feats="1,2\n3\n5,6\n7,8\n"), r"f\.csv:line 2: expected 2 numbers per row"),
    (dict(feats="1,2\n3,a\n5,6\n7,8\n"), r"f\.csv:line 2: expected numbers .* got 'a'"),
    (dict(feats="1,2\n3,nan\n5,6\n7,8\n"), r"f\.csv:line 2: expected finite numbers"),
    (dict(labels="0\n1\n0\n"), r"l\.txt: expected one label per node: 4 lines"),
    (dict(labels="0\n-1\n0\n1\n"), r"l\.txt:line 2: expected an integer class >= 0"),
    (dict(labels="0\n1.5\n0\n1\n"), r"l\.txt:line 2: expected an integer class"),
    (dict(edges="# only a comment\n"), r"e\.txt: the edges file has no data lines"),
])
def test_loader_errors_name_file_line_and_form(tmp_path, kw, match):
    with pytest.raises(FileFormatError, match=match):
        load_graph(*_write(tmp_path, **kw))


def test_rule_options_are_validated():
    for opts, match in (({"manifold": "torus"}, "manifold: expected one of"), ({"T": 0}, "T: expected a whole"),
                        ({"curvature": -1.0}, "curvature"), ({"baseline": "x"}, "baseline"),
                        ({"beta": 2.0}, "beta"), ({"k_att": 3}, "k_att: not an option of rule msg")):
        with pytest.raises(NeurosimError, match=match):
            Options.parse(opts)


_CLI = ["train", "--task", "sbm", "--rule", "msg", "--hidden", "4", "--lr", "0.01", "--no-progress",
        "--task-option", "n_nodes=60", "--task-option", "n_features=4", "--rule-option", "T=4",
        "--rule-option", "steps=2"]


def test_cli_msg_writes_the_run_files(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_CLI + ["--epochs", "2", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    for name in ("checkpoint.pt", "metrics.csv", "curve.png", "config.json"):
        assert (run / name).stat().st_size > 0
    with open(run / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and {"train_acc", "val_acc", "test_acc", "seconds"} <= set(rows[0])
    best = max(rows, key=lambda r: float(r["val_acc"]))  # the first of equal maxima, as the CLI picks
    assert (f"best validation accuracy {float(best['val_acc']):.3f} at epoch {int(best['epoch'])}: "
            f"test accuracy {float(best['test_acc']):.3f}") in out
    before = (run / "metrics.csv").read_bytes()
    assert main(_CLI + ["--epochs", "2", "--out", str(run), "--resume"]) == 0  # all epochs done: nothing to run
    assert (run / "metrics.csv").read_bytes() == before
    assert main(_CLI + ["--epochs", "2", "--out", str(tmp_path / "b"), "--rule-option", "manifold=x"]) == 2
    assert "manifold: expected one of" in capsys.readouterr().err
    assert main(_CLI[:2] + ["evidence"] + _CLI[3:] + ["--epochs", "1", "--out", str(tmp_path / "c")]) == 2
    assert "trains on sbm, graph" in capsys.readouterr().err


@pytest.mark.parametrize("baseline", ["dvm", "bptt"])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, monkeypatch, baseline):
    import training.runfiles as trainer
    from training.trainer import TrainConfig, train

    config = TrainConfig(task="sbm", rule="msg", epochs=3, hidden=4, lr=0.01,
                         task_options={"n_nodes": 60, "n_features": 4},
                         rule_options={"T": 4, "steps": 2, "baseline": baseline})
    whole = train(config, tmp_path / "whole", progress=False)
    orig = trainer.write_metrics

    def interrupt_after_first_epoch(path, history):
        orig(path, history)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "write_metrics", interrupt_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", progress=False)
    monkeypatch.setattr(trainer, "write_metrics", orig)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["epoch"] == 0
    resumed = train(config, tmp_path / "cut", resume=True, progress=False)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed["history"]) == strip(whole["history"])
    for a, b in zip(whole["model"].state_dict().values(), resumed["model"].state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(NeurosimError, match=r"config: .*--lr [0-9.e-]+ there, 0.02 here"):
        train(TrainConfig(**{**config.__dict__, "lr": 0.02}), tmp_path / "cut", resume=True, progress=False)


def test_graph_task_trains_on_user_files_and_names_missing_options(tmp_path, capsys):
    g = sbm(n_nodes=40, n_features=3, p_in=0.3, p_out=0.05, seed=2)
    (tmp_path / "e.txt").write_text("# i j\n" + "".join(f"{i} {j}\n" for i, j in g.edges))
    (tmp_path / "f.csv").write_text("".join(",".join(repr(float(v)) for v in row) + "\n" for row in g.features))
    (tmp_path / "l.txt").write_text("".join(f"{y}\n" for y in g.labels))
    files = [f"--task-option=edges={tmp_path / 'e.txt'}", f"--task-option=features={tmp_path / 'f.csv'}",
             f"--task-option=labels={tmp_path / 'l.txt'}"]
    base = ["train", "--task", "graph", "--rule", "msg", "--hidden", "4", "--epochs", "1", "--no-progress",
            "--rule-option", "T=3", "--rule-option", "steps=1", "--out", str(tmp_path / "run"), "--overwrite"]
    assert main(base + files) == 0
    loaded = load_graph(tmp_path / "e.txt", tmp_path / "f.csv", tmp_path / "l.txt")
    assert np.array_equal(loaded.edges, g.edges) and np.array_equal(loaded.features, g.features)
    assert main(base + files[:2]) == 2
    assert "needs --task-option labels=PATH" in capsys.readouterr().err

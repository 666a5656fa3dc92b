"""Sparse Attentive Backtracking: the sparsifier against a hand computation, the attention step
against its equations written out, the recompute-window SAB gradient against one autograd graph
(truncated or not), TBPTT against an autograd graph detached every k steps, zero gradient to
unselected microstates, the CLI, option errors and exact resume."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neurosim.cli import main  # noqa: E402
from neurosim.errors import NeurosimError  # noqa: E402
from training.methods.sab import (build_model, forward_graph, gradients, parse_options,  # noqa: E402
                                  sab_backward, tbptt_backward)
from training.methods.sab import trainable_params as _params  # noqa: E402
from training.methods.sab_models import sparsify  # noqa: E402
from training.rules import Batch  # noqa: E402
from training.runfiles import to_batch as _to_batch  # noqa: E402
from training.tasks import make_task  # noqa: E402
from training.trainer import TrainConfig, train  # noqa: E402


def _setup(cell="lstm", T=23, B=3, H=6, seed=0, task="copy", **opts):
    torch.manual_seed(seed)
    t = make_task(task, seed=seed, n_train=B, n_test=2, **({"T": T} if task in ("copy", "adding") else {}))
    o = parse_options(dict(cell=cell, **opts), H)
    model = build_model(o, t.n_in, t.n_out, H, seed=seed).double()
    with torch.no_grad():  # larger random weights than the defaults, so that the spiking cell spikes
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model, _to_batch(t.train, np.arange(B), torch.float64), o


def _grads_of(loss, model):
    return [g if g is not None else torch.zeros_like(p)
            for g, p in zip(torch.autograd.grad(loss, _params(model), allow_unused=True), _params(model))]


def _dot_grads(model):
    out = [p.grad if p.grad is not None else torch.zeros_like(p) for p in _params(model)]
    for p in model.parameters():
        p.grad = None
    return out


def _assert_close(a, b, tol=1e-10):
    assert len(a) == len(b)
    scale = max(float(x.abs().max()) for x in a)
    assert scale > 1e-6  # a gradient that is not trivially zero
    for x, y in zip(a, b):
        assert float((x - y).abs().max()) <= tol * max(scale, 1.0)


# ---------------------------------------------------------------------------------------- sparsifier


def test_topk_sparsifier_keeps_exactly_the_top_k_and_softmaxes_them():
    g = np.random.default_rng(3)
    a = g.normal(size=(5, 9))
    w = sparsify(torch.tensor(a), 3, "topk").numpy()
    for row, wr in zip(a, w):
        top = np.argsort(row)[-3:]
        expect = np.zeros(9)
        expect[top] = np.exp(row[top]) / np.exp(row[top]).sum()
        np.testing.assert_allclose(wr, expect, rtol=0, atol=1e-14)
        assert np.count_nonzero(wr) == 3
    few = sparsify(torch.tensor(a[:, :3]), 5, "topk").numpy()  # M <= k: every microstate, softmax
    np.testing.assert_allclose(few, np.exp(a[:, :3]) / np.exp(a[:, :3]).sum(1, keepdims=True), atol=1e-14)


def test_shift_sparsifier_is_the_reference_rule_with_at_most_k_minus_1_weights():
    g = np.random.default_rng(4)
    a = g.normal(size=(5, 9))
    w = sparsify(torch.tensor(a), 4, "shift").numpy()
    for row, wr in zip(a, w):
        kth = np.sort(row)[-4]
        r = np.maximum(row - kth, 0.0)
        np.testing.assert_allclose(wr, r / (r.sum() + 1e-7), atol=1e-14)
        assert np.count_nonzero(wr) == 3
        assert abs(wr.sum() - 1.0) < 1e-6


def test_attention_step_follows_its_equations():
    """h_t = h~_t + sum_i p^i m^i with p = topk-softmax of w . tanh(W_q h~ + W_k m^i + b_k), written
    out with loops over the microstates, against SABNet.step."""
    model, batch, o = _setup(k_att=1, k_top=2, T=3)
    att = model.attention
    c = model.carry(batch.inputs.shape[1])
    for t in range(4):  # four microstates
        model.step(t, batch.inputs[t], c)
    mems = [m.clone() for m in c.mems]
    h_prev, c_prev = c.state
    h_tilde, _ = model.cell.lstm(batch.inputs[4], (h_prev, c_prev))
    y = model.step(4, batch.inputs[4], c)
    for b in range(batch.inputs.shape[1]):
        s = torch.stack([att.score.weight[0] @ torch.tanh(att.query.weight @ h_tilde[b] + att.key.weight @ m[b]
                                                            + att.key.bias) for m in mems])
        top = torch.argsort(s)[-2:]
        p = torch.exp(s[top]) / torch.exp(s[top]).sum()
        h = h_tilde[b] + sum(p[j] * mems[int(i)][b] for j, i in enumerate(top))
        torch.testing.assert_close(c.state[0][b], h, rtol=0, atol=1e-13)
        torch.testing.assert_close(y[b], model.readout.weight @ h + model.readout.bias, rtol=0, atol=1e-13)


# ---------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("cell", ["lstm", "alif"])
def test_sab_without_truncation_or_sparsity_is_full_bptt(cell):
    """k_trunc >= T and a dense softmax over all microstates: SAB's windowed gradient equals full
    BPTT of the same attention model (one autograd graph), float64."""
    model, batch, o = _setup(cell, T=20, k_trunc=100, k_att=3, sparsifier="none")
    full = _grads_of(forward_graph(model, batch)[0], model)
    sab_backward(model, batch, 100)
    _assert_close(_dot_grads(model), full)


@pytest.mark.parametrize("cell,sparsifier", [("lstm", "topk"), ("lstm", "shift"), ("lif", "topk")])
def test_recomputed_windows_equal_the_reference_graph(cell, sparsifier):
    """memory=recompute (one window's graph at a time) equals the reference scheme (the whole graph
    kept, state detached every k_trunc steps, microstates attached) to 1e-10, float64."""
    model, batch, o = _setup(cell, T=27, k_trunc=4, k_att=3, k_top=3, sparsifier=sparsifier)
    ref = _grads_of(forward_graph(model, batch, 4)[0], model)
    loss, outs = sab_backward(model, batch, 4)
    _assert_close(_dot_grads(model), ref)
    assert abs(loss - float(forward_graph(model, batch)[0].detach())) < 1e-12


def test_tbptt_equals_a_graph_detached_every_k_steps():
    for attention in (0, 1):
        model, batch, o = _setup(T=25, method="tbptt", attention=attention, k_trunc=6, k_att=4)
        g = torch.Generator().manual_seed(1)
        batch = Batch(batch.inputs, batch.targets, torch.rand(batch.steps, generator=g) < 0.5)  # losses everywhere
        c = model.carry(batch.inputs.shape[1])
        loss = 0.0
        for t in range(batch.steps):  # the oracle, written out: detach every 6 steps
            if t % 6 == 0:
                c.state = tuple(s.detach() for s in c.state)
            y = model.step(t, batch.inputs[t], c, detach_mem=True)
            if batch.loss_mask[t]:
                loss = loss + torch.nn.functional.cross_entropy(y, batch.targets[:, t].argmax(1))
        ref = _grads_of(loss / int(batch.loss_mask.sum()), model)
        tbptt_backward(model, batch, 6)
        _assert_close(_dot_grads(model), ref)


def test_gradient_reaches_the_past_only_through_selected_microstates():
    """One step attending over 8 leaf microstates with k_top = 3: exactly the 3 selected get a
    nonzero gradient, the 5 others exactly zero."""
    model, batch, o = _setup(k_top=3, k_att=1000)
    B, H = batch.inputs.shape[1], 6
    leaves = [torch.randn(B, H, dtype=torch.float64, requires_grad=True) for _ in range(8)]
    c = model.carry(B, leaves)
    h_tilde = model.cell.step(batch.inputs[0], c.state)[0]
    sel = model.attention.weights(h_tilde, c.key) > 0
    y = model.step(0, batch.inputs[0], c)
    grads = torch.autograd.grad(y.square().sum(), leaves)
    for i, g in enumerate(grads):
        for b in range(B):
            assert bool(g[b].abs().max() > 0) == bool(sel[b, i])
    assert int(sel.sum()) == 3 * B


def test_sab_carries_credit_past_the_truncation_and_tbptt_does_not():
    """Gradient of the recall loss with respect to the first input step (T = 40, k_trunc = 5):
    exactly zero for TBPTT, nonzero for SAB (through the skip connections), as for full BPTT."""
    model, batch, o = _setup(T=40, k_trunc=5, k_att=5)
    x = batch.inputs.clone().requires_grad_()
    b = Batch(x, batch.targets, batch.loss_mask)
    first = {}
    for name, k, detach in (("bptt", None, False), ("tbptt", 5, True), ("sab", 5, False)):
        (gx,) = torch.autograd.grad(forward_graph(model, b, k, detach_mem=detach)[0], x)
        first[name] = float(gx[:5].abs().max())
    assert first["tbptt"] == 0.0 and first["sab"] > 1e-8 and first["bptt"] > 1e-8


# ---------------------------------------------------------------------------------------- CLI and runs


def _cfg(**kw):
    base = dict(task="copy", rule="sab", epochs=2, batch_size=8, lr=3e-3, hidden=8, n_train=16, n_test=8,
                task_options={"T": 6, "n_copy": 3, "n_symbols": 3}, rule_options={"k_trunc": 3, "k_att": 2, "k_top": 2})
    base.update(kw)
    return TrainConfig(**base)


def test_cli_trains_sab_on_copy_and_writes_the_run_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "copy", "--rule", "sab", "--task-option", "T=6", "--task-option", "n_copy=3",
                 "--rule-option", "k_trunc=3", "--rule-option", "k_att=2", "--rule-option", "cell=lif",
                 "--epochs", "1", "--hidden", "8", "--n-train", "16", "--n-test", "8", "--batch-size", "8",
                 "--no-progress", "--out", str(out)]) == 0
    for f in ("config.json", "checkpoint.pt", "metrics.csv", "curve.png"):
        assert (out / f).stat().st_size > 0
    assert "model.h5" not in capsys.readouterr().out  # the CLI names the files this method writes
    rows = np.genfromtxt(out / "metrics.csv", delimiter=",", names=True)
    assert 0.0 <= float(rows["test_acc"]) <= 1.0


@pytest.mark.parametrize("option,needle", [("k_top=0", "k_top=0: expected a whole number >= 1"),
                                           ("method=rtrl", "method='rtrl': expected one of sab, bptt, tbptt"),
                                           ("k_window=3", "k_window: not an option of rule sab"),
                                           ("attention=0", "attention=0: method sab backtracks"),
                                           ("sparsifier=max", "sparsifier='max': expected one of topk")])
def test_cli_bad_rule_options_give_one_clear_line(tmp_path, capsys, option, needle):
    assert main(["train", "--task", "copy", "--rule", "sab", "--rule-option", option, "--no-progress",
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert main(["train", "--task", "evidence", "--rule", "sab", "--out", str(tmp_path / "y")]) == 2
    assert "trains on copy, adding, digits" in capsys.readouterr().err


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, monkeypatch):
    import training.runfiles as trainer

    straight = train(_cfg(), tmp_path / "a", progress=False)
    real = trainer.write_metrics

    def stop(path, history):  # interrupt right after the first epoch's checkpoint
        real(path, history)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "write_metrics", stop)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(), tmp_path / "c", progress=False)
    monkeypatch.setattr(trainer, "write_metrics", real)
    resumed = train(_cfg(), tmp_path / "c", resume=True, progress=False)
    for k, p in straight["model"].state_dict().items():
        assert torch.equal(p, resumed["model"].state_dict()[k]), k
    assert [r["train_loss"] for r in straight["history"]] == [r["train_loss"] for r in resumed["history"]]
    with pytest.raises(NeurosimError, match=r"config: .*--lr [0-9.e-]+ there, 0.1 here"):
        train(_cfg(lr=0.1), tmp_path / "c", resume=True, progress=False)
    (tmp_path / "c" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(NeurosimError, match="not a readable neurosim checkpoint"):
        train(_cfg(), tmp_path / "c", resume=True, progress=False)


@pytest.mark.parametrize("task,method", [("adding", "tbptt"), ("digits", "bptt")])
def test_other_tasks_and_methods_run(tmp_path, task, method):
    kw = dict(task=task, epochs=1, n_train=16, n_test=10, rule_options={"method": method, "k_trunc": 4},
              task_options={"T": 8} if task == "adding" else {"row_steps": 2})
    res = train(_cfg(**kw), tmp_path, progress=False)
    assert np.isfinite(res["history"][0]["train_loss"]) and 0.0 <= res["history"][0]["test_acc"] <= 1.0


def test_gradients_dispatch_matches_the_method():
    model, batch, o = _setup(T=12, k_trunc=4, k_att=3, memory="graph")
    gradients(model, batch, o)
    ref_graph = _dot_grads(model)
    gradients(model, batch, dict(o, memory="recompute"))
    _assert_close(_dot_grads(model), ref_graph)


def test_recomputed_windows_hold_less_memory_than_the_reference_graph():
    """Peak tensor bytes of one gradient (LiveBytes): the recompute scheme keeps one window's graph,
    the reference scheme the whole sequence's; at T = 50, k_trunc = 5 the former is several times smaller."""
    from training.budget.memory import LiveBytes

    model, batch, o = _setup(T=50, H=8, k_trunc=5, k_att=5)
    peaks = {}
    for memory in ("graph", "recompute"):
        with LiveBytes() as mem:
            gradients(model, batch, dict(o, memory=memory))
        peaks[memory] = mem.peak
    assert peaks["recompute"] * 3 < peaks["graph"], peaks

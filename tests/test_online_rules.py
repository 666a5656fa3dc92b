"""Online and rate-based rules (OTTT, e-prop, rate-based BP) against autograd and BPTT, float64.

References are independent of the rules' code: full BPTT of the SNN module (whose step is
neuron_step), autograd through probes added to the spikes, autograd of the mean rate with
respect to the bias, and neurosim's NumPy simulator (the convolutional models: tests/test_layered.py).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neurosim import ALIF, LI, LIF, Network, Population, Projection, SpikeInput  # noqa: E402
from neurosim.cli import main  # noqa: E402
from neurosim.errors import NetworkError  # noqa: E402
from training.rules.eprop import EligibilityTraces, EProp  # noqa: E402
from training.layers import from_network  # noqa: E402
from training.nets import recurrent_network  # noqa: E402
from training.rules.local import LocalView, psi, step_with_u  # noqa: E402
from training.rules.ottt import OTTT  # noqa: E402
from training.rules.ratebp import RateBP, RateEligibility  # noqa: E402
from training.rules import Batch, Objective, make_rule  # noqa: E402

F64 = torch.float64


def _batch(T=50, B=3, n_in=8, seed=0, p=0.25, window=15):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, n_in, generator=g, dtype=F64) < p).to(F64)
    return Batch(x, torch.tensor([0, 1, 2, 1])[:B], torch.arange(T) >= T - window)


def _model(net, surrogate="fast_sigmoid"):
    return from_network(net, surrogate=surrogate, dtype=F64)


def _grads(net, rule, batch, surrogate="fast_sigmoid"):
    m = _model(net, surrogate)
    out = rule.backward(m, batch)
    return out, {k: p.grad.clone() for k, p in m.weights.items()}


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def _rich_net(seed=3, n=20):
    """ALIF with a synaptic current, refractoriness, reset to zero, half the neurons adaptive,
    a recurrent projection of delay 2 and a readout with a current."""
    rng = np.random.default_rng(seed)
    hid = ALIF(beta=0.9, alpha=0.6, rho=0.95, adapt=np.where(np.arange(n) < n // 2, 1.5, 0.0), adapt_gain=0.3,
               refractory=2, reset="zero", gain=1.3)
    return Network(dt=1e-3, inputs=[SpikeInput("in", 8)],
                   populations=[Population("hidden", n, hid), Population("out", 3, LI(beta=0.8, alpha=0.3))],
                   projections=[Projection("in_hidden", "in", "hidden", rng.normal(0, 0.8, (8, n))),
                                Projection("hidden_hidden", "hidden", "hidden", rng.normal(0, 0.3, (n, n)), delay=2),
                                Projection("hidden_out", "hidden", "out", rng.normal(0, 0.3, (n, 3)))])


NETS = {
    "lif": lambda: recurrent_network(8, 24, 3, model="lif", seed=2),
    "alif": lambda: recurrent_network(8, 24, 3, model="alif", seed=2),
    "rich": _rich_net,
}


def test_step_with_u_is_the_model_step():
    for make in NETS.values():
        m = _model(make())
        b = _batch()
        s1 = s2 = m.initial_state(3)
        with torch.no_grad():
            for t in range(b.steps):
                prev = s2
                s1 = m.step(s1, b.inputs[t])
                s2, u = step_with_u(m, s2, b.inputs[t])
                assert all(torch.equal(x, y) for x, y in zip(s1.neurons, s2.neurons))
                assert all(torch.equal(x, y) for x, y in zip(s1.history, s2.history))
                assert torch.equal(s2.neurons.z, (u > 0).to(F64) * (prev.neurons.r <= 0) * m.p_spiking)


# ----------------------------------------------------------------------------------- OTTT


def _bptt_detached_reset(net, batch):
    """BPTT with the reset's gradient removed: v + theta*(z - z.detach()) has v's value and
    cancels the reset path (subtractive reset)."""
    m = _model(net)
    step = m.step

    def detached(state, src):
        s = step(state, src)
        z = s.neurons.z
        return s._replace(neurons=s.neurons._replace(v=s.neurons.v + m.p_theta * (z - z.detach())))

    m.step = detached
    make_rule("bptt").backward(m, batch)
    return {k: p.grad.clone() for k, p in m.weights.items()}


def _layered_net(seed=1):
    """in -> h1 (LIF with a current) -> h2 (memoryless LIF) -> out (memoryless LI): OTTT's
    spatial-only error then misses nothing but the reset."""
    rng = np.random.default_rng(seed)
    return Network(dt=1e-3, inputs=[SpikeInput("in", 8)],
                   populations=[Population("h1", 24, LIF(beta=0.9, alpha=0.5)), Population("h2", 16, LIF(beta=0.0)),
                                Population("out", 3, LI(beta=0.0))],
                   projections=[Projection("in_h1", "in", "h1", rng.normal(0, 0.6, (8, 24))),
                                Projection("h1_h2", "h1", "h2", rng.normal(0, 0.9, (24, 16))),
                                Projection("h2_out", "h2", "out", rng.normal(0, 0.3, (16, 3)))])


def test_ottt_equals_bptt_without_reset_when_no_temporal_path_is_dropped():
    """Feed-forward LIF layers (lags 2, 1, 0), memoryless downstream: OTTT's trace
    ``a = beta a + alpha-filtered z_pre`` carries every remaining temporal path exactly."""
    net, b = _layered_net(), _batch()
    _, g = _grads(net, OTTT(), b)
    ref = _bptt_detached_reset(net, b)
    assert LocalView(_model(net)).lag == {"out": 0, "h2": 1, "h1": 2}
    for k in ref:
        assert ref[k].norm() > 0
        assert _rel(g[k], ref[k]) < 1e-10, k


@pytest.mark.parametrize("model", ["lif", "alif"])
def test_ottt_readout_is_exact_and_hidden_is_an_approximation(model):
    net, b = NETS[model](), _batch()
    ref_out, ref = _grads(net, make_rule("bptt"), b)
    out, g = _grads(net, OTTT(), b)
    assert out.loss == pytest.approx(ref_out.loss, rel=1e-14)
    torch.testing.assert_close(out.readout, ref_out.readout, rtol=0, atol=0)
    assert _rel(g["hidden_out"], ref["hidden_out"]) < 1e-12
    cos = torch.nn.functional.cosine_similarity(g["in_hidden"].flatten(), ref["in_hidden"].flatten(), 0)
    assert 0.1 < cos < 0.999  # an approximation that still points the right way


def _live_bytes():
    from training.budget.memory import LiveBytes

    return LiveBytes


def test_memory_does_not_grow_with_T():
    """Peak live tensor bytes of one iteration at T = 40 and T = 400 (same loss window, the
    batch's own storages excluded): no graph or per-step state survives a step (rate-based
    BP buffers 32 steps of the surrogate's argument, fewer than T here). BPTT's
    peak grows about tenfold (the tracker works)."""
    LiveBytes = _live_bytes()
    net = recurrent_network(8, 16, 3, model="alif", seed=0)
    peaks = {}
    for name in ("ottt", "eprop", "ratebp", "bptt"):
        for T in (40, 400):
            m = from_network(net)
            b = _batch(T=T, B=2, window=10)
            b = Batch(b.inputs.float(), b.targets, b.loss_mask)
            with LiveBytes() as mem:  # the batch's storages exist before: indexing them counts nothing
                make_rule(name).backward(m, b)
            peaks[name, T] = mem.peak
    for name in ("ottt", "eprop", "ratebp"):
        assert peaks[name, 400] <= 1.02 * peaks[name, 40], (name, peaks)
    assert peaks["bptt", 400] > 5 * peaks["bptt", 40], peaks


def test_ottt_update_every_step():
    net = recurrent_network(8, 24, 3, model="alif", seed=2)
    with pytest.raises(NetworkError, match="optimizer"):
        OTTT("step").backward(_model(net), _batch())
    # one step with a loss: stepping after it is the same as accumulating then stepping once
    b1 = _batch(window=1)
    m_seq, m_step = _model(net), _model(net)
    OTTT().backward(m_seq, b1)
    torch.optim.SGD(m_seq.parameters(), lr=0.5).step()
    rule = OTTT("step")
    opt = torch.optim.SGD(m_step.parameters(), lr=0.5)
    calls = []
    orig = opt.step
    opt.step = lambda: calls.append(1) or orig()
    rule.bind(opt)
    rule.backward(m_step, b1)
    assert len(calls) == 1
    for k in m_seq.weights:
        torch.testing.assert_close(m_step.weights[k], m_seq.weights[k], rtol=0, atol=1e-15)
    # fifteen steps with a loss: fifteen updates, each step's forward sees the weights updated so far
    b = _batch()
    m_a, m_b = _model(net), _model(net)
    OTTT().backward(m_a, b)
    torch.optim.SGD(m_a.parameters(), lr=0.5).step()
    opt = torch.optim.SGD(m_b.parameters(), lr=0.5)
    calls.clear()
    orig = opt.step
    opt.step = lambda: calls.append(1) or orig()
    rule.bind(opt)
    out = rule.backward(m_b, b)
    assert len(calls) == 15
    assert _rel(m_b.weights["hidden_out"].detach(), m_a.weights["hidden_out"].detach()) > 1e-6
    assert out.readout.shape == (3, 3)


# ----------------------------------------------------------------------------------- e-prop


def _learning_signals(net, batch, surrogate, where):
    """dE/dz_j[t] by autograd through probes. where='total': every path of z[t] except the
    neuron's own adaptation (a probe inside the spike function reaches reset, transmission and
    adaptation; a second probe on the carried z isolates adaptation, which is subtracted).
    where='readout': the transmitted spikes only (a probe on the history)."""
    m = _model(net, surrogate)
    T, B, N = batch.steps, batch.inputs.shape[1], m.n_neurons
    P = [torch.zeros(B, N, dtype=F64, requires_grad=True) for _ in range(T)]
    Q = [torch.zeros(B, N, dtype=F64, requires_grad=True) for _ in range(T)]
    now = [0]
    spike = m.spike_fn
    if where == "total":
        m.spike_fn = lambda u: spike(u) + P[now[0]]
    obj, s, total = Objective(m, batch), m.initial_state(B), 0.0
    for t in range(T):
        now[0] = t
        s = m.step(s, batch.inputs[t])
        if where == "total":
            s = s._replace(neurons=s.neurons._replace(z=s.neurons.z + Q[t]))
        else:
            h = s.history[0]
            s = s._replace(history=(torch.cat([h[:, :N] + Q[t], h[:, N:]], 1),) + s.history[1:])
        total = total + obj(s, t)
    g = torch.autograd.grad(total, P + Q, allow_unused=True)
    g = [x if x is not None else torch.zeros(B, N, dtype=F64) for x in g]
    return [g[t] - g[T + t] for t in range(T)] if where == "total" else g[T:]


def _factorised(net, batch, signals, surrogate):
    """sum_t L_j[t] e_ji[t] with the rule's eligibility traces."""
    m = _model(net, surrogate)
    view = LocalView(m)
    traces = EligibilityTraces(view, "hidden")
    grads = {r.name: 0.0 for r in traces.routes}
    s = m.initial_state(batch.inputs.shape[1])
    with torch.no_grad():
        for t in range(batch.steps):
            prev = s
            s, u = step_with_u(m, prev, batch.inputs[t])
            traces.update(prev, psi(m, u, prev.neurons))
            L = signals[t][:, view.slices["hidden"]]
            for name in grads:
                grads[name] = grads[name] + torch.einsum("bj,bij->ij", L, traces.e(name))
    return grads


@pytest.mark.parametrize("net_name,surrogate", [("lif", "fast_sigmoid"), ("alif", "fast_sigmoid"),
                                                ("alif", "triangle"), ("rich", "atan")])
def test_eprop_factorisation_with_the_total_learning_signal_is_bptt(net_name, surrogate):
    """Bellec et al. 2020, eq. 1: dE/dW_ji = sum_t dE/dz_j[t] e_ji[t] with dE/dz the total
    derivative; recurrent and input weights, to 1e-10 relative."""
    net, b = NETS[net_name](), _batch()
    _, ref = _grads(net, make_rule("bptt"), b, surrogate)
    got = _factorised(net, b, _learning_signals(net, b, surrogate, "total"), surrogate)
    assert set(got) == {"in_hidden", "hidden_hidden"}
    for k, g in got.items():
        assert ref[k].norm() > 0
        assert _rel(g, ref[k]) < 1e-10, k


@pytest.mark.parametrize("model", ["lif", "alif"])
def test_eprop_online_signal_is_the_readout_path_of_dE_dz(model):
    """Online e-prop (symmetric feedback, eligibility filtered by the readout kernel) equals the
    factorisation with dE/dz through the readout only; the readout's rule is BPTT's gradient."""
    net, b = recurrent_network(8, 24, 3, model=model, recurrent=False, seed=2), _batch()
    out, g = _grads(net, EProp(), b)
    ref_out, ref = _grads(net, make_rule("bptt"), b)
    fact = _factorised(net, b, _learning_signals(net, b, "fast_sigmoid", "readout"), "fast_sigmoid")
    assert _rel(g["in_hidden"], fact["in_hidden"]) < 1e-10
    assert _rel(g["hidden_out"], ref["hidden_out"]) < 1e-12
    assert _rel(g["in_hidden"], ref["in_hidden"]) > 0.05  # the reset path is not in e-prop's signal
    assert out.loss == pytest.approx(ref_out.loss, rel=1e-14)


def test_eprop_random_feedback_is_fixed_and_seeded():
    net, b = NETS["alif"](), _batch()
    rule = EProp("random", seed=4)
    _, g1 = _grads(net, rule, b)
    _, g2 = _grads(net, rule, b)
    _, g3 = _grads(net, EProp("random", seed=4), b)
    _, g4 = _grads(net, EProp("random", seed=5), b)
    _, gs = _grads(net, EProp("symmetric"), b)
    for k in g1:
        torch.testing.assert_close(g1[k], g2[k], rtol=0, atol=0)
        torch.testing.assert_close(g1[k], g3[k], rtol=0, atol=0)
    assert _rel(g1["in_hidden"], g4["in_hidden"]) > 0.1 and _rel(g1["in_hidden"], gs["in_hidden"]) > 0.1
    torch.testing.assert_close(g1["hidden_out"], gs["hidden_out"], rtol=0, atol=0)  # readout: its own rule
    B = rule.feedback_matrix(LocalView(_model(net)).routes_into("out")[0])
    assert B.shape == (24, 3) and abs(float(B.std()) - 24 ** -0.5) < 0.1


# ----------------------------------------------------------------------------------- rate-based BP


@pytest.mark.parametrize("hidden", ["rich", "alif_ff", "lif_ff"])
def test_rate_eligibility_is_dr_dbias(hidden):
    """e_j = d(mean_t z_j)/d(constant input shift): autograd of the mean rate with respect to the
    bias (which enters every step as x does) of a population without recurrence."""
    rng = np.random.default_rng(5)
    model = {"rich": _rich_net().populations[0].model, "alif_ff": ALIF(beta=0.9, rho=0.95, adapt=1.0, adapt_gain=0.2),
             "lif_ff": LIF(beta=0.85, alpha=0.4)}[hidden]
    net = Network(dt=1e-3, inputs=[SpikeInput("in", 8)],
                  populations=[Population("hidden", 20, model), Population("out", 3, LI(beta=0.8))],
                  projections=[Projection("in_hidden", "in", "hidden", rng.normal(0, 0.8, (8, 20))),
                               Projection("hidden_out", "hidden", "out", rng.normal(0, 0.3, (20, 3)))])
    b = _batch()
    m = _model(net)
    m.p_bias.requires_grad_(True)
    s, rate = m.initial_state(3), 0.0
    for t in range(b.steps):
        s = m.step(s, b.inputs[t])
        rate = rate + s.neurons.z / b.steps
    c = torch.randn(rate.shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    (ref,) = torch.autograd.grad((rate * c).sum(), m.p_bias)
    m2, s = _model(net), None
    elig = RateEligibility(m2)
    s = m2.initial_state(3)
    with torch.no_grad():
        for t in range(b.steps):
            prev = s
            s, u = step_with_u(m2, prev, b.inputs[t])
            elig.update(prev, s, u)
    got = (elig.eligibility() * c).sum(0)
    assert ref[:20].norm() > 0
    assert _rel(got[:20], ref[:20]) < 1e-10


def test_ratebp_gradient_is_the_time_averaged_chain_rule():
    """Two feed-forward layers: grad W_in_h1 = hbar_in^T (e1 * (((e2 * D W_out^T) W_12^T)) with D =
    sum_t c[t] dl_t/dv_out[t], c[t] = (1 - beta^(t-d+1)) / (1 - beta) for the LI readout."""
    rng = np.random.default_rng(2)
    beta = 0.8
    net = Network(dt=1e-3, inputs=[SpikeInput("in", 8)],
                  populations=[Population("h1", 20, LIF(beta=0.9)), Population("h2", 12, ALIF(beta=0.85, adapt=0.5)),
                               Population("out", 3, LI(beta=beta))],
                  projections=[Projection("in_h1", "in", "h1", rng.normal(0, 1.0, (8, 20))),
                               Projection("h1_h2", "h1", "h2", rng.normal(0, 0.8, (20, 12))),
                               Projection("h2_out", "h2", "out", rng.normal(0, 0.3, (12, 3)))])
    b = _batch(T=40)
    _, g = _grads(net, RateBP(), b)
    _, ref = _grads(net, make_rule("bptt"), b)
    assert _rel(g["h2_out"], ref["h2_out"]) < 1e-12
    m = _model(net)  # independent pieces: rates, eligibilities, mean input, readout errors
    obj, s, T = Objective(m, b), m.initial_state(3), b.steps
    sl = {k: slice(*v) for k, v in m.slices.items()}
    m.p_bias.requires_grad_(True)
    rate, hbar, D = 0.0, 0.0, 0.0
    for t in range(T):
        hbar = hbar + s.history[0].detach() / T  # mean presynaptic activity (delay 1)
        s = m.step(s, b.inputs[t])
        rate = rate + s.neurons.z / T
        if b.loss_mask[t]:
            v = s.neurons.v.detach().requires_grad_(True)
            (dv,) = torch.autograd.grad(obj(s._replace(neurons=s.neurons._replace(v=v)), t), v)
            D = D + (1 - beta ** t) / (1 - beta) * dv[:, sl["out"]]  # delay 1
    # e of a population without recurrence: d rate / d bias, per trial (sum over a one-hot batch)
    e = {p: torch.stack([torch.autograd.grad(rate[i, sl[p]].sum(), m.p_bias, retain_graph=True)[0][sl[p]]
                         for i in range(3)]) for p in ("h1", "h2")}
    w = {k: p.detach() for k, p in m.weights.items()}
    d_h2 = e["h2"] * (D @ w["h2_out"].T)
    d_h1 = e["h1"] * (d_h2 @ w["h1_h2"].T)
    assert _rel(g["h1_h2"], hbar[:, sl["h1"]].T @ d_h2) < 1e-10
    assert _rel(g["in_h1"], hbar[:, sl["in"]].T @ d_h1) < 1e-10


# ----------------------------------------------------------------------------------- interface


def test_make_rule_and_cli_options():
    for kw, field in [(dict(name="ottt", update="often"), "update"), (dict(name="eprop", feedback="none"), "feedback")]:
        with pytest.raises(NetworkError) as exc:
            make_rule(**kw)
        assert exc.value.field == field
    with pytest.raises(NetworkError, match="ratebp"):
        make_rule("rtrl")
    assert [make_rule(n).name for n in ("ottt", "eprop", "ratebp")] == ["ottt", "eprop", "ratebp"]


@pytest.mark.parametrize("args", [["--rule", "ottt", "--update", "step"],
                                  ["--rule", "eprop", "--feedback", "random", "--adapt", "35"], ["--rule", "ratebp"]])
def test_cli_trains_with_online_rules(tmp_path, args):
    import neurosim as ns

    out = tmp_path / "run"
    assert main(["train", "--task", "digits", *args, "--epochs", "1", "--hidden", "8", "--n-train", "32",
                 "--n-test", "16", "--no-progress", "--out", str(out)]) == 0
    hidden = ns.load(out / "model.h5").population("hidden")
    assert hidden.size == 8
    assert float(np.max(hidden.model.adapt)) == (35.0 if "--adapt" in args else 1.8)


def test_cli_rejects_options_of_other_rules(tmp_path, capsys):
    assert main(["train", "--task", "digits", "--update", "step", "--out", str(tmp_path)]) == 2
    assert "--update" in capsys.readouterr().err
    assert main(["train", "--task", "digits", "--rule", "ottt", "--feedback", "random", "--out", str(tmp_path)]) == 2
    assert "--feedback" in capsys.readouterr().err
    assert main(["train", "--task", "evidence", "--rule", "eprop", "--adapt", "-1", "--out", str(tmp_path)]) == 2
    assert "--adapt" in capsys.readouterr().err

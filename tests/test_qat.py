"""Quantisation-aware training (`neurosim train --quantize loihi`, training.quantized): the torch
integer step equals neurosim.fixed_point.neuron_step_fixed integer for integer, the weight
quantiser equals quantize's, a trained model's forward spikes are those of its exported network
in simulate_fixed and Lava fixed_pt, gradients pass straight through (equal to the float
gradient of the dequantised network where no spike intervenes), and the CLI flag trains, resumes
and refuses what it cannot run."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import neurosim as ns  # noqa: E402
from neurosim.cli import main  # noqa: E402
from neurosim.errors import BackendUnavailable, NeurosimError  # noqa: E402
from neurosim.fixed_point import (FixedPointNetwork, FixedPopulation, FixedState, dequantize, neuron_step_fixed,  # noqa: E402
                                  quantize, simulate_fixed)
from training.layers import from_network  # noqa: E402
from training.nets import recurrent_network  # noqa: E402
from training.quantized import QuantizedLayeredSNN, QuantizedSNN, fixed_params, neuron_step_fixed_torch  # noqa: E402
from training.rules import Batch, make_rule  # noqa: E402
from training.surrogate import make_spike_fn  # noqa: E402

CASES = [("lif", "zero", 0), ("lif", "subtract", 0), ("lif", "subtract", 3), ("alif", "subtract", 0),
         ("alif", "zero", 2), ("li", "zero", 0)]


def _population(kind: str, reset: str, refractory: int, n: int, rng) -> FixedPopulation:
    """Random parameters; for ALIF the first 16 neurons keep a (drho = 0) and raise it (adapt_inc > 0)."""
    alif = kind == "alif"
    drho, inc = rng.integers(0, 4097, n), rng.integers(-2 ** 15, 2 ** 15, n)
    drho[:16], inc[:16] = 0, np.abs(inc[:16]) + 1
    return FixedPopulation(
        "p", n, du=rng.integers(0, 4096, n), dv=rng.integers(0, 4097, n), vth=rng.integers(1, 2 ** 12, n),
        bias_mant=rng.integers(-4096, 4096, n), bias_exp=rng.integers(0, 8, n), u0=0, v0=0,
        scale=rng.uniform(1e3, 2e5, n), kind=kind, reset=reset, refractory=rng.integers(0, refractory + 1, n),
        drho=drho if alif else 0, adapt_inc=inc if alif else 0,
        adapt_mant=rng.integers(-2 ** 15, 2 ** 15, n) if alif else 0, adapt_shift=7 if alif else 0,
        a_exp=5 if alif else 0)


@pytest.mark.parametrize("kind,reset,refractory", CASES)
def test_torch_integer_step_equals_neuron_step_fixed(kind, reset, refractory):
    """Random integer states, parameters and inputs (large enough to wrap u and clip v and a):
    12 chained steps of both implementations agree exactly in u, v, a, z and r."""
    rng = np.random.default_rng(hash((kind, reset, refractory)) % 2 ** 32)
    n, b = 64, 5
    pop = _population(kind, reset, refractory, n, rng)
    params = fixed_params(FixedPointNetwork(1e-3, (pop,), ()))
    lim = 2 ** 23 - 1
    s_np = FixedState(rng.integers(-lim, lim, (b, n)), rng.integers(-lim, lim, (b, n)),
                      rng.integers(-lim, lim, (b, n)) if kind == "alif" else np.zeros((b, n), np.int64),
                      rng.integers(0, 2, (b, n)) * pop.spiking, rng.integers(0, refractory + 1, (b, n)))
    if kind == "alif":  # near the top of the 24-bit range: a spike clips a
        s_np.a[:, :16] = lim - rng.integers(0, 2 ** 10, (b, 16))
    s_t = FixedState(*(torch.as_tensor(x, dtype=torch.float64) for x in s_np))
    counters = {"u_wraps": 0, "v_clips": 0, "a_clips": 0}
    spike = make_spike_fn("fast_sigmoid")
    for t in range(12):
        a_in = rng.integers(-2 ** 27, 2 ** 27, (b, n)) if t % 3 == 0 else rng.integers(-2 ** 12, 2 ** 12, (b, n))
        s_np = neuron_step_fixed(pop, s_np, a_in, counters)
        s_t = neuron_step_fixed_torch(params, s_t, torch.as_tensor(a_in, dtype=torch.float64), spike)
        for name, x_np, x_t in zip(FixedState._fields, s_np, s_t):
            assert np.array_equal(x_np, x_t.numpy().astype(np.int64)), (name, t)
            assert np.array_equal(x_t.numpy(), np.round(x_t.numpy())), name
    assert counters["u_wraps"] > 0 and counters["v_clips"] > 0  # the wrap and clip paths ran
    if kind == "alif":
        assert counters["a_clips"] > 0


def _mixed_network(seed: int = 0) -> ns.Network:
    """in -> hidden (ALIF, subtract) <-> hidden, hidden -> out (LI): one excitatory, one
    inhibitory, one mixed projection with weights of very different sizes, and a sparse one."""
    rng = np.random.default_rng(seed)
    hidden = ns.ALIF.from_tau(1e-3, tau_mem=20e-3, tau_adapt=200e-3, adapt=np.where(np.arange(12) < 6, 1.8, 0.0),
                              theta=rng.uniform(0.5, 1.5, 12))
    mask = rng.random((12, 12)) < 0.3
    np.fill_diagonal(mask, False)
    rows, cols = np.nonzero(mask)
    rec = ns.CSR.from_coo(rows, cols, -rng.uniform(0.001, 0.2, rows.size), (12, 12))
    return ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", 10)],
                      populations=[ns.Population("hidden", 12, hidden),
                                   ns.Population("out", 3, ns.LI.from_tau(1e-3, tau_mem=20e-3))],
                      projections=[ns.Projection("in_hidden", "in", "hidden", rng.uniform(0, 3.0, (10, 12))),
                                   ns.Projection("rec", "hidden", "hidden", rec, delay=2),
                                   ns.Projection("hidden_out", "hidden", "out", rng.normal(0, 0.01, (12, 3)))])


def test_weight_quantiser_equals_quantize():
    net = _mixed_network()
    model = QuantizedSNN(net)
    fixed = quantize(net)
    got = model.quantized_weights()
    modes = set()
    for q in fixed.projections:
        assert got[q.name].exponent == q.weight_exp, q.name
        assert got[q.name].mode == q.sign_mode, q.name
        assert np.array_equal(got[q.name].mantissas.numpy().astype(np.int64), q.effective_weights), q.name
        modes.add(q.sign_mode)
    assert modes == {"excitatory", "inhibitory", "mixed"}
    assert min(q.weight_exp for q in fixed.projections) < 0 < max(q.weight_exp for q in fixed.projections)


def _batch(rng, steps: int, batch: int, n_in: int, n_out: int) -> Batch:
    x = torch.as_tensor(rng.random((steps, batch, n_in)) < 0.15, dtype=torch.float64)
    mask = torch.zeros(steps, dtype=torch.bool)
    mask[-10:] = True
    return Batch(x, torch.as_tensor(rng.integers(0, n_out, batch)), mask)


def _trained(net: ns.Network, seed: int = 0, updates: int = 3, rule: str = "bptt", **kw) -> QuantizedSNN:
    rng = np.random.default_rng(seed)
    model = QuantizedSNN(net)
    before = {k: w.detach().clone() for k, w in model.weights.items()}
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    r = make_rule(rule, **kw)
    for _ in range(updates):
        opt.zero_grad()
        r.backward(model, _batch(rng, 30, 8, net.inputs[0].size, net.population("out").size))
        opt.step()
    assert all(not torch.equal(before[k], w) for k, w in model.weights.items())  # it did train
    return model


NETS = {
    "alif_subtract_li": lambda: recurrent_network(10, 16, 3, model="alif", seed=3),
    "lif_zero_lif": lambda: recurrent_network(10, 16, 3, model="lif", reset="zero", readout="lif", seed=4),
    "mixed_sparse_delay2": _mixed_network,
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_trained_forward_equals_the_exported_fixed_point_run(name):
    """A model trained with QAT: its forward spikes (every step, neuron and population) and the
    readout's integer v are those of quantize(model.to_network()) in simulate_fixed."""
    model = _trained(NETS[name](), rule="tbptt" if name == "lif_zero_lif" else "bptt",
                     **({"k": 15} if name == "lif_zero_lif" else {}))
    rng = np.random.default_rng(7)
    x = rng.random((60, 6, 10)) < 0.15
    with torch.no_grad():
        out, _ = model({"in": torch.as_tensor(x, dtype=torch.float64)}, record=("z", "v"))
    fixed = quantize(model.to_network())
    res = simulate_fixed(fixed, {"in": x}, 60, traces={"out": ["v_int"]})
    n_spikes = 0
    for pop in fixed.populations:
        z = res.spikes[pop.name].dense()
        assert np.array_equal(z, out[pop.name]["z"].numpy().astype(bool)), pop.name
        n_spikes += int(z.sum())
    assert n_spikes > 100
    v_int = np.round(out["out"]["v"].numpy() * fixed.population("out").scale)
    assert np.array_equal(v_int, res.traces["out"]["v_int"])


@pytest.mark.slow  # Lava starts its runtime processes
def test_lava_fixed_pt_equals_the_trained_forward():
    """One trial of a QAT-trained ALIF network in Lava fixed_pt (mapping.lava_export, custom integer
    process) gives the QAT forward's spikes bit for bit."""
    from mapping.lava_compat import import_lava
    from mapping.lava_export import run_lava

    try:
        import_lava()
    except BackendUnavailable as exc:
        pytest.skip(f"Lava unavailable: {exc}")
    model = _trained(recurrent_network(10, 12, 2, model="alif", seed=5), updates=3)
    x = np.random.default_rng(8).random((40, 1, 10)) < 0.2
    with torch.no_grad():
        out, _ = model({"in": torch.as_tensor(x, dtype=torch.float64)}, record=("z",))
    res = run_lava(model.to_network(), {"in": x}, 40, mode="fixed_pt")
    total = 0
    for pop in ("hidden", "out"):
        z = res.spikes[pop].dense()
        assert np.array_equal(z, out[pop]["z"].numpy().astype(bool)), pop
        total += int(z.sum())
    assert total > 20


def test_gradients_pass_straight_through():
    """Through spikes: every weight gets a finite, non-zero gradient. Without spikes (input ->
    LI readout), the straight-through gradient is exactly the float64 gradient of the
    dequantised network (the integer step's decays are (4095 - du)/4096 and (4096 - dv)/4096,
    the weights' slope is the mantissa step): an independent reference."""
    model = QuantizedSNN(_mixed_network())
    rng = np.random.default_rng(1)
    b = _batch(rng, 40, 8, 10, 3)
    make_rule("bptt").backward(model, b)
    for k, w in model.weights.items():
        assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0, k

    net = ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", 10)],
                     populations=[ns.Population("out", 4, ns.LI(alpha=0.9, beta=0.95))],
                     projections=[ns.Projection("w", "in", "out", rng.normal(0, 0.05, (10, 4)))])
    res = simulate_fixed(quantize(net), {"in": b.inputs.numpy().astype(bool)}, 40)
    assert res.meta["v_clips"]["out"] == 0 and res.meta["u_wraps"]["out"] == 0  # where the gradient is the float one
    qat = QuantizedSNN(net)
    ref = from_network(dequantize(quantize(net)), dtype=torch.float64, fused=False)
    coef = torch.as_tensor(rng.normal(size=(40, 8, 4)))
    for m in (qat, ref):
        out, _ = m(b.inputs, record=("v",))
        (out["out"]["v"] * coef).sum().backward()
    g_q, g_r = qat.weights["w"].grad, ref.weights["w"].grad
    assert g_r.abs().max() > 0
    torch.testing.assert_close(g_q, g_r, rtol=1e-10, atol=1e-12 * float(g_r.abs().max()))


TINY = ["--task", "store_recall", "--hidden", "8", "--n-train", "16", "--n-test", "8", "--no-progress",
        "--quantize", "loihi", "--dtype", "float64", "--schedule", "constant", "--task-option", "slot=0.005",
        "--task-option", "pop_size=5"]


def test_cli_trains_resumes_and_reports_the_fixed_point_accuracy(tmp_path, capsys):
    from training.scoring import score
    from training.tasks import make_task

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(["train", *TINY, "--epochs", "2", "--out", str(whole)]) == 0
    assert main(["train", *TINY, "--epochs", "1", "--out", str(cut)]) == 0
    assert main(["train", "--out", str(cut), "--resume", "--epochs", "2"]) == 0
    a, b = ns.load(str(whole / "model.h5")), ns.load(str(cut / "model.h5"))
    for p, q in zip(a.projections, b.projections):
        assert np.array_equal(p.weights, q.weights), p.name
    ckpt = torch.load(whole / "checkpoint.pt", weights_only=True)
    assert ckpt["config"]["quantize"] == "loihi"
    task = make_task("store_recall", seed=0, n_train=16, n_test=8, slot=0.005, pop_size=5)  # test accuracy = the fixed-point run's
    spikes = np.ascontiguousarray(np.asarray(task.test.inputs, bool).transpose(1, 0, 2))
    res = simulate_fixed(quantize(a), {"in": spikes}, task.steps, traces={"out": ["v"]})
    v = torch.as_tensor(res.traces["out"]["v"])
    ok, n = score(task, {int(t): v[t] for t in np.flatnonzero(task.test.loss_mask)}, torch.as_tensor(task.test.targets))
    assert ok / n == pytest.approx(ckpt["history"][-1]["test_acc"], abs=0)


@pytest.mark.parametrize("args,needle", [
    (["--dtype", "float32"], "add --dtype float64"),
    (["--dtype", "float64", "--rule", "eprop"], "rule 'eprop' does not run the model's forward pass"),
    (["--dtype", "float64", "--arch", "dense(4,train=theta),dense(2)"], "arch[0].train: trainable beta or theta change"),
])
def test_cli_refuses_what_qat_cannot_run_in_one_line(tmp_path, capsys, args, needle):
    base = ["--task", "store_recall", "--hidden", "8", "--n-train", "16", "--n-test", "8", "--epochs", "1",
            "--no-progress", "--quantize", "loihi"]
    run = tmp_path / "r"
    assert main(["train", *base, *args, "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and not run.exists()


def test_a_network_the_fixed_point_mode_cannot_express_is_refused():
    net = recurrent_network(5, 4, 2, seed=0)
    poisson = net.replace(inputs=(ns.PoissonInput("in", 5, rate=20.0),))
    with pytest.raises(NeurosimError, match="inputs.in"):
        QuantizedSNN(poisson)
    with pytest.raises(NeurosimError, match="float64"):
        QuantizedSNN(net, dtype=torch.float32)


def test_layered_conv_model_forward_equals_the_exported_fixed_point_run():
    """A QAT-trained conv -> sum pool -> recurrent ALIF -> LI model (the fixed-point mode runs conv
    and pooling as their CSR lowering): the lowered kernel mantissas are quantize's, and the
    forward spikes of every layer those of simulate_fixed; the trainer builds it for --arch."""
    from training.config import TrainConfig
    from training.layered import parse_arch, to_network
    from training.tasks import make_task
    from training.trainer import build_model

    arch = "conv(4,k=3,s=2,p=1),pool(2),flatten,rdense(6,neuron=alif),dense(3,neuron=li)"
    model = QuantizedLayeredSNN(parse_arch(arch), (2, 8, 8), dt=1e-3)
    rng = np.random.default_rng(0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(2):
        opt.zero_grad()
        make_rule("bptt").backward(model, _batch(rng, 30, 4, 128, 3))
        opt.step()
    for k, w in model.weights.items():
        assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0, k
    fixed = quantize(to_network(model, 1e-3))
    got = model.quantized_weights()
    mantissas = QuantizedLayeredSNN(parse_arch(arch), (2, 8, 8), dt=1e-3)
    with torch.no_grad():
        for name, q in got.items():
            mantissas.weights[name].copy_(q.mantissas)
    lowered = to_network(mantissas, 1e-3).lowered()
    for q in fixed.projections:
        if q.name in got:
            assert got[q.name].exponent == q.weight_exp, q.name
            w = lowered.projections[[p.name for p in lowered.projections].index(q.name)].weights
            dense = w.to_dense() if hasattr(w, "to_dense") else np.asarray(w)
            assert np.array_equal(dense, q.effective_weights), q.name
    x = rng.random((40, 3, 128)) < 0.3
    with torch.no_grad():
        out, _ = model(torch.as_tensor(x, dtype=torch.float64), record=("z",))
    res = simulate_fixed(fixed, {"in": x}, 40)
    for name in model.slices:
        assert np.array_equal(res.spikes[name].dense(), out[name]["z"].numpy().astype(bool)), name
    assert sum(int(res.spikes[p].dense().sum()) for p in ("l1", "l2", "l4")) > 100
    task = make_task("store_recall", seed=0, n_train=16, n_test=8, slot=0.005, pop_size=5)
    built = build_model(TrainConfig(task="store_recall", arch="dense(8),dense(2,neuron=li)", quantize="loihi",
                                    dtype="float64"), task)
    assert isinstance(built, QuantizedLayeredSNN)

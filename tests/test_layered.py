"""Layered (convolutional) SNNs: the spec, the module against neurosim's own simulator of its
dense-lowered network, and every rule against an independent reference, float64.

The dense-lowered reference: each layer's operator applied to the identity (torch's conv2d /
avg_pool2d on unit spikes) gives its matrix; a plain neurosim Network with those dense
projections is simulated by neurosim (numpy) and wrapped by training.layers.SNN, whose rules
(built on matrices) the layered model's operator routes must reproduce.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neurosim import Network, Population, Projection, SpikeInput, simulate  # noqa: E402
from neurosim.errors import NetworkError  # noqa: E402
from training.layered import LayeredSNN, arch_json, load_arch, neuron_record, parse_arch  # noqa: E402
from training.layered import from_network as layered_from_network, to_network  # noqa: E402
from training.layers import from_network  # noqa: E402
from training.rules import Batch, make_rule  # noqa: E402

F64 = torch.float64
CONV = "conv(4,k=3,s=2,p=1),pool(2),conv(6,k=3,p=1,d=1,g=2,bias=1),flatten,dense(12,neuron=alif),dense(5)"


def dense_lowered(m: LayeredSNN) -> Network:
    """The Network of `m` with every layer's operator as a dense matrix (its columns: the
    operator applied to unit spikes) and the module's current neuron parameters."""
    pops, projs = [], []
    p = m.params
    for k, b in enumerate(m.blocks):
        s = b["spec"]
        a, z = m.source_columns(k)
        with torch.no_grad():
            mat = m.layer_input(k, torch.eye(z - a, dtype=F64)).numpy()
        lo, hi = m.slices[s.name]
        rec = neuron_record(s)
        over = {f: getattr(p, f)[lo:hi].detach().numpy() for f in ("beta", "theta", "bias")
                if f in rec.param_names()}
        pops.append(Population(s.name, hi - lo, type(rec)(**{**{f: getattr(rec, f) for f in rec.param_names()},
                                                             **over, **({"reset": rec.reset} if hasattr(rec, "reset") else {})})))
        pre = "in" if b["src"] is None else m.blocks[b["src"]]["spec"].name
        projs.append(Projection(f"{pre}_{s.name}", pre, s.name, mat))
        if s.kind == "rdense":
            projs.append(Projection(f"{s.name}_rec", s.name, s.name, m.weights[f"{s.name}_rec"].detach().numpy()))
    return Network(dt=1e-3, inputs=[SpikeInput("in", m.n_sources)], populations=pops, projections=projs)


def _input(T=14, B=3, n=200, p=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, n, generator=g, dtype=F64) < p).to(F64)


def _model(arch=CONV, seed=0):
    return LayeredSNN(parse_arch(arch), (2, 10, 10), dtype=F64, seed=seed)


# ----------------------------------------------------------------------------------------- spec


def test_spec_string_and_json_file_agree(tmp_path):
    layers = parse_arch("conv(16,k=5,p=2),pool(2,mode=avg),flatten,rdense(20,neuron=alif,train=beta+theta),dense(10)")
    assert [s.kind for s in layers] == ["conv", "pool", "flatten", "rdense", "dense"]
    assert [s.name for s in layers] == ["l1", "l2", "l3", "l4", "out"]
    assert layers[0].kernel == 5 and layers[0].padding == 2 and layers[-1].neuron == "li"
    assert layers[1].theta == 0.5 and layers[1].mode == "avg" and layers[3].train == "beta+theta"
    f = tmp_path / "model.json"
    f.write_text(arch_json(layers))
    assert load_arch(f) == layers == parse_arch(str(f))
    f.write_text(json.dumps([{"kind": "dense", "size": 3, "beta": 0.5}]))
    assert load_arch(f)[0].beta == 0.5


@pytest.mark.parametrize("text,field", [("conv(16,k=0),flatten,dense(2)", "arch[0].kernel"),
                                        ("conv(16,q=1),flatten,dense(2)", "arch[0].q"),
                                        ("dense(4,beta=1.5)", "arch[0].beta"),
                                        ("conv(4),pool(2)", "arch"),
                                        ("dense(4,neuron=lf)", "arch[0].neuron"),
                                        ("conv(4,k=3),dense(3)", "arch[1]"),
                                        ("conv(3,g=2),flatten,dense(3)", "arch[0].groups")])
def test_bad_spec_names_the_field(text, field):
    with pytest.raises(NetworkError) as e:
        LayeredSNN(parse_arch(text), (2, 10, 10))
    assert e.value.field == field


# ------------------------------------------------------------------------- forward vs neurosim


def test_layered_model_is_neurosims_simulation_of_its_dense_lowered_network():
    m = _model("conv(4,k=3,s=2,p=1,scale=2),pool(2,mode=avg),conv(6,k=3,p=1,d=1,g=2,bias=1,scale=2),flatten,"
               "rdense(12,neuron=alif,train=beta+theta,scale=3),dense(5,train=beta)")
    with torch.no_grad():  # make the trainable and bias parameters differ from their defaults
        m.weights["l3_bias"].copy_(torch.linspace(-0.2, 0.3, 6, dtype=F64))
        m.weights["l5_beta"].mul_(torch.linspace(0.8, 1.0, 12, dtype=F64))
        m.weights["l5_theta"].mul_(torch.linspace(0.7, 1.3, 12, dtype=F64))
        m.weights["out_beta"].fill_(0.7)
    x = _input()
    with torch.no_grad():
        out, _ = m(x)
    net = dense_lowered(m)
    res = simulate(net, {"in": x.numpy()}, steps=x.shape[0], traces={"out": ["v"]})
    for name in ("l1", "l2", "l3", "l5"):
        z = out[name]["z"].numpy()
        assert z.sum() > 5, name
        np.testing.assert_array_equal(res.spikes[name].dense(), z > 0)
    np.testing.assert_allclose(res.traces["out"]["v"], out["out"]["v"].numpy(), rtol=0, atol=1e-12)


def test_conv_layer_is_torch_conv2d_on_the_previous_steps_spikes():
    m = _model("conv(3,k=3,s=2,p=2,d=2),flatten,dense(2)")
    x = _input(T=3)
    state = m.step(m.step(m.initial_state(3), x[0]), x[1])
    want = torch.nn.functional.conv2d(x[1].reshape(3, 2, 10, 10), m.weights["l1"], stride=2, padding=2, dilation=2)
    got = m.synaptic_input(state.history)[:, slice(*m.slices["l1"])]
    torch.testing.assert_close(got, want.flatten(1), rtol=0, atol=1e-14)


# ------------------------------------------------------------------------------------- rules


def _rule_grads(model, rule, batch):
    model.zero_grad()
    out = rule.backward(model, batch)
    return out, {k: p.grad.clone() for k, p in model.weights.items() if p.grad is not None}


def test_budgeted_and_truncated_bptt_equal_bptt_on_a_conv_stack():
    m = _model()
    b = Batch(_input(T=16), torch.tensor([0, 3, 4]), torch.arange(16) >= 4)
    _, g = _rule_grads(m, make_rule("bptt"), b)
    assert all(float(v.abs().max()) > 0 for v in g.values()) and len(g) == 5
    for rule in (make_rule("budgeted", budget=3), make_rule("budgeted", budget=2, policy="mixed"),
                 make_rule("tbptt", k=16)):
        _, h = _rule_grads(m, rule, b)
        for k in g:
            assert float((h[k] - g[k]).abs().max()) <= 1e-10 * float(g[k].abs().max()), (rule.name, k)


@pytest.mark.parametrize("rule", ["bptt", "ottt", "ratebp"])
def test_rules_on_operator_routes_equal_their_dense_lowered_matrices(rule):
    """The layered model's conv and pool routes (vector-Jacobian products) give the gradients
    the rule computes on the dense-lowered SNN's matrices."""
    m = _model()
    b = Batch(_input(T=16), torch.tensor([0, 3, 4]), torch.ones(16, dtype=torch.bool))
    _, g = _rule_grads(m, make_rule(rule), b)
    snn = from_network(dense_lowered(m), dtype=F64, fused=False)
    _, h = _rule_grads(snn, make_rule(rule), b)
    assert float(g["out"].abs().max()) > 0
    torch.testing.assert_close(g["out"], h["l5_out"], rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(g["l5"], h["l3_l5"], rtol=1e-10, atol=1e-14)
    # a conv kernel's gradient is the sum of its dense matrix's gradient over the positions it occupies
    k = m.weights["l1"]
    with torch.enable_grad():
        mat = m.layer_input(0, torch.eye(200, dtype=F64))
        (want,) = torch.autograd.grad(mat, k, h["in_l1"])
    assert float(want.abs().max()) > 0
    torch.testing.assert_close(g["l1"], want, rtol=1e-10, atol=1e-14)


def test_trainable_beta_and_theta_get_the_gradient_of_the_neuron_parameters():
    m = _model("conv(4,k=3,s=2,p=1,train=beta+theta),flatten,dense(5,train=beta)")
    b = Batch(_input(T=12), torch.tensor([0, 3, 4]), torch.arange(12) >= 3)
    _, g = _rule_grads(m, make_rule("bptt"), b)
    snn = from_network(dense_lowered(m), dtype=F64, fused=False)
    for f in ("beta", "theta"):
        getattr(snn, f"p_{f}").requires_grad_(True)
    snn._cache = None
    make_rule("bptt").backward(snn, b)
    sl = slice(*m.slices["l1"])
    assert float(g["l1_theta"].abs().max()) > 0 and float(g["l1_beta"].abs().max()) > 0
    torch.testing.assert_close(g["l1_beta"], snn.p_beta.grad[sl], rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(g["l1_theta"], snn.p_theta.grad[sl], rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(g["out_beta"], snn.p_beta.grad[slice(*m.slices["out"])], rtol=1e-10, atol=1e-14)


def test_eprop_trains_a_recurrent_layer_and_refuses_conv_with_a_reason():
    m = LayeredSNN(parse_arch("rdense(10,neuron=alif),dense(3)"), (8,), dtype=F64)
    x = _input(T=20, n=8)
    b = Batch(x, torch.tensor([0, 1, 2]), torch.arange(20) >= 10)
    _, g = _rule_grads(m, make_rule("eprop"), b)
    snn = from_network(dense_lowered(m), dtype=F64, fused=False)
    _, h = _rule_grads(snn, make_rule("eprop"), b)
    torch.testing.assert_close(g["l1"], h["in_l1"], rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(g["l1_rec"], h["l1_rec"], rtol=1e-10, atol=1e-14)
    with pytest.raises(NetworkError, match="convolution"):
        make_rule("eprop").backward(_model(), Batch(_input(T=4), torch.tensor([0, 1, 2]), torch.ones(4, dtype=torch.bool)))


def test_conv_ratebp_kernel_gradient_follows_bptt():
    """Static, rate-coded input (the regime rate-based BP assumes): the kernel's rate-based
    gradient points along BPTT's; the readout's is BPTT's."""
    arch = "conv(4,k=3,p=1,beta=0.951),flatten,dense(10,beta=0.951)"
    x = (torch.rand(30, 2, 64, generator=torch.Generator().manual_seed(0), dtype=F64) < 0.3).to(F64)
    b = Batch(x, torch.tensor([1, 4]), torch.arange(30) >= 10)
    m1, m2 = (LayeredSNN(parse_arch(arch), (1, 8, 8), dtype=F64, seed=1) for _ in range(2))
    make_rule("bptt").backward(m1, b)
    make_rule("ratebp").backward(m2, b)
    torch.testing.assert_close(m2.weights["out"].grad, m1.weights["out"].grad, rtol=1e-12, atol=1e-15)
    cos = torch.nn.functional.cosine_similarity(m1.weights["l1"].grad.flatten(), m2.weights["l1"].grad.flatten(), 0)
    assert cos > 0.9


# -------------------------------------------------------------------------- Network conversion

ROUND = ("conv(4,k=3,s=2,p=1,scale=2,bias=1),pool(2,mode=avg),conv(6,k=3,p=1,g=2,scale=2),flatten,"
         "rdense(12,neuron=alif,train=beta+theta,scale=3),dense(5)")


def test_network_round_trip_keeps_weights_and_spikes_and_neurosim_simulates_it(tmp_path):
    """torch -> Network -> HDF5 -> Network -> torch: the same tensors, the same spikes, and the
    file holds kernels (under 2x the weights' float64 bytes, where the lowering would hold every tap)."""
    from neurosim.storage import load, save

    m = LayeredSNN(parse_arch(ROUND), (2, 10, 10), dtype=F64)
    with torch.no_grad():
        m.weights["l1_bias"].copy_(torch.linspace(-0.3, 0.2, 4, dtype=F64))
        m.weights["l5_beta"].mul_(torch.linspace(0.8, 1.0, 12, dtype=F64))
    net = to_network(m, 1e-3)
    kinds = [type(j).__name__ for j in net.projections]
    assert kinds == ["Conv2d", "AvgPool2d", "Conv2d", "Projection", "Projection", "Projection"]
    assert net.population("l1").shape == (4, 5, 5) and net.inputs[0].shape == (2, 10, 10)
    save(net, tmp_path / "m.h5")
    weight_bytes = 8 * sum(p.numel() for p in m.weights.values())
    assert (tmp_path / "m.h5").stat().st_size < 2 * weight_bytes + 64 * 1024  # + HDF5's fixed overhead
    m2 = layered_from_network(load(tmp_path / "m.h5"), m.specs, dtype=F64)
    a, b = m.state_dict(), m2.state_dict()
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    x = _input()
    with torch.no_grad():
        out, _ = m(x)
        out2, _ = m2(x)
    res = simulate(net, {"in": x.numpy()}, steps=x.shape[0], traces={"out": ["v"]})
    for name in ("l1", "l2", "l3", "l5"):
        assert out[name]["z"].sum() > 5, name
        assert torch.equal(out[name]["z"], out2[name]["z"])
        np.testing.assert_array_equal(res.spikes[name].dense(), out[name]["z"].numpy() > 0)
    np.testing.assert_allclose(res.traces["out"]["v"], out["out"]["v"].numpy(), rtol=0, atol=1e-12)
    # without the spec: the nonzero conv bias becomes trainable, the trained beta/theta are kept fixed
    m3 = layered_from_network(net, dtype=F64)
    assert "l1_bias" in m3.weights and "l5_beta" not in m3.weights
    torch.testing.assert_close(m3.params.beta, m.params.beta.detach(), rtol=0, atol=0)


def test_from_network_refuses_what_a_layered_model_cannot_be():
    m = LayeredSNN(parse_arch("conv(4,k=3,s=2,p=1),flatten,dense(5)"), (2, 10, 10), dtype=F64)
    net = to_network(m, 1e-3)
    conv = net.projections[0]
    slow = net.replace(projections=(type(conv)(conv.name, "in", "l1", conv.kernel, 2, 1, delay=2), net.projections[1]))
    with pytest.raises(NetworkError) as e:
        layered_from_network(slow)
    assert e.value.field == "projections.l1.delay"
    with pytest.raises(NetworkError) as e:
        layered_from_network(net, parse_arch("conv(4,k=3,s=2,p=1),flatten,rdense(5)"))
    assert e.value.field == "populations.out"

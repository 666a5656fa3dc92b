"""The fused multi-step kernels (training.fused) against the canonical step: spikes, potentials
and gradients (inputs, bias, trained beta and theta) of neurosim.models.neuron_step looped in
torch float64, for every model, reset, refractory setting and surrogate, on random layers; the
layered model's fused sequence path against its per-step loop; and the BPTT loss on masked
steps only against the per-step loss."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from neurosim.models import ALIF, IF, LI, LIF, NeuronParams, NeuronState, neuron_step  # noqa: E402
from training.fused import Constants, KernelKey, fused_dynamics, surrogate_args  # noqa: E402
from training.surrogate import DEFAULTS, make_spike_fn  # noqa: E402

TOL = 1e-10
D = torch.float64


def _record(kind: str, reset: str, refractory: int, n: int, rng: np.random.Generator) -> NeuronParams:
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    if kind == "lif":
        m = LIF(beta=u(0.6, 1.0), alpha=u(0.0, 0.7), theta=u(0.5, 1.5), bias=u(-0.1, 0.1), gain=u(0.5, 1.5),
                refractory=refractory, reset=reset)
    elif kind == "alif":
        m = ALIF(beta=u(0.6, 1.0), alpha=u(0.0, 0.7), theta=u(0.5, 1.5), bias=u(-0.1, 0.1), gain=u(0.5, 1.5),
                 rho=u(0.8, 0.99), adapt=u(0.5, 2.0), adapt_gain=u(0.1, 1.0), refractory=refractory, reset=reset)
    elif kind == "if":
        m = IF(theta=u(0.5, 1.5), bias=u(-0.1, 0.1), gain=u(0.5, 1.5), refractory=refractory, reset=reset)
    else:
        m = LI(beta=u(0.6, 1.0), alpha=u(0.0, 0.7), bias=u(-0.1, 0.1), gain=u(0.5, 1.5))
    return m.lower(n)


def _case(kind, reset, refractory, surrogate, seed=0, T=40, B=3, n=7):
    rng = np.random.default_rng(seed)
    p = NeuronParams(*(torch.tensor(a, dtype=D) for a in _record(kind, reset, refractory, n, rng)))
    x = torch.tensor(rng.normal(0.3, 0.6, (T, B, n)), dtype=D)
    s0 = NeuronState(*(torch.tensor(rng.uniform(0, 0.8, (B, n)), dtype=D) for _ in range(3)),
                     torch.tensor(rng.random((B, n)) < 0.3, dtype=D),
                     torch.tensor(rng.integers(0, refractory + 1, (B, n)), dtype=D))
    wz = torch.tensor(rng.normal(size=(T, B, n)), dtype=D)
    wv = torch.tensor(rng.normal(size=(T, B, n)), dtype=D)
    return p, x, s0, wz, wv


def _canonical(p, x, s0, surrogate, wz, wv):
    x = x.clone().requires_grad_()
    bias, beta, theta = (t.clone().requires_grad_() for t in (p.bias, p.beta, p.theta))
    q = p._replace(bias=bias, beta=beta, theta=theta)
    spike = make_spike_fn(surrogate)
    s, zs, vs = s0, [], []
    for t in range(x.shape[0]):
        s = neuron_step(q, s, x[t], spike)
        zs.append(s.z)
        vs.append(s.v)
    z, v = torch.stack(zs), torch.stack(vs)
    ((z * wz).sum() + (v * wv).sum()).backward()
    return z.detach(), v.detach(), s, (x.grad, bias.grad, beta.grad, theta.grad)


def _fused(p, x, s0, kind, reset, refractory, surrogate, wz, wv):
    x = x.clone().requires_grad_()
    bias, beta, theta = (t.clone().requires_grad_() for t in (p.bias, p.beta, p.theta))
    key = KernelKey({"if": "lif"}.get(kind, kind), reset == "zero" and kind != "li", refractory > 0, surrogate)
    c = Constants(p.alpha, p.gain, p.rho, p.adapt, p.adapt_gain, p.refractory, *s0)
    z, v, fin = fused_dynamics(x, bias, beta, theta, key, c, surrogate_args(surrogate, DEFAULTS[surrogate]))
    ((z * wz).sum() + (v * wv).sum()).backward()
    return z.detach(), v.detach(), fin, (x.grad, bias.grad, beta.grad, theta.grad)


CASES = [(k, r, ref, sg) for k in ("lif", "alif", "if") for r in ("subtract", "zero") for ref in (0, 2)
         for sg in DEFAULTS] + [("li", "subtract", 0, sg) for sg in DEFAULTS]


@pytest.mark.parametrize("kind,reset,refractory,surrogate", CASES)
def test_fused_dynamics_equal_the_canonical_step(kind, reset, refractory, surrogate):
    """Same spikes, potentials, final state and gradients (x, bias, beta, theta) as neuron_step
    looped in torch with the same surrogate, float64, to 1e-10."""
    p, x, s0, wz, wv = _case(kind, reset, refractory, surrogate)
    z0, v0, s_ref, g_ref = _canonical(p, x, s0, surrogate, wz, wv)
    z1, v1, fin, g = _fused(p, x, s0, kind, reset, refractory, surrogate, wz, wv)
    assert torch.equal(z0, z1)
    if kind != "li":
        assert 0 < int(z0.sum()) < z0.numel()  # the case spikes, and not always
    torch.testing.assert_close(v1, v0, rtol=0, atol=TOL)
    for name in ("i", "v", "r") + (("a",) if kind == "alif" else ()):
        torch.testing.assert_close(getattr(fin, name), getattr(s_ref, name).detach(), rtol=0, atol=TOL)
    for name, a, b in zip(("x", "bias", "beta", "theta"), g_ref, g):
        scale = max(1.0, float(a.abs().max()))
        assert float((a - b).abs().max()) <= TOL * scale, name
        if kind != "li" or name != "theta":
            assert float(a.abs().max()) > 0, name  # the gradient is exercised


def test_refractory_case_holds_neurons():
    """The refractory cases really hold neurons (the active mask is not all ones)."""
    p, x, s0, wz, wv = _case("lif", "subtract", 2, "fast_sigmoid")
    z, _, _, _ = _canonical(p, x, s0, "fast_sigmoid", wz, wv)
    after = z[:-1] > 0
    assert bool(after.any()) and not bool((z[1:][after] > 0).any())  # no spike right after a spike


def test_float32_spikes_match_the_canonical_step():
    """float32: the same arithmetic in the same order gives the same spikes."""
    p, x, s0, wz, wv = _case("alif", "subtract", 0, "fast_sigmoid")
    p32 = NeuronParams(*(t.float() for t in p))
    s32 = NeuronState(*(t.float() for t in s0))
    z0, v0, _, _ = _canonical(p32, x.float(), s32, "fast_sigmoid", wz.float(), wv.float())
    z1, v1, _, _ = _fused(p32, x.float(), s32, "alif", "subtract", 0, "fast_sigmoid", wz.float(), wv.float())
    assert torch.equal(z0, z1)
    torch.testing.assert_close(v1, v0, rtol=0, atol=1e-5)


# ------------------------------------------------------------------ the layered model and BPTT

from training.layered import LayeredSNN, parse_arch  # noqa: E402
from training.rules import BPTT, Batch, Objective  # noqa: E402

ARCHS = [("dense(12,neuron=lif),dense(9,neuron=alif,reset=zero,train=beta+theta,bias=1),dense(3,train=beta)", (10,)),
         ("conv(3,k=3,p=1,neuron=if),pool(2),conv(4,k=3,s=2,p=1,reset=zero,train=theta),flatten,dense(3)", (2, 8, 8))]


def _per_step_reference(model, batch):
    """The rule before the fused path and the masked, stacked loss: per-step loop, per-step
    loss, input spikes inside the graph."""
    model.zero_grad()
    model.input_grad = True
    obj = Objective(model, batch)
    state = model.initial_state(batch.inputs.shape[1])
    total = batch.inputs.new_zeros(())
    for t in range(batch.steps):
        state = model.step(state, batch.inputs[t])
        total = total + obj(state, t)
    total.backward()
    model.input_grad = False
    return float(total.detach()), {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("arch,shape", ARCHS)
def test_fused_bptt_on_layered_models_equals_the_per_step_rule(arch, shape):
    """BPTT through the fused sequence path (input projections as one GEMM/conv per layer, the
    dynamics fused) gives the per-step rule's loss and gradients, float64, to 1e-10."""
    model = LayeredSNN(parse_arch(arch), shape, dtype=D, seed=3)
    g = torch.Generator().manual_seed(1)
    T, B = 30, 4
    x = (torch.rand(T, B, model.n_sources, generator=g, dtype=D) < 0.3).to(D)
    batch = Batch(x, torch.tensor([0, 1, 2, 1]), torch.arange(T) >= 10)
    ref_loss, ref = _per_step_reference(model, batch)
    model.zero_grad()
    out = BPTT().backward(model, batch)
    assert out.loss == pytest.approx(ref_loss, rel=1e-12)
    for k, a in ref.items():
        b = dict(model.named_parameters())[k].grad
        assert float(a.abs().max()) > 0, k
        assert float((a - b).abs().max()) <= TOL * max(1.0, float(a.abs().max())), k


@pytest.mark.parametrize("arch,shape", ARCHS)
def test_layered_forward_fused_equals_the_step_loop(arch, shape):
    """LayeredSNN.forward: the fused path records the step loop's spikes and potentials and ends
    in its final state (a: ALIF layers only; LIF and IF never read it)."""
    model = LayeredSNN(parse_arch(arch), shape, dtype=D, seed=4)
    x = (torch.rand(25, 2, model.n_sources, generator=torch.Generator().manual_seed(2), dtype=D) < 0.3).to(D)
    with torch.no_grad():
        model.fused = False
        ref, s_ref = model(x)
        model.fused = True
        out, s = model(x)
    for name in ref:
        assert torch.equal(ref[name]["z"], out[name]["z"]), name
        torch.testing.assert_close(out[name]["v"], ref[name]["v"], rtol=0, atol=TOL)
    assert sum(int(o["z"].sum()) for o in ref.values()) > 0
    for f in ("i", "v", "z", "r"):
        torch.testing.assert_close(getattr(s.neurons, f), getattr(s_ref.neurons, f), rtol=0, atol=TOL)
    torch.testing.assert_close(s.history[0], s_ref.history[0], rtol=0, atol=0)


def test_input_spikes_leave_the_graph_and_gradients_stay():
    """training.layers.SNN: without input_grad the input projection's matmul has no input edge
    in the graph (no dL/d(input) GEMM per step), and BPTT's gradients equal those with the
    input kept in the graph and the per-step loss, float64, to 1e-12 relative."""
    from training.layers import from_network
    from training.nets import recurrent_network

    net = recurrent_network(8, 16, 3, model="alif", seed=1)
    g = torch.Generator().manual_seed(0)
    T = 30
    x = (torch.rand(T, 3, 8, generator=g, dtype=D) < 0.3).to(D)
    batch = Batch(x, torch.tensor([0, 2, 1]), torch.arange(T) >= 20)
    model = from_network(net, dtype=D)
    state = model.step(model.initial_state(3), x[0])
    with_input, without = (_input_edges(model.synaptic_input(state.history, flag).grad_fn) for flag in (True, False))
    assert with_input - without == 1  # exactly the input projection's edge (in_hidden, one delay) is gone
    ref_loss, ref = _per_step_reference(model, batch)
    model.zero_grad()
    out = BPTT().backward(model, batch)
    assert out.loss == pytest.approx(ref_loss, rel=1e-12)
    for k, a in ref.items():
        b = dict(model.named_parameters())[k].grad
        assert float((a - b).norm() / a.norm()) < 1e-12, k


def _input_edges(fn):
    """Matrix products in the graph of `fn` whose left operand (the presynaptic spikes) needs a
    gradient: each is one (B x n_pre) input-gradient GEMM in the backward."""
    seen, todo, count = set(), [fn], 0
    while todo:
        n = todo.pop()
        if n is None or n in seen:
            continue
        seen.add(n)
        if type(n).__name__ == "MmBackward0" and n.next_functions[0][0] is not None:
            count += 1
        todo += [f[0] for f in n.next_functions]
    return count


def test_event_driven_projection_equals_the_gemm():
    """training.fused.event: forward and gradients (weights, and the input where it needs one)
    of the event-driven s @ W equal torch's GEMM, float64 (graded and binary entries)."""
    from training.fused.event import event_matmul, project

    g = torch.Generator().manual_seed(0)
    s = (torch.rand(40, 30, generator=g, dtype=D) < 0.1).to(D) * torch.rand(40, 30, generator=g, dtype=D)
    w = torch.randn(30, 17, generator=g, dtype=D, requires_grad=True)
    dy = torch.randn(40, 17, generator=g, dtype=D)
    for needs_input in (False, True):
        s1, s2 = s.clone().requires_grad_(needs_input), s.clone().requires_grad_(needs_input)
        y0 = s1 @ w
        gw0, *rest0 = torch.autograd.grad(y0, (w,) + ((s1,) if needs_input else ()), dy)
        y1 = event_matmul(s2, w)
        gw1, *rest1 = torch.autograd.grad(y1, (w,) + ((s2,) if needs_input else ()), dy)
        torch.testing.assert_close(y1, y0, rtol=0, atol=1e-12)
        torch.testing.assert_close(gw1, gw0, rtol=0, atol=1e-12)
        for a, b in zip(rest0, rest1):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
    assert project(s, w).grad_fn is not None and type(project(s, w).grad_fn).__name__ != "MmBackward0"
    assert type(project(s, w, crossover=0.0).grad_fn).__name__ == "MmBackward0"


@pytest.mark.parametrize("arch", ["rdense(10,neuron=alif,train=beta+theta),dense(3,train=beta)",
                                  "rdense(10,neuron=lif,reset=zero,bias=1),dense(3)",
                                  "dense(12,neuron=if,train=theta),rdense(10,neuron=alif),rdense(3,neuron=lif,theta=0.5)"])
def test_recurrent_layers_fused_per_step_equal_the_per_step_rule(arch):
    """Recurrent layers: the whole sequence as one autograd function (training.fused.recurrent:
    the fused kernel one step per call, state and its gradient chained by hand) gives the per-step
    rule's spikes and gradients, float64, to 1e-10; the last case's loss reads a recurrent LIF
    layer's v (the gradient of recorded potentials) after a recurrent layer fed by a dense one."""
    model = LayeredSNN(parse_arch(arch), (8,), dtype=D, seed=5)
    x = (torch.rand(30, 3, 8, generator=torch.Generator().manual_seed(3), dtype=D) < 0.3).to(D)
    batch = Batch(x, torch.tensor([0, 1, 2]), torch.arange(30) >= 5)
    ref_loss, ref = _per_step_reference(model, batch)
    model.zero_grad()
    out = BPTT().backward(model, batch)
    assert out.loss == pytest.approx(ref_loss, rel=1e-12)
    for k, a in ref.items():
        b = dict(model.named_parameters())[k].grad
        assert float(a.abs().max()) > 0, k
        assert float((a - b).abs().max()) <= TOL * max(1.0, float(a.abs().max())), k

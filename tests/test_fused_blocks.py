"""The fused sequence path run from a given state (training.fused.layered.fused_forward with
`state`), and budgeted BPTT running its blocks through it (training.rules.budgeted.block_step):
against the canonical per-step chain from the same state (spikes, potentials, final state and
every gradient, parameters and state, float64), against full BPTT's gradients, and the memory
the fused blocks keep (training.budget.memory.LiveBytes counting numpy, where the kernels keep
their saved h and z)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from training.budget.memory import LiveBytes  # noqa: E402
from training.fused import layered as fused_layered  # noqa: E402
from training.layered import LayeredSNN, parse_arch  # noqa: E402
from training.rules import Batch, make_rule  # noqa: E402
from training.rules.base import flatten_state  # noqa: E402

D = torch.float64
TOL = 1e-10
ARCHS = [
    # conv, sum pool, a synaptic current (alpha > 0: i is state), ALIF (a is state), zero reset
    ("conv(3,k=3,p=1,neuron=if),pool(2),conv(4,k=3,s=2,p=1,alpha=0.5,reset=zero,train=theta),flatten,"
     "dense(5,neuron=alif),dense(3)", (2, 8, 8)),
    # recurrent layers: the recurrent product of the block's first step reads the state's spikes
    ("dense(12,neuron=if,train=theta),rdense(10,neuron=alif,alpha=0.3),rdense(6,neuron=lif,bias=1),dense(3)", (8,)),
]


def _model(arch, shape, seed=3):
    model = LayeredSNN(parse_arch(arch), shape, dtype=D, seed=seed)
    with torch.no_grad():  # stronger weights: every layer spikes within a few steps
        for k, p in model.weights.items():
            if not k.endswith(("_beta", "_theta", "_bias")):
                p.mul_(2.5)
    return model


def _inputs(model, T, B, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, model.n_sources, generator=g, dtype=D) < 0.3).to(D)


def _mid_state(model, x):
    """The state after running `x` from rest (no graph): spikes in flight, nonzero i, v, a."""
    with torch.no_grad():
        model.fused = False
        s = model.initial_state(x.shape[1])
        for t in range(x.shape[0]):
            s = model.step(s, x[t])
        model.fused = True
    return s


@pytest.mark.parametrize("arch,shape", ARCHS)
@pytest.mark.parametrize("T", [1, 7])
def test_fused_forward_from_a_state_equals_the_step_chain(arch, shape, T):
    """From a mid-run state, the fused path gives the per-step chain's spikes, potentials and
    final state, and the same gradients of a loss on both to the parameters and to the state's
    i, v, a and spike history (float64, 1e-10)."""
    model = _model(arch, shape)
    warm, x = _inputs(model, 6, 3, seed=2), _inputs(model, T, 3, seed=4)
    s0 = _mid_state(model, warm)
    assert float(s0.neurons.v.abs().sum()) > 0 and float(s0.history[0][:, :model.n_neurons].sum()) > 0
    flat0, unflatten = flatten_state(s0)
    g = torch.Generator().manual_seed(7)
    wz, wv = (torch.randn(T, 3, model.n_neurons, generator=g, dtype=D) for _ in range(2))
    wf = torch.randn(3, model.n_neurons, generator=g, dtype=D)
    adaptive = model.p_adapt != 0  # a is state of ALIF neurons only (the others never read it)
    wa = wf * adaptive
    results = []
    for fused in (False, True):
        model.zero_grad(set_to_none=True)
        leaves = tuple(f.clone().requires_grad_(k != 3) for k, f in enumerate(flat0))
        state = unflatten(leaves)
        if fused:
            rec, final = fused_layered.fused_forward(model, x, ("z", "v"), state=state)
            z, v = rec["z"], rec["v"]
        else:
            zs, vs = [], []
            final = state
            for t in range(T):
                final = model.step(final, x[t])
                zs.append(final.neurons.z)
                vs.append(final.neurons.v)
            z, v = torch.stack(zs), torch.stack(vs)
        loss = (z * wz).sum() + (v * wv).sum() + (final.neurons.v * wf).sum() + (final.neurons.a * wa).sum() \
            + (final.neurons.i * wf).sum() + (final.history[0][:, :model.n_neurons] * wf).sum()
        loss.backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        grads.update({f"state{k}": leaf.grad.clone() for k, leaf in enumerate(leaves) if leaf.grad is not None})
        results.append((z.detach(), v.detach(), final, grads))
    (z0, v0, f0, g0), (z1, v1, f1, g1) = results
    assert float(z0.sum()) > 0
    assert torch.equal(z0, z1)
    torch.testing.assert_close(v1, v0, rtol=0, atol=TOL)
    for f in ("i", "v", "z", "r"):
        torch.testing.assert_close(getattr(f1.neurons, f).detach(), getattr(f0.neurons, f).detach(), rtol=0, atol=TOL)
    assert bool(adaptive.any())
    torch.testing.assert_close(f1.neurons.a[:, adaptive].detach(), f0.neurons.a[:, adaptive].detach(), rtol=0, atol=TOL)
    assert torch.equal(f1.history[0].detach(), f0.history[0].detach())
    assert set(g0) == set(g1) and {"state0", "state1", "state2", "state4"} <= set(g0)
    for k, a in g0.items():
        assert float((g1[k] - a).abs().max()) <= TOL * max(1.0, float(a.abs().max())), k
    assert all(float(g0[f"state{k}"].abs().max()) > 0 for k in (1, 4))


@pytest.mark.parametrize("arch,shape", ARCHS)
@pytest.mark.parametrize("budget,block,policy", [(2, 2, "hsm"), (3, 4, "mixed"), (1, 3, "hsm"), (2, 1, "hsm")])
def test_budgeted_bptt_runs_fused_blocks_and_keeps_bptt_gradients(arch, shape, budget, block, policy, monkeypatch):
    """Budgeted BPTT on a layered model runs every block of 2 steps or more through the fused
    path from its stored state (one-step blocks: the per-step chain, training.rules.budgeted.
    fused_blocks), and its loss and gradients equal full BPTT's (float64, 1e-10)."""
    model = _model(arch, shape)
    T = 15
    batch = Batch(_inputs(model, T, 3), torch.tensor([0, 2, 1]), torch.arange(T) >= 4)
    ref = make_rule("bptt").backward(model, batch)
    g_ref = {k: p.grad.clone() for k, p in model.named_parameters()}
    calls = []
    real = fused_layered.fused_forward
    monkeypatch.setattr(fused_layered, "fused_forward", lambda *a, **k: calls.append(k.get("state")) or real(*a, **k))
    model.zero_grad(set_to_none=True)
    out = make_rule("budgeted", budget=budget, block=block, policy=policy).backward(model, batch)
    if block > 1:
        assert calls and all(s is not None for s in calls)  # every block from its state, none per step
    else:
        assert not calls
    assert out.loss == pytest.approx(ref.loss, rel=1e-12)
    for k, a in g_ref.items():
        b = dict(model.named_parameters())[k].grad
        assert float(a.abs().max()) > 0, k
        assert float((b - a).abs().max()) <= TOL * float(a.abs().max()), k


def test_fused_budgeted_blocks_fit_a_byte_budget_far_below_bptt():
    """The conv stack at T = 120: BPTT's peak (torch storages and the kernels' numpy arrays)
    grows with T; budgeted BPTT's fused blocks within a byte budget of a fifth of it keep the
    iteration's measured peak within the budget (1%) and BPTT's gradients (float64, 1e-10)."""
    model = _model(*ARCHS[0])
    T, B = 120, 16
    batch = Batch(_inputs(model, T, B), torch.arange(B) % 3, torch.arange(T) >= 90)
    make_rule("bptt").backward(model, batch)  # warm: the kernels' compilation is not the rule's memory
    model.zero_grad(set_to_none=True)
    with LiveBytes(numpy=True) as full:
        make_rule("bptt").backward(model, batch)
    g_ref = {k: p.grad.clone() for k, p in model.named_parameters()}
    budget = int(full.peak / 5)
    rule = make_rule("budgeted", budget=f"{budget}B", block=2)
    rule.backward(model, batch)
    model.zero_grad(set_to_none=True)
    with LiveBytes(numpy=True) as mem:
        rule.backward(model, batch)
    assert mem.peak <= 1.01 * budget, (mem.peak, budget, full.peak)
    for k, a in g_ref.items():
        b = dict(model.named_parameters())[k].grad
        assert float((b - a).abs().max()) <= TOL * float(a.abs().max()), k


def test_live_bytes_counts_numpy_arrays_once_and_nests():
    """LiveBytes(numpy=True): a numpy array shared by torch.from_numpy counts once, its torch
    result counts, a freed array stops counting; an inner context sees its own peak, the outer
    one the whole (exact byte counts, allowing 64 kB of Python objects)."""
    mb = 1 << 20
    with LiveBytes(numpy=True) as outer:
        a = torch.zeros(mb // 8, dtype=D)  # 1 MiB, torch
        with LiveBytes(numpy=True) as inner:
            b = np.zeros(2 * mb // 8)  # 2 MiB, numpy
            c = torch.from_numpy(b) + 1  # 2 MiB, torch; from_numpy itself shares b
            del b
        d = np.ones(4 * mb // 8)  # 4 MiB while a and c are alive
        del d
    assert 4 * mb <= inner.peak <= 4 * mb + 65536
    assert 7 * mb <= outer.peak <= 7 * mb + 65536
    assert outer.live == 3 * mb
    x = np.zeros(mb // 8)  # 1 MiB made before the context and freed inside: new bytes fill its place
    with LiveBytes(numpy=True) as refill:
        del x
        y = np.zeros(2 * mb // 8)
    assert 2 * mb <= refill.peak <= 2 * mb + 65536
    del y
    with LiveBytes() as torch_only:
        e = np.zeros(mb // 8)
        f = torch.from_numpy(e) * 2
    assert torch_only.peak == mb
    del a, c, e, f


@pytest.mark.parametrize("arch,shape", ARCHS)
@pytest.mark.parametrize("k", [1, 4, 15])
def test_truncated_bptt_runs_fused_chunks_with_the_per_step_gradients(arch, shape, k, monkeypatch):
    """Truncated BPTT on a layered model runs each chunk as one fused call from the detached
    state, with the per-step chunks' loss and gradients (float64, 1e-10); k = 15 = T is full
    BPTT's gradient."""
    model = _model(arch, shape)
    T = 15
    batch = Batch(_inputs(model, T, 3), torch.tensor([0, 2, 1]), torch.arange(T) >= 4)
    model.fused = False
    ref = make_rule("tbptt", k=k).backward(model, batch)
    g_ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.fused = True
    calls = []
    real = fused_layered.fused_forward
    monkeypatch.setattr(fused_layered, "fused_forward", lambda *a, **kw: calls.append(kw.get("state")) or real(*a, **kw))
    model.zero_grad(set_to_none=True)
    out = make_rule("tbptt", k=k).backward(model, batch)
    assert len(calls) == -(-T // k) and all(s is not None for s in calls)
    assert out.loss == pytest.approx(ref.loss, rel=1e-12)
    assert float(g_ref["weights.out"].abs().max()) > 0  # (with k = 1 the first layers' gradient is truly 0)
    for n, a in g_ref.items():
        b = dict(model.named_parameters())[n].grad
        assert float((b - a).abs().max()) <= TOL * float(a.abs().max()), n


def test_trimmed_state_refractory_and_input_gradients_keep_the_per_step_gradients():
    """An all-LIF conv stack without synaptic current (alpha = 0: i is never read, a neither)
    and with a refractory period (r is read): budgeted BPTT (fused blocks and one-step chains)
    and truncated BPTT carry i and a as expanded zeros, and with model.input_grad give the
    per-step chain's gradients, the input's included (float64, 1e-10)."""
    from training.rules import StateCodec

    model = _model("conv(3,k=3,p=1),pool(2),conv(4,k=3,s=2,p=1,reset=zero),flatten,dense(5),dense(3)", (2, 8, 8))
    lo, hi = model.slices[model.blocks[0]["spec"].name]
    model.p_refractory[lo:hi] = 2.0
    model.input_grad = True
    T = 15
    batch = Batch(_inputs(model, T, 3), torch.tensor([0, 2, 1]), torch.arange(T) >= 4)
    codec = StateCodec(model, batch)
    assert not codec.keep_i and len(codec.a_cols) == 0 and codec.keep_r
    grads = []
    for fused, rule in [(False, make_rule("bptt")), (True, make_rule("budgeted", budget=2, block=2)),
                        (True, make_rule("budgeted", budget=2, block=1)), (True, make_rule("tbptt", k=15))]:
        model.fused = fused
        model.zero_grad(set_to_none=True)
        x = batch.inputs.clone().requires_grad_()
        rule.backward(model, Batch(x, batch.targets, batch.loss_mask))
        grads.append({**{n: p.grad.clone() for n, p in model.named_parameters()}, "input": x.grad.clone()})
    ref = grads[0]
    assert float(ref["input"].abs().max()) > 0 and float(ref["weights.l1"].abs().max()) > 0
    for g in grads[1:]:
        for n, a in ref.items():
            assert float((g[n] - a).abs().max()) <= TOL * float(a.abs().max()), n

"""Torch layers: same spikes as the NumPy simulator (float64); surrogates against their primitives."""
from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import random_inputs, random_network

torch = pytest.importorskip("torch")

import neurosim as ns  # noqa: E402
from training.layers import from_network  # noqa: E402
from neurosim.models import neuron_step  # noqa: E402
from training.surrogate import make_spike_fn  # noqa: E402


def _sources(net, res):
    return {s.name: res.spikes[s.name].dense().astype(np.float64) for s in net.inputs}


@pytest.mark.parametrize("seed", range(8))
def test_forward_equals_numpy_simulator_spike_for_spike(seed):
    net = random_network(seed)
    inp = random_inputs(seed, 120, 2)
    res = ns.simulate(net, inp, 120, seed=seed, traces={p.name: ["v", "a"] for p in net.populations})
    module = from_network(net, dtype=torch.float64)
    out, _ = module(_sources(net, res), record=("z", "v", "a"))
    for p in net.populations:
        np.testing.assert_array_equal(out[p.name]["z"].detach().numpy() > 0, res.spikes[p.name].dense(), err_msg=p.name)
        np.testing.assert_allclose(out[p.name]["v"].detach().numpy(), res.traces[p.name]["v"], rtol=1e-10, atol=1e-11)
        np.testing.assert_allclose(out[p.name]["a"].detach().numpy(), res.traces[p.name]["a"], rtol=1e-10, atol=1e-11)


def test_to_network_round_trip_is_exact_and_keeps_sparsity():
    net = random_network(3)
    back = from_network(net, dtype=torch.float64).to_network()
    for a, b in zip(net.projections, back.projections):
        assert a.is_sparse == b.is_sparse and a.name == b.name
        if a.is_sparse:
            np.testing.assert_array_equal(a.weights.indices, b.weights.indices)
            np.testing.assert_array_equal(a.weights.values, b.weights.values)
        else:
            np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.delay, b.delay)


def test_training_changes_weights_only_on_synapses():
    net = random_network(4)
    module = from_network(net, dtype=torch.float64)
    res = ns.simulate(net, random_inputs(4, 60, 2), 60, seed=4)
    out, _ = module(_sources(net, res))
    loss = sum(o["v"].pow(2).mean() for o in out.values())
    loss.backward()
    for proj in net.projections:
        g = module.weights[proj.name].grad
        assert g is not None and torch.isfinite(g).all()
        if proj.is_sparse:
            dense_mask = proj.weights.to_dense() != 0
            assert torch.all(g[torch.as_tensor(~dense_mask)] == 0)


PRIMITIVES = {  # smooth functions whose derivative each surrogate uses
    "fast_sigmoid": lambda u, p: u / (1 + p["slope"] * u.abs()),
    "atan": lambda u, p: torch.atan(math.pi / 2 * p["alpha"] * u) / math.pi + 0.5,
    "triangle": lambda u, p: p["dampening"] * torch.where(
        u.abs() < p["width"], u / p["width"] - u * u.abs() / (2 * p["width"] ** 2),
        torch.sign(u) * 0.5),
}


@pytest.mark.parametrize("name,params", [("fast_sigmoid", {}), ("fast_sigmoid", {"slope": 5.0}),
                                         ("atan", {}), ("atan", {"alpha": 4.0}),
                                         ("triangle", {}), ("triangle", {"width": 0.5, "dampening": 1.0})])
def test_surrogate_backward_equals_derivative_of_its_primitive(name, params):
    spike = make_spike_fn(name, **params)
    u = torch.linspace(-2.3, 2.3, 401, dtype=torch.float64, requires_grad=True)
    out = spike(u)
    assert torch.equal(out, (u > 0).double())  # forward is the exact Heaviside
    (grad,) = torch.autograd.grad(out.sum(), u)
    h = 1e-6
    f = PRIMITIVES[name]
    with torch.no_grad():
        fd = (f(u + h, spike.params) - f(u - h, spike.params)) / (2 * h)
    kinks = [0.0] + ([spike.params["width"], -spike.params["width"]] if name == "triangle" else [])
    smooth = np.all([np.abs(u.detach().numpy() - k) > 1e-4 for k in kinks], axis=0)  # FD is O(h) at kinks
    np.testing.assert_allclose(grad.numpy()[smooth], fd.numpy()[smooth], rtol=1e-6, atol=1e-8)


def test_surrogate_errors_name_the_field():
    with pytest.raises(ns.NetworkError, match="surrogate"):
        make_spike_fn("sigmoidal")
    with pytest.raises(ns.NetworkError, match="surrogate.beta"):
        make_spike_fn("atan", beta=1.0)
    with pytest.raises(ns.NetworkError, match="surrogate.slope"):
        make_spike_fn("fast_sigmoid", slope=-1.0)


def test_cached_references_follow_dtype_and_device_moves():
    net = random_network(2)
    module = from_network(net, dtype=torch.float32)
    res = ns.simulate(net, random_inputs(2, 40, 1), 40, seed=2)
    out32, _ = module(_sources(net, res))  # fills the cache with float32 buffers
    module.double()
    assert module.params.beta.dtype == torch.float64
    assert module.params.beta is module.p_beta  # the cache now holds the converted buffers
    w, per_delay, _, _ = module._refs()[1][0]
    assert w is module.weights[net.projections[0].name] and w.dtype == torch.float64
    out64, _ = module(_sources(net, res))
    assert out64["lif"]["v"].dtype == torch.float64 and out32["lif"]["v"].dtype == torch.float32


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(6))
def test_fused_no_graph_step_is_bit_identical_to_neuron_step(seed, dtype):
    """Without a graph the module runs numba's fused loop form of neuron_step: every state
    variable of every step, and the spike function's argument u, equal the torch neuron_step's
    bit for bit (all models, refractoriness, both resets, delays, batch), and the compiled kernel
    really ran."""
    pytest.importorskip("numba")
    from neurosim.backends import numba_backend

    net = random_network(seed)
    res = ns.simulate(net, random_inputs(seed, 150, 3), 150, seed=seed)
    src = from_network(net, dtype=dtype).source_tensor(
        {k: torch.as_tensor(v, dtype=dtype) for k, v in _sources(net, res).items()})
    fused, plain = from_network(net, dtype=dtype, fused=True), from_network(net, dtype=dtype, fused=False)
    a, b = fused.initial_state(3), plain.initial_state(3)
    spikes = 0
    with torch.no_grad():
        for t in range(src.shape[0]):
            x = plain.synaptic_input(b.history)
            seen = []
            neuron_step(plain.params, b.neurons, x, lambda u: seen.append(u) or (u > 0).to(u.dtype))
            assert torch.equal(fused.fused_neurons(a.neurons, x)[1], seen[0]), f"step {t}, u"
            a, b = fused.step(a, src[t]), plain.step(b, src[t])
            for name, x, y in zip(a.neurons._fields, a.neurons, b.neurons):
                assert torch.equal(x, y), f"step {t}, {name}"
            assert torch.equal(a.history[0], b.history[0])
            spikes += int(a.neurons.z.sum())
    assert spikes > 100
    assert len(numba_backend.step_kernel().signatures) >= 1
    # with a graph, the torch step runs (the surrogate gradient needs it)
    state = fused.initial_state(3)
    state = fused.step(state, src[0])
    assert state.neurons.v.requires_grad

"""Graded (count) inputs: c events of an input source in one step deliver c * w on each of its
synapses. numpy, numba and torch (float64) against an independent reference: the same network
with the count input expressed as K repeated 0/1 input channels (channel (k, c) spikes when
count[c] > k), run through the established 0/1 path."""
import numpy as np
import pytest
import torch

import neurosim as ns
from neurosim.errors import NetworkError
from neurosim.run import describe_run
from helpers import random_network  # noqa: E402
from training.layers import from_network

K = 5  # counts up to 5 per bin (issue 22's bar)


def _counts(seed: int, steps: int, batch: int) -> np.ndarray:
    r = np.random.default_rng(seed + 77)
    c = r.integers(0, K + 1, (steps, batch, 12)) * (r.random((steps, batch, 12)) < 0.3)
    c[0, 0, 0] = K  # at least one count of K
    return c.astype(np.int64)


def _repeated(net: ns.Network) -> ns.Network:
    """`net` with SpikeInput 'in' (12) replaced by 'in' of 12*K channels, row k*12 + c a copy of row c."""
    projs = []
    for p in net.projections:
        if p.pre == "in":
            w = np.tile(np.asarray(p.weights), (K, 1))
            d = np.tile(np.broadcast_to(p.delay, np.shape(p.weights)), (K, 1)) if np.ndim(p.delay) else p.delay
            p = ns.Projection(p.name, "in", p.post, w, delay=d)
        projs.append(p)
    inputs = [ns.SpikeInput("in", 12 * K) if s.name == "in" else s for s in net.inputs]
    return ns.Network(dt=net.dt, populations=list(net.populations), projections=projs, inputs=inputs)


def _expand(c: np.ndarray) -> np.ndarray:
    return np.concatenate([c > k for k in range(K)], axis=2)


@pytest.mark.parametrize("seed", range(4))
def test_counts_give_the_spikes_of_repeated_channels_in_numpy_numba_and_torch(seed):
    net, steps, batch = random_network(seed), 80, 3
    c = _counts(seed, steps, batch)
    ref = ns.simulate(_repeated(net), {"in": _expand(c)}, steps, seed=seed)
    binary = ns.simulate(net, {"in": np.minimum(c, 1)}, steps, seed=seed)
    assert any(np.any(binary.spikes[p.name].dense() != ref.spikes[p.name].dense()) for p in net.populations)
    for backend in ("numpy", "numba"):
        res = ns.simulate(net, {"in": c}, steps, seed=seed, backend=backend)
        for p in net.populations:
            np.testing.assert_array_equal(res.spikes[p.name].dense(), ref.spikes[p.name].dense(),
                                          err_msg=f"{backend} {p.name}")
    module = from_network(net, dtype=torch.float64)
    src = {"in": torch.as_tensor(c, dtype=torch.float64),
           "poi": torch.as_tensor(ref.spikes["poi"].dense(), dtype=torch.float64)}
    with torch.no_grad():
        out, _ = module(src)
    for p in net.populations:
        np.testing.assert_array_equal(out[p.name]["z"].numpy() > 0, ref.spikes[p.name].dense(), err_msg=f"torch {p.name}")


def test_counts_match_a_dense_float64_product_for_the_first_layer():
    """One IF layer (beta = 1, alpha = 0, theta huge): v[t] = sum_u x[u] with x[t] = c[t-1] @ W."""
    r = np.random.default_rng(3)
    w = r.normal(0, 1, (12, 9))
    net = ns.Network(dt=1e-3, populations=[ns.Population("h", 9, ns.IF(theta=1e9))],
                     projections=[ns.Projection("p", "in", "h", w)], inputs=[ns.SpikeInput("in", 12)])
    c = r.integers(0, K + 1, (30, 2, 12))
    for backend in ("numpy", "numba"):
        res = ns.simulate(net, {"in": c}, 30, backend=backend, traces={"h": ["v"]})
        want = np.cumsum(np.concatenate([np.zeros((1, 2, 9)), np.einsum("tbi,ij->tbj", c[:-1], w)]), axis=0)
        np.testing.assert_allclose(res.traces["h"]["v"], want, rtol=0, atol=30 * 12 * K * 4 * np.finfo(float).eps)


def test_counts_are_refused_with_the_reason_where_a_target_takes_0_1():
    net = random_network(1)
    c = _counts(1, 20, 1)
    with pytest.raises(NetworkError, match=r"inputs\.in.*partitions=1"):
        ns.simulate(net, {"in": c}, 20, partitions=2)
    with pytest.raises(NetworkError, match=r"inputs\.in: expected spikes as 0/1 .*found 5 .*\(the target's reason\)"):
        describe_run(net, {"in": c}, 20, no_counts="the target's reason")
    assert describe_run(net, {"in": np.minimum(c, 1)}, 20).inputs["in"].dtype == bool


def test_bad_counts_name_the_input_and_the_value():
    net = random_network(1)
    for bad, found in ((-1, "-1"), (2.5, "2.5"), (70000, "70000")):
        c = _counts(1, 20, 1)
        c = c.astype(float)
        c[3, 0, 4] = bad
        with pytest.raises(NetworkError, match=rf"inputs\.in: expected event counts.*found {found}.*\[3, 0, 4\]"):
            ns.simulate(net, {"in": c}, 20)


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_counts_scale_the_kernel_patches_of_event_driven_convolutions(seed):
    """Counts 0..5 into a random conv network: numpy and numba event-driven convolution equal the
    CSR lowering bit for bit (float64), and torch's own conv ops fed the counts spike for spike."""
    from conv_nets import random_conv_network, torch_simulate

    net = random_conv_network(seed)
    r = np.random.default_rng(seed + 5)
    size = net.inputs[0].size
    counts = (r.integers(0, K + 1, (30, 2, size)) * (r.random((30, 2, size)) < 0.15)).astype(np.int64)
    counts[0, 0, 0] = K
    inp = {"in": counts}
    ref = ns.simulate(net, inp, 30, dtype="float64", convolution="lowered", traces={"l1": ["v"]})
    want = torch_simulate(net, inp, 30)
    for backend in ("numpy", "numba"):
        got = ns.simulate(net, inp, 30, backend=backend, dtype="float64", convolution="events", traces={"l1": ["v"]})
        for p in net.populations:
            np.testing.assert_array_equal(got.spikes[p.name].dense(), ref.spikes[p.name].dense(), err_msg=p.name)
        np.testing.assert_array_equal(got.traces["l1"]["v"], ref.traces["l1"]["v"])
    for p in net.populations:
        np.testing.assert_array_equal(ref.spikes[p.name].dense(), want[p.name], err_msg=p.name)
    assert len(ref.spikes["l1"]) > 0

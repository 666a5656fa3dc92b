"""The fast simulator (issue 20, item 3): numba's event loop over delay segments and its dense
switch against the NumPy reference, the row segments, and the lowering cache."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from conv_nets import conv_inputs, random_conv_network
from helpers import assert_bitwise, random_inputs, random_network

import neurosim as ns
from neurosim.plan import cached_lower, lower
from neurosim.propagation import row_segments

numba_backend = pytest.importorskip("neurosim.backends.numba_backend")


def _all_traces(net: ns.Network) -> dict[str, list[str]]:
    return {p.name: ["v", "i", "a", "threshold"] for p in net.populations}


def multapse_network(seed: int, dyadic: bool = False, max_delay: int = 6) -> ns.Network:
    """Input (40) -> LIF (30) dense with one delay (a dense block), input -> ALIF (12) as CSR
    with multapses on delays 1..max_delay (same pair, same and different delays), recurrent CSR
    with multapses, LIF -> ALIF dense; Poisson input -> ALIF (a second block). dyadic: weights
    on a grid of 1/64, so every sum is exact in any order."""
    r = np.random.default_rng(seed)
    grid = (lambda w: np.round(w * 64) / 64) if dyadic else (lambda w: w)
    n_in, n1, n2 = 40, 30, 12
    pre = r.integers(0, n_in, 300)
    post = r.integers(0, n2, 300)
    pre = np.concatenate([pre, pre[:40], pre[40:60]])  # multapses: repeated pairs
    post = np.concatenate([post, post[:40], post[40:60]])
    d = np.concatenate([r.integers(1, max_delay + 1, 300), np.full(40, 1), r.integers(1, max_delay + 1, 20)])
    order = np.argsort(pre, kind="stable")
    csr = ns.CSR.from_coo(pre[order], post[order], grid(r.normal(0.05, 0.3, len(pre)))[order], (n_in, n2))
    rec = ns.CSR.from_coo(np.repeat(np.arange(n1), 3), r.integers(0, n1, 3 * n1), grid(r.normal(0, 0.3, 3 * n1)),
                          (n1, n1))
    pops = [ns.Population("l1", n1, ns.LIF(beta=0.9, alpha=0.3, theta=1.0, refractory=1)),
            ns.Population("l2", n2, ns.ALIF(beta=r.uniform(0.8, 0.95, n2), adapt=0.5, rho=0.9, theta=1.0,
                                            reset="zero"))]
    projs = [ns.Projection("dense_in", "x", "l1", grid(r.normal(0.05, 0.3, (n_in, n1))), delay=2),
             ns.Projection("csr_in", "x", "l2", csr, delay=d[order]),
             ns.Projection("rec", "l1", "l1", rec, delay=np.repeat([1, 2, 3], n1)[:rec.nnz]),
             ns.Projection("l1_l2", "l1", "l2", grid(r.normal(0.2, 0.4, (n1, n2))), delay=max_delay),
             ns.Projection("poi_l2", "poi", "l2", grid(r.normal(0.3, 0.2, (8, n2))), delay=1)]
    return ns.Network(dt=1e-3, populations=pops, projections=projs,
                      inputs=[ns.SpikeInput("x", n_in), ns.PoissonInput("poi", 8, rate=150.0)])


def _inputs(seed: int, steps: int, batch: int, p: float, counts: bool = False) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    x = r.random((steps, batch, 40)) < p
    return {"x": (x * r.integers(1, 4, x.shape)).astype(np.uint16) if counts else x}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_event_path_equals_reference_with_multapses_delays_counts_batches_and_poisson(dtype):
    for seed, counts in ((0, False), (1, True), (2, False)):
        net = multapse_network(seed)
        inp = _inputs(seed, 80, 3, 0.3, counts)
        ref = ns.simulate(net, inp, 80, seed=seed, dtype=dtype, traces=_all_traces(net))
        got = ns.simulate(net, inp, 80, seed=seed, dtype=dtype, traces=_all_traces(net), backend="numba",
                          chunk=30, backend_options={"dense": "never"})
        assert_bitwise(ref, got, f"seed {seed} counts {counts}")
        assert len(ref.spikes["l1"]) > 100 and len(ref.spikes["l2"]) > 10
        assert got.meta["backend_stats"] == {"dense_chunks": 0, "event_chunks": 3}


def test_populations_without_adaptation_skip_its_state_and_keep_every_bit():
    """A uniform LIF population with `a` unrecorded runs the lane without the adaptation state
    (uniform_groups' last column); spikes and v, i, threshold stay the reference's."""
    net = multapse_network(9)
    tr = {"l1": ["v", "i", "threshold"], "l2": ["v", "threshold"]}
    plan = cached_lower(net, "float64", "events")
    assert numba_backend.uniform_groups(plan, record_a=False)[:, 2:].tolist() == [[1, 1], [0, 0]]
    assert numba_backend.uniform_groups(plan, record_a=True)[:, 2:].tolist() == [[1, 0], [0, 0]]
    inp = _inputs(9, 80, 2, 0.3)
    ref = ns.simulate(net, inp, 80, seed=9, traces=tr)
    got = ns.simulate(net, inp, 80, seed=9, traces=tr, backend="numba", backend_options={"dense": "never"})
    assert_bitwise(ref, got, "without adaptation")
    assert len(ref.spikes["l1"]) > 100


def test_event_path_equals_reference_on_conv_networks_and_partitioned_runs():
    for seed in range(3):
        net = random_conv_network(seed)
        inp = conv_inputs(net, seed, 40, 2)
        ref = ns.simulate(net, inp, 40, traces=_all_traces(net), convolution="lowered")
        got = ns.simulate(net, inp, 40, traces=_all_traces(net), backend="numba", backend_options={"dense": "never"})
        assert_bitwise(ref, got, f"conv seed {seed}")
        assert sum(len(s) for s in ref.spikes.values()) > 50
    net = random_network(3)
    inp = random_inputs(3, 60, 2)
    parts = ns.simulate(net, inp, 60, seed=3, partitions=3, traces=_all_traces(net))
    got = ns.simulate(net, inp, 60, seed=3, backend="numba", traces=_all_traces(net), backend_options={"dense": "never"})
    assert_bitwise(parts, got, "partitioned")


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("counts", [False, True])
def test_dense_switch_equals_reference_bit_for_bit_when_sums_are_exact(counts, backend):
    """Weights on a grid of 1/64 (and inputs, counts up to 3) make every partial sum exact, so
    the product over the batch (BLAS order) must give the reference's states exactly."""
    net = multapse_network(4, dyadic=True)
    inp = _inputs(4, 70, 4, 0.4, counts)
    ref = ns.simulate(net, inp, 70, seed=4, traces=_all_traces(net))
    got = ns.simulate(net, inp, 70, seed=4, traces=_all_traces(net), backend=backend, chunk=25,
                      backend_options={"dense": "always"})
    assert got.meta["backend_stats"] == {"dense_chunks": 3, "event_chunks": 0}
    assert [b.name for b in cached_lower(net, "float64", "events").blocks] == ["dense_in", "poi_l2"]
    assert ref.meta["backend_stats"] == {"dense_chunks": 0, "event_chunks": 1}  # numpy: 'never' by default
    assert_bitwise(ref, got, "dense switch")
    assert len(ref.spikes["l1"]) > 100


def test_dense_switch_on_random_weights_matches_to_rounding():
    """float64, weights of any value: the product sums the block's <= 40 inputs in another order,
    each sum off by at most 40 * eps * sum|w x| per step; the membrane (beta 0.9, alpha 0.3)
    accumulates that over at most 1 / ((1 - 0.9)(1 - 0.3)) steps' worth. Spikes identical."""
    net = multapse_network(5)
    inp = _inputs(5, 80, 3, 0.3)
    ref = ns.simulate(net, inp, 80, seed=5, traces=_all_traces(net))
    got = ns.simulate(net, inp, 80, seed=5, traces=_all_traces(net), backend="numba",
                      backend_options={"dense": "always"})
    w = np.abs(net.projections[0].weights).sum(axis=0).max()
    bound = 40 * np.finfo(np.float64).eps * w / ((1 - 0.9) * (1 - 0.3)) * 4  # x4: the i and v roundings too
    for name in ("l1", "l2"):
        for f in ("step", "batch", "index"):
            np.testing.assert_array_equal(getattr(got.spikes[name], f), getattr(ref.spikes[name], f))
    diff = np.abs(got.traces["l1"]["v"] - ref.traces["l1"]["v"]).max()
    assert diff <= bound, (diff, bound)
    assert got.meta["backend_stats"]["dense_chunks"] == 1  # the product really ran


def test_auto_switch_follows_the_measured_input_density():
    r = np.random.default_rng(6)
    net = ns.Network(dt=1e-3, populations=[ns.Population("l1", 30, ns.LIF())], inputs=[ns.SpikeInput("x", 40)],
                     projections=[ns.Projection("fc", "x", "l1", r.normal(0, 0.3, (40, 30)))])
    cross = numba_backend.DENSE_CROSSOVER["float64"]
    for p, kind in ((cross / 4, "event_chunks"), (min(1.0, cross * 3), "dense_chunks")):
        res = ns.simulate(net, _inputs(6, 40, 2, p), 40, backend="numba", chunk=20)
        assert res.meta["backend_stats"][kind] == 2, (p, res.meta["backend_stats"])


def test_bad_dense_option_is_refused_naming_the_field():
    with pytest.raises(ns.NetworkError, match="backend_options.dense"):
        ns.simulate(multapse_network(0), _inputs(0, 5, 1, 0.1), 5, backend="numba",
                    backend_options={"dense": "sometimes"})


def test_row_segments_cut_rows_by_delay_keeping_multapse_order():
    # row 0: targets 3,4,5 (delay 1), 7 (delay 2), 3 (delay 1, a multapse after the first 3)
    indptr = np.array([0, 5, 5, 8])
    indices = np.array([3, 4, 5, 7, 3, 0, 1, 2])
    weights = np.arange(8.0)
    delays = np.array([1, 1, 1, 2, 1, 2, 2, 2])
    block = np.array([-1, -1, -1, -1, -1, 0, 0, 0])
    seg = row_segments(indptr, indices, weights, delays, block)
    assert seg.seg_ptr.tolist() == [0, 2, 2, 3]
    assert seg.seg_start.tolist() == [0, 4, 5, 8]
    assert seg.seg_delay.tolist() == [1, 2, 2] and seg.seg_block.tolist() == [-1, -1, 0]
    assert seg.indices.tolist() == [3, 4, 5, 3, 7, 0, 1, 2]  # the second 3 still after the first
    assert seg.weights.tolist() == [0, 1, 2, 4, 3, 5, 6, 7]
    assert seg.seg_lo.tolist() == [-1, 7, 0]  # consecutive targets: a contiguous add


def test_lowering_is_cached_per_network_identity_and_read_only():
    net = random_network(7)
    plan = cached_lower(net, "float32", "events")
    assert cached_lower(net, "float32", "events") is plan
    assert cached_lower(net, "float64", "events") is not plan
    twin = net.replace()  # equal content, another object: its own entry
    assert cached_lower(twin, "float32", "events") is not plan
    fresh = lower(net, "float32", "events")
    for f in ("indptr", "indices", "weights", "delays", "synapse_block"):
        np.testing.assert_array_equal(getattr(plan, f), getattr(fresh, f))
        assert not getattr(plan, f).flags.writeable
    with pytest.raises(ValueError):
        net.populations[0].params.theta[0] = 5.0  # the records a plan is made of are read-only
    gone = weakref.ref(plan)
    del net, plan, twin
    gc.collect()
    assert gone() is None  # the cache holds a network weakly, and its plans with it


def test_numba_step_kernel_still_matches_canonical_step():
    """The compiled lane also serves training's one-step kernel: bitwise the canonical step."""
    from neurosim.models import NeuronState, neuron_step

    p = random_network(8).populations[0].params
    r = np.random.default_rng(8)
    shape = (3, len(p.theta))
    s = NeuronState(*(r.normal(0, 1, shape) for _ in range(3)), (r.random(shape) < 0.3) * 1.0,
                    r.integers(0, 3, shape) * 1.0)
    x = r.normal(0.5, 1, shape)
    ref = neuron_step(p, s, x)
    out = [np.empty(shape) for _ in range(6)]
    numba_backend.step_kernel()(x, *p, *s, *out)
    for k, name in enumerate(("i", "v", "a", "z", "r")):
        np.testing.assert_array_equal(out[k], getattr(ref, name), err_msg=name)


@pytest.mark.parametrize("dense", ["never", "always"])
def test_event_buffer_refills_keep_every_event_in_order(dense):
    """A chunk with ~38x the event buffer's first size (65536): the compiled loop stops when the
    buffer could overflow and the runner sizes the next buffer from the rate so far; the events
    concatenated over the calls equal the reference's, in order (SpikeTrains sorted by
    (step, trial, index)), and every step's spikes are there once."""
    n, batch, steps = 600, 4, 1200
    net = ns.Network(dt=1e-3, populations=[ns.Population("h", n, ns.LIF(beta=0.5, theta=1.0, bias=np.linspace(
        0.2, 3.0, n)))], projections=[ns.Projection("in", "x", "h", np.full((3, n), 0.25))],
        inputs=[ns.SpikeInput("x", 3)])
    x = np.random.default_rng(0).random((steps, batch, 3)) < 0.3
    ref = ns.simulate(net, {"x": x}, steps, backend="numpy")
    got = ns.simulate(net, {"x": x}, steps, backend="numba", chunk=steps, backend_options={"dense": dense})
    assert len(ref.spikes["h"]) > 30 * 65536
    assert_bitwise(ref, got, f"dense={dense}")


@pytest.mark.parametrize("dtype", [np.bool_, np.uint16])
def test_compiled_source_events_equal_numpys_nonzero(dtype):
    """The numba runner's input events of a chunk (fill_source_events) are np.nonzero's, shifted
    to the chunk's first step and the sources' plan offset, for spikes and event counts."""
    from neurosim.backends.numba_backend import Runner
    from neurosim.simulate import source_events

    net = random_network(2)
    plan = lower(net, "float64")
    src = (np.random.default_rng(3).random((37, 3, plan.n_sources)) < 0.3).astype(dtype)
    if dtype == np.uint16:
        src[5, 1, :] *= 7  # counts above 1
    runner = Runner(plan, 3, np.zeros(0, np.int64), ())
    want = np.nonzero(src)
    for got, ref in zip(runner.source_events(src, 100), source_events(src, 100, plan.n_neurons)):
        np.testing.assert_array_equal(got, ref)
        assert got.dtype == ref.dtype == np.int64
    for got, w, shift in zip(runner.source_events(src, 100), want, (100, 0, plan.n_neurons)):
        np.testing.assert_array_equal(got, w + shift)


def test_numba_events_come_sorted_as_its_runner_declares():
    """simulate trusts a runner's ``events_sorted`` and skips its sort check: the numba runner's
    raw events, over chunks, refills and a product-switched block, are strictly increasing in
    (step, trial, neuron) on random networks."""
    from neurosim.backends.numba_backend import Runner

    assert Runner.events_sorted
    for seed in range(6):
        net = random_network(seed)
        plan = lower(net, "float64")
        batch = 1 + seed % 3
        src = np.random.default_rng(seed).random((90, batch, plan.n_sources)) < 0.3
        runner = Runner(plan, batch, np.zeros(0, np.int64), (), dense="always" if seed % 2 else "never")
        runner.cap = 64  # refills from the first step on
        keys = []
        for t0 in range(0, 90, 40):
            t, b, j, _ = runner.run(t0, src[t0:t0 + 40])
            keys.append((t * batch + b) * plan.n_neurons + j)
        key = np.concatenate(keys)
        assert key.size > 500 and np.all(np.diff(key) > 0), seed

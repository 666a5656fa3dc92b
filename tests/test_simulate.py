"""The simulator against an independent dense float64 reference, plus its contracts."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import random_inputs, random_network

import neurosim as ns
from neurosim.backends import numpy_backend
from neurosim.models import NeuronState, neuron_step
from neurosim.plan import lower


def dense_reference(network, inputs, steps, batch, seed):
    """Clock-driven float64 simulation with dense delayed matrix products and a full spike history.

    Shares only the neuron step with the simulator (tested on its own against closed forms);
    propagation, delays, ring buffer and event handling are independent.
    """
    plan = lower(network, "float64")
    n, tot = plan.n_neurons, plan.n_total
    D = plan.ring
    W = np.zeros((D, tot, n))  # W[d, pre, post]
    rows = np.repeat(np.arange(tot), np.diff(plan.indptr))
    np.add.at(W, (plan.delays, rows, plan.indices), plan.weights)
    res = ns.simulate(network, inputs, steps, batch=batch, seed=seed)  # only for the input spikes
    src = np.zeros((steps, batch, plan.n_sources), bool)
    for s in network.inputs:
        lo, hi = plan.slices[s.name]
        src[:, :, lo - n:hi - n] = res.spikes[s.name].dense()
    hist = np.zeros((steps, batch, tot))
    st = NeuronState(*(np.broadcast_to(a, (batch, n)).copy() for a in (plan.i0, plan.v0, plan.a0)),
                     np.zeros((batch, n)), np.zeros((batch, n)))
    vs = np.zeros((steps, batch, n))
    for t in range(steps):
        x = np.zeros((batch, n))
        for d in range(1, D):
            if t - d >= 0:
                x += hist[t - d] @ W[d]
        st = neuron_step(plan.params, st, x)
        hist[t, :, :n] = st.z
        hist[t, :, n:] = src[t]
        vs[t] = st.v
    return hist[:, :, :n] > 0, vs, plan


@pytest.mark.parametrize("seed", range(6))
def test_event_driven_equals_dense_float64_reference(seed):
    net = random_network(seed)
    steps, batch = 150, 2
    inp = random_inputs(seed, steps, batch)
    ref_spikes, ref_v, plan = dense_reference(net, inp, steps, batch, seed)
    res = ns.simulate(net, inp, steps, seed=seed, traces={p.name: ["v"] for p in net.populations})
    for p in net.populations:
        lo, hi = plan.slices[p.name]
        np.testing.assert_array_equal(res.spikes[p.name].dense(), ref_spikes[:, :, lo:hi], err_msg=p.name)
        np.testing.assert_allclose(res.traces[p.name]["v"], ref_v[:, :, lo:hi], rtol=1e-12, atol=1e-12)
    assert sum(len(res.spikes[p.name]) for p in net.populations) > 50  # the test exercises spiking


def test_trials_are_independent():
    """Trial b of a batch equals a single-trial run with the same input (and no Poisson source)."""
    net = random_network(3)
    net = net.replace(inputs=net.inputs[:1], projections=[p for p in net.projections if p.pre != "poi"])
    inp = random_inputs(3, 120, 4)
    both = ns.simulate(net, inp, 120)
    for b in range(4):
        one = ns.simulate(net, {"in": inp["in"][:, b]}, 120)
        for name, sp in one.spikes.items():
            np.testing.assert_array_equal(both.spikes[name].dense()[:, b], sp.dense()[:, 0])


def test_seed_determinism_and_chunk_independence():
    net = random_network(4)
    inp = random_inputs(4, 300, 2)
    a = ns.simulate(net, inp, 300, seed=11)
    b = ns.simulate(net, inp, 300, seed=11, chunk=7)
    c = ns.simulate(net, inp, 300, seed=12)
    for name in a.spikes:
        np.testing.assert_array_equal(a.spikes[name].dense(), b.spikes[name].dense())
    assert not np.array_equal(a.spikes["poi"].dense(), c.spikes["poi"].dense())


def test_poisson_rates_match_rate_times_dt():
    rates = np.array([5.0, 50.0, 200.0])
    net = ns.Network(dt=1e-3, populations=[ns.Population("p", 1, ns.LI())],
                     inputs=[ns.PoissonInput("src", 3, rate=rates)])
    res = ns.simulate(net, steps=20000, batch=5, seed=1)
    counts = res.spikes["src"].counts().sum(axis=0)
    n = 20000 * 5
    p = rates * 1e-3
    z = (counts - n * p) / np.sqrt(n * p * (1 - p))
    assert np.all(np.abs(z) < 5), z


def test_event_driven_touches_only_rows_of_spiking_neurons():
    """Poison the outgoing weights of neurons that never spike with NaN: results stay finite
    and equal, so propagation never reads those rows (NumPy and numba runners)."""
    net = random_network(5)
    inp = random_inputs(5, 100, 2)
    res = ns.simulate(net, inp, 100, seed=5, traces={p.name: ["v"] for p in net.populations})
    plan = lower(net, "float64")
    silent = []
    for p in net.populations:
        lo, _ = plan.slices[p.name]
        counts = res.spikes[p.name].counts().sum(axis=0)
        silent += list(lo + np.nonzero(counts == 0)[0])
    assert silent, "the test needs silent neurons"
    w = plan.weights.copy()
    for j in silent:
        w[plan.indptr[j]:plan.indptr[j + 1]] = np.nan
    poisoned = plan.__class__(**{**plan.__dict__, "weights": w})
    src = np.zeros((100, 2, plan.n_sources), bool)
    for s in net.inputs:
        lo, hi = plan.slices[s.name]
        src[:, :, lo - plan.n_neurons:hi - plan.n_neurons] = res.spikes[s.name].dense()
    for module in (numpy_backend, pytest.importorskip("neurosim.backends.numba_backend")):
        exact = {"dense": "never"} if module.NAME == "numba" else {}  # event-driven: the reference's sums
        runner = module.Runner(poisoned, 2, np.arange(plan.n_neurons), ["v"], **exact)
        _, _, _, tr = runner.run(0, src)
        assert np.all(np.isfinite(tr["v"])), module.NAME
        ref = np.concatenate([res.traces[p.name]["v"] for p in net.populations], axis=2)
        np.testing.assert_array_equal(tr["v"], ref)


def test_result_views_are_consistent():
    net = random_network(6)
    res = ns.simulate(net, random_inputs(6, 80, 3), 80, seed=2)
    for name, sp in res.spikes.items():
        dense = sp.dense()
        assert dense.shape == (80, 3, sp.size)
        assert dense.sum() == len(sp)
        np.testing.assert_array_equal(dense.sum(axis=0), sp.counts())
        order = np.lexsort((sp.index, sp.batch, sp.step))
        np.testing.assert_array_equal(order, np.arange(len(sp)))
    assert res.timings["run"] > 0 and res.timings["total"] >= res.timings["run"]
    assert "alif" in res.summary()


def test_float32_follows_float64_until_threshold_ties():
    """float32 runs the same map; on these networks the spike trains agree for most neurons."""
    agree = []
    for seed in range(5):
        net = random_network(seed)
        inp = random_inputs(seed, 100, 1)
        a = ns.simulate(net, inp, 100, seed=seed, dtype="float64")
        b = ns.simulate(net, inp, 100, seed=seed, dtype="float32")
        assert b.dtype == "float32"
        for p in net.populations:
            agree.append(np.mean(np.all(a.spikes[p.name].dense() == b.spikes[p.name].dense(), axis=0)))
    assert np.mean(agree) > 0.9


@pytest.mark.parametrize("bad,field", [
    ({"in": np.zeros((10, 5))}, "inputs.in"),
    ({"in": np.full((100, 12), 0.5)}, "inputs.in"),
    ({"in": np.zeros((100, 12)), "zz": np.zeros((100, 1))}, "inputs.zz"),
    ({"in": np.zeros((100, 12)), "poi": np.zeros((100, 7))}, "inputs.poi"),
    ({}, "inputs.in"),
])
def test_bad_inputs(bad, field):
    with pytest.raises(ns.NetworkError) as exc:
        ns.simulate(random_network(0), bad, 100)
    assert exc.value.field == field


def test_bad_arguments():
    net = random_network(0)
    inp = random_inputs(0, 50, 1)
    for kw, field in [(dict(steps=0), "steps"), (dict(steps=10, dtype="float16"), "dtype"),
                      (dict(steps=10, batch=0), "batch"), (dict(steps=10, traces=["alif:u"]), "traces.alif"),
                      (dict(steps=10, traces=["nope:v"]), "traces.nope")]:
        with pytest.raises(ns.NetworkError) as exc:
            ns.simulate(net, inp, **kw)
        assert exc.value.field == field
    with pytest.raises(ns.BackendUnavailable, match="expected one of"):
        ns.simulate(net, inp, 10, backend="fpga")


def test_batch_one_inputs_broadcast_to_explicit_batch():
    net = random_network(7)
    one = random_inputs(7, 60, 1)
    res = ns.simulate(net, one, 60, batch=3, seed=1)
    assert res.batch == 3
    dense = res.spikes["in"].dense()
    assert np.array_equal(dense[:, 0], dense[:, 2]) and np.array_equal(dense[:, 0], one["in"][:, 0])


def test_describe_run_is_the_one_description_of_a_run():
    """describe_run checks what simulate checks and takes a Network or a FixedPointNetwork alike;
    a RunSpec refuses parts that disagree; SpikeTrains.from_dense inverts dense()."""
    from neurosim.fixed_point import quantize
    from neurosim.run import RunSpec, describe_run

    net = random_network(0)
    inp = random_inputs(0, 50, 3)
    run = describe_run(net, inp, traces=["alif:v", "lif:i", "alif:v"])
    assert (run.steps, run.batch) == (50, 3) and list(run.traces.items()) == [("alif", ["v"]), ("lif", ["i"])]
    assert run.inputs["in"].dtype == bool and run.inputs["in"].shape == (50, 3, 12)
    with pytest.raises(ns.NetworkError) as exc:
        describe_run(net, inp, 50, batch=2)
    assert exc.value.field == "batch"
    lif = ns.Network(dt=1e-3, populations=[ns.Population("h", 4, ns.LIF(alpha=0.0, beta=0.9))],
                     projections=[ns.Projection("ih", "in", "h", np.full((3, 4), 0.5))],
                     inputs=[ns.SpikeInput("in", 3)])
    fixed_run = describe_run(quantize(lif), {"in": np.ones((7, 3))}, traces={"h": ["v_int"]},
                             trace_vars=("v", "v_int"))
    assert fixed_run.traces == {"h": ["v_int"]} and fixed_run.inputs["in"].shape == (7, 1, 3)
    with pytest.raises(ns.NetworkError, match="exists in mode 'fixed_pt' only"):
        describe_run(lif, {"in": np.ones((7, 3))}, traces=["h:v_int"], trace_vars=("v", "v_int"),
                     unavailable={"v_int": "exists in mode 'fixed_pt' only"})
    with pytest.raises(ns.NetworkError) as exc:
        RunSpec(network=lif, inputs={"in": np.ones((7, 1, 3))}, steps=7, batch=1, traces={})
    assert exc.value.field == "inputs.in"
    with pytest.raises(ns.NetworkError) as exc:
        RunSpec(network=lif, inputs={}, steps=7, batch=1, traces={})
    assert exc.value.field == "inputs"
    res = ns.simulate(net, inp, 50)
    for trains in res.spikes.values():
        again = ns.SpikeTrains.from_dense(trains.dense())
        for f in ("step", "batch", "index"):
            np.testing.assert_array_equal(getattr(again, f), getattr(trains, f))
            assert getattr(again, f).dtype == getattr(trains, f).dtype

"""Construction-time validation: every bad field raises NetworkError naming that field."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns


def net(**over):
    """A valid two-population network; keyword overrides replace its pieces."""
    pops = over.pop("pops", [ns.Population("a", 3, ns.LIF()), ns.Population("b", 2, ns.LI())])
    projs = over.pop("projs", [ns.Projection("ab", "a", "b", np.ones((3, 2)))])
    inputs = over.pop("inputs", [ns.SpikeInput("x", 4)])
    return ns.Network(dt=over.pop("dt", 1e-3), populations=pops, projections=projs, inputs=inputs)


def raises(field, fn, *a, **k):
    with pytest.raises(ns.NetworkError) as exc:
        fn(*a, **k)
    assert exc.value.field.startswith(field), (exc.value.field, str(exc.value))
    return str(exc.value)


def test_valid_network_builds_and_summarises():
    n = net()
    assert n.n_neurons == 5 and n.n_synapses == 6
    assert "ab" in n.summary() and "LIF" in n.summary()


@pytest.mark.parametrize("dt", [0, -1e-3, float("nan"), float("inf"), "fast"])
def test_bad_dt(dt):
    raises("dt", net, dt=dt)


@pytest.mark.parametrize("name", ["", "1abc", "a b", "x" * 65, None, "a/b"])
def test_bad_population_name(name):
    raises("populations.name", ns.Population, name, 3, ns.LIF())


@pytest.mark.parametrize("size", [0, -3, 2.5, True, "3"])
def test_bad_size(size):
    raises("populations.p.size", ns.Population, "p", size, ns.LIF())


def test_duplicate_names():
    raises("populations.a", net, pops=[ns.Population("a", 3, ns.LIF()), ns.Population("a", 2, ns.LI())])
    raises("populations.a", net, inputs=[ns.SpikeInput("a", 3)])  # the population clashes with the input
    p = ns.Projection("ab", "a", "b", np.ones((3, 2)))
    raises("projections.ab", net, projs=[p, p])


@pytest.mark.parametrize("field,kw", [
    ("beta", dict(beta=[0.5, 0.5])),
    ("theta", dict(theta=float("nan"))), ("refractory", dict(refractory=-1)),
    ("refractory", dict(refractory=1.5)), ("bias", dict(bias="x")), ("reset", dict(reset="hard")),
])
def test_bad_lif_parameters(field, kw):
    msg = raises(f"populations.p.model.{field}", ns.Population, "p", 3, ns.LIF(**kw))
    assert "expected" in msg or "must" in msg


def test_bad_alif_rho_and_initial_state():
    raises("ALIF.rho", ns.ALIF, rho=1.5)  # refused by the model record itself (tests/test_validation.py)
    raises("populations.p.v0", ns.Population, "p", 2, ns.ALIF(), v0=[0.0, 0.1, 0.2])
    raises("populations.p.i0", ns.Population, "p", 2, ns.ALIF(), i0=[np.inf, 0])
    raises("populations.p.model", ns.Population, "p", 2, "lif")


def test_bad_weights():
    raises("projections.ab.weights", ns.Projection, "ab", "a", "b", np.ones(3))
    raises("projections.ab.weights", ns.Projection, "ab", "a", "b", [[np.nan, 1.0]])
    raises("projections.ab.weights", ns.Projection, "ab", "a", "b", [["a", "b"]])
    msg = raises("projections.ab.weights", net, projs=[ns.Projection("ab", "a", "b", np.ones((2, 2)))])
    assert "(3, 2)" in msg


@pytest.mark.parametrize("delay", [0, -1, 1.5, "2", np.ones((2, 2), int)])
def test_bad_delays(delay):
    raises("projections.ab.delay", ns.Projection, "ab", "a", "b", np.ones((3, 2)), delay=delay)


def test_bad_endpoints():
    raises("projections.ab.pre", net, projs=[ns.Projection("ab", "zz", "b", np.ones((3, 2)))])
    raises("projections.ab.post", net, projs=[ns.Projection("ab", "a", "x", np.ones((3, 4)))])
    msg = raises("projections.ba.pre", net, projs=[ns.Projection("ba", "b", "a", np.ones((2, 3)))])
    assert "never spikes" in msg


def test_bad_csr():
    good = ns.CSR(np.array([0, 1, 3, 3]), np.array([0, 0, 1]), np.array([1.0, 2.0, 3.0]), (3, 2))
    ns.Projection("ab", "a", "b", good)
    raises("projections.ab.weights.indptr", ns.Projection, "ab", "a", "b",
           ns.CSR(np.array([0, 2, 1, 3]), good.indices, good.values, (3, 2)))
    raises("projections.ab.weights.indices", ns.Projection, "ab", "a", "b",
           ns.CSR(good.indptr, np.array([0, 0, 2]), good.values, (3, 2)))
    raises("projections.ab.weights.values", ns.Projection, "ab", "a", "b",
           ns.CSR(good.indptr, good.indices, np.array([1.0, np.nan, 3.0]), (3, 2)))
    raises("projections.ab.delay", ns.Projection, "ab", "a", "b", good, delay=np.ones(4, int))


def test_scipy_sparse_accepted():
    sp = pytest.importorskip("scipy.sparse")
    m = sp.random(3, 2, density=0.5, format="coo", random_state=0)
    p = ns.Projection("ab", "a", "b", m)
    assert p.is_sparse and np.allclose(p.weights.to_dense(), m.toarray())


def test_poisson_rate_checks():
    raises("inputs.p.rate", ns.PoissonInput, "p", 3, rate=-1.0)
    raises("inputs.p.rate", net, inputs=[ns.PoissonInput("p", 3, rate=2000.0)])


def test_networks_are_immutable_and_replace_revalidates():
    n = net()
    with pytest.raises(AttributeError):
        n.dt = 0.1  # type: ignore[misc]
    assert not n.projections[0].weights.flags.writeable
    raises("dt", n.replace, dt=-1.0)
    assert n.replace(dt=2e-3).dt == 2e-3


def test_csr_dense_round_trip():
    w = np.random.default_rng(0).normal(size=(5, 4)) * (np.random.default_rng(1).random((5, 4)) < 0.5)
    np.testing.assert_array_equal(ns.CSR.from_dense(w).to_dense(), w)


@pytest.mark.parametrize("delay", [np.inf, np.array([[np.inf, 1.0]] * 3), 10**12])
def test_non_finite_and_absurd_delays(delay):
    raises("projections.ab.delay", ns.Projection, "ab", "a", "b", np.ones((3, 2)), delay=delay)


def test_dt_and_name_must_be_real_values():
    raises("dt", net, dt="1e-3")
    raises("dt", net, dt=True)
    with pytest.raises(ns.NetworkError, match="name"):
        ns.Network(dt=1e-3, populations=[ns.Population("a", 1, ns.LIF())], name=123)


def test_models_copy_caller_arrays():
    beta = np.full(3, 0.5)
    pop = ns.Population("p", 3, ns.LIF(beta=beta))
    beta[:] = 0.9
    assert np.all(pop.model.beta == 0.5) and np.all(pop.params.beta == 0.5)


def test_lookup_of_unknown_names_is_a_network_error():
    raises("populations.zz", net().population, "zz")
    raises("inputs.zz", net().input, "zz")

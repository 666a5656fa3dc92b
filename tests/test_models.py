"""Each neuron model against closed-form solutions of its discrete map (float64, tight tolerances)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import neurosim as ns

BACKENDS = ["numpy", "numba"]


def run_alone(model, steps, backend="numpy", dtype="float64", v0=0.0, i0=0.0, inputs=None,
              projections=(), sources=(), traces=("v", "i", "a", "threshold")):
    net = ns.Network(dt=1e-3, populations=[ns.Population("p", 1, model, v0=v0, i0=i0)],
                     projections=list(projections), inputs=list(sources))
    r = ns.simulate(net, inputs, steps, backend=backend, dtype=dtype, traces={"p": list(traces)})
    return r.spikes["p"].step, {k: v[:, 0, 0] for k, v in r.traces["p"].items()}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("c,beta,refr", [(0.3, 0.9, 0), (0.13, 0.95, 0), (0.3, 0.9, 4), (0.5, 0.8, 2)])
def test_lif_constant_current_first_spike_and_isi(backend, c, beta, refr):
    """alpha = 0, reset to zero: v_k = c(1-beta^k)/(1-beta) after k steps of input c.

    First spike at step floor(L), L = log(1 - theta(1-beta)/c)/log(beta); ISI = floor(L) + 1 + refr.
    """
    theta = 1.0
    L = math.log(1 - theta * (1 - beta) / c) / math.log(beta)
    k_star = math.floor(L) + 1
    steps = 400
    expected = np.arange(k_star - 1, steps, k_star + refr)
    spikes, tr = run_alone(ns.LIF(beta=beta, bias=c, theta=theta, reset="zero", refractory=refr), steps, backend)
    np.testing.assert_array_equal(spikes, expected)
    k = np.arange(1, k_star)
    np.testing.assert_allclose(tr["v"][: k_star - 1], c * (1 - beta**k) / (1 - beta), rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cuba_lif_trajectory(backend):
    """alpha, beta > 0, no spike: v_k = c/(1-a) [ (1-b^k)/(1-b) - a (a^k - b^k)/(a - b) ]."""
    a, b, c = 0.8, 0.95, 0.01
    spikes, tr = run_alone(ns.LIF(beta=b, alpha=a, bias=c, theta=1e9), 300, backend)
    k = np.arange(1, 301)
    i_exp = c * (1 - a**k) / (1 - a)
    v_exp = c / (1 - a) * ((1 - b**k) / (1 - b) - a * (a**k - b**k) / (a - b))
    assert spikes.size == 0
    np.testing.assert_allclose(tr["i"], i_exp, rtol=1e-12)
    np.testing.assert_allclose(tr["v"], v_exp, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cuba_lif_float32_stays_within_float32_precision(backend):
    a, b, c = 0.8, 0.95, 0.01
    _, tr = run_alone(ns.LIF(beta=b, alpha=a, bias=c, theta=1e9), 300, backend, dtype="float32")
    k = np.arange(1, 301)
    v_exp = c / (1 - a) * ((1 - b**k) / (1 - b) - a * (a**k - b**k) / (a - b))
    assert tr["v"].dtype == np.float32
    rel = np.max(np.abs(tr["v"] - v_exp) / v_exp)
    assert rel < 300 * np.finfo(np.float32).eps  # error grows at most linearly in steps


@pytest.mark.parametrize("backend", BACKENDS)
def test_if_integration_subtractive_reset_is_exact(backend):
    """IF, c = 0.25, theta = 1 (binary exact): N(k) = ceil(k c/theta) - 1, v_k = k c - theta N(k);
    v == theta exactly does not spike (strict threshold)."""
    spikes, tr = run_alone(ns.IF(theta=1.0, bias=0.25), 64, backend)
    k = np.arange(1, 65)
    n = np.ceil(k * 0.25) - 1
    np.testing.assert_array_equal(tr["v"], k * 0.25 - n)
    np.testing.assert_array_equal(spikes, np.nonzero(np.diff(np.concatenate([[0], n])))[0])
    assert 3 not in spikes and 4 in spikes  # v_4 = 1.0 is not > 1; v_5 = 1.25 is


@pytest.mark.parametrize("backend", BACKENDS)
def test_alif_threshold_after_known_spike_train(backend):
    """beta = 0 and huge input weight force spikes exactly one step after each input spike;
    then a[t] = adapt_gain * sum_{s in S, s < t} rho^(t-1-s) and A[t] = theta + b a[t]."""
    rho, b, g = 0.9, 0.7, 0.1
    steps = 80
    drive = np.zeros((steps, 1), bool)
    drive[[3, 4, 10, 30, 31, 32, 60], 0] = True
    model = ns.ALIF(beta=0.0, rho=rho, adapt=b, adapt_gain=g, theta=1.0)
    proj = ns.Projection("d", "drive", "p", [[50.0]])
    spikes, tr = run_alone(model, steps, backend, inputs={"drive": drive}, projections=[proj],
                           sources=[ns.SpikeInput("drive", 1)])
    S = np.nonzero(drive[:, 0])[0] + 1
    np.testing.assert_array_equal(spikes, S)
    t = np.arange(steps)
    a_exp = np.array([g * sum(rho ** (tt - 1 - s) for s in S if s < tt) for tt in t])
    np.testing.assert_allclose(tr["a"], a_exp, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(tr["threshold"], 1.0 + b * a_exp, rtol=1e-13)


def test_alif_adaptation_suppresses_firing_against_lif():
    """Same drive: adaptation lowers the count, and the ISI lengthens monotonically."""
    lif_spikes, _ = run_alone(ns.LIF(beta=0.9, bias=0.2), 500)
    alif_spikes, _ = run_alone(ns.ALIF(beta=0.9, bias=0.2, rho=0.98, adapt=0.2), 500)
    assert len(alif_spikes) < 0.6 * len(lif_spikes)
    isi = np.diff(alif_spikes)
    assert isi[-1] > isi[0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_li_impulse_response(backend, alpha):
    """One spike at step 0, delay 1, weight w: v[t] = w (beta^t - alpha^t)/(beta - alpha), t >= 1."""
    beta, w = 0.9, 0.7
    drive = np.zeros((50, 1), bool)
    drive[0, 0] = True
    spikes, tr = run_alone(ns.LI(beta=beta, alpha=alpha), 50, backend, inputs={"d": drive},
                           projections=[ns.Projection("x", "d", "p", [[w]])], sources=[ns.SpikeInput("d", 1)],
                           traces=("v",))
    t = np.arange(50)
    expected = np.where(t >= 1, w * (beta**t - alpha**t) / (beta - alpha), 0.0)
    assert spikes.size == 0
    np.testing.assert_allclose(tr["v"], expected, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("backend", BACKENDS)
def test_delays_spike_at_t_arrives_at_t_plus_d(backend):
    """Per-synapse delays: channel 0 spikes at steps 5 and 20; synapse k (delay d_k) into a
    memoryless LI neuron k shows w_k exactly at steps 5 + d_k and 20 + d_k."""
    d = np.array([[1, 2, 7, 13]])
    w = np.array([[0.5, 1.5, -2.0, 3.0]])
    drive = np.zeros((40, 1), bool)
    drive[[5, 20], 0] = True
    net = ns.Network(dt=1e-3, populations=[ns.Population("p", 4, ns.LI(beta=0.0))],
                     projections=[ns.Projection("x", "d", "p", w, delay=d)], inputs=[ns.SpikeInput("d", 1)])
    r = ns.simulate(net, {"d": drive}, 40, backend=backend, traces=["p:v"])
    v = r.traces["p"]["v"][:, 0, :]
    expected = np.zeros((40, 4))
    for k in range(4):
        expected[[5 + d[0, k], 20 + d[0, k]], k] = w[0, k]
    np.testing.assert_array_equal(v, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_recurrent_delay_between_neurons(backend):
    """Neuron A spikes at step t_a; B (beta = 0, weight 2 > theta) spikes at t_a + d for every spike."""
    drive = np.zeros((60, 1), bool)
    drive[[2, 17, 40], 0] = True
    net = ns.Network(dt=1e-3, populations=[ns.Population("a", 1, ns.LIF(beta=0.0)),
                                           ns.Population("b", 1, ns.LIF(beta=0.0))],
                     projections=[ns.Projection("da", "d", "a", [[2.0]]),
                                  ns.Projection("ab", "a", "b", [[2.0]], delay=6)],
                     inputs=[ns.SpikeInput("d", 1)])
    r = ns.simulate(net, {"d": drive}, 60, backend=backend)
    np.testing.assert_array_equal(r.spikes["a"].step, [3, 18, 41])
    np.testing.assert_array_equal(r.spikes["b"].step, [9, 24, 47])


@pytest.mark.parametrize("backend", BACKENDS)
def test_refractory_holds_v_and_blocks_spikes(backend):
    """After a spike v stays at its reset value for `refractory` steps while i keeps integrating."""
    spikes, tr = run_alone(ns.LIF(beta=0.9, alpha=0.5, bias=0.6, refractory=5, reset="zero"), 60, backend)
    first = spikes[0]
    assert np.all(tr["v"][first: first + 6] == 0.0)
    # i > theta once charged, so the neuron fires on the first free step: ISI = refractory + 1
    assert first == 1 and tr["i"][first + 6] > 1.0
    np.testing.assert_array_equal(np.diff(spikes), 6)
    assert np.all(np.diff(tr["i"][first: first + 6]) > 0)  # current unaffected by refractoriness


def test_subtractive_reset_keeps_overshoot():
    """beta = 1, c = 1.5, theta = 1: v = 1.5 -> spike, 0.5; 2.0 -> spike, 1.0; 2.5 -> spike, 1.5 ..."""
    spikes, tr = run_alone(ns.LIF(beta=1.0, bias=1.5), 6)
    np.testing.assert_array_equal(spikes, np.arange(6))
    np.testing.assert_array_equal(tr["v"], 0.5 * np.arange(1, 7))


def test_decay_discretizations():
    assert ns.decay(1e-3, 20e-3) == pytest.approx(math.exp(-0.05), rel=1e-15)
    assert ns.decay(1e-3, 20e-3, "euler") == pytest.approx(0.95, rel=1e-15)
    assert ns.decay(1e-3, math.inf) == 1.0 and ns.decay(1e-3, 0.0) == 0.0
    with pytest.raises(ns.NetworkError, match="tau"):
        ns.decay(1e-3, 1e-4, "euler")
    lif = ns.LIF.from_tau(dt=1e-3, tau_mem=10e-3, tau_syn=5e-3, refractory_s=2e-3)
    assert lif.beta == pytest.approx(math.exp(-0.1)) and lif.alpha == pytest.approx(math.exp(-0.2))
    assert lif.refractory == 2


def test_alif_lsnn_and_eprop_scalings():
    lsnn = ns.ALIF.from_tau(dt=1e-3, tau_mem=20e-3, tau_adapt=200e-3, input_scaling="one_minus_beta")
    eprop = ns.ALIF.from_tau(dt=1e-3, tau_mem=20e-3, tau_adapt=200e-3)
    assert lsnn.gain == pytest.approx(1 - math.exp(-1 / 20)) and eprop.gain == 1.0
    assert lsnn.adapt_gain == eprop.adapt_gain == pytest.approx(1 - math.exp(-1 / 200))


def test_canonical_step_on_plain_arrays_matches_hand_computation():
    """The step itself, on numpy arrays, for one ALIF neuron in refractory and one that spikes."""
    p = ns.ALIF(beta=0.5, alpha=0.25, rho=0.5, adapt=2.0, theta=1.0, refractory=3).lower(2)
    s = ns.NeuronState(i=np.array([[1.0, 1.0]]), v=np.array([[0.5, 0.75]]), a=np.array([[0.0, 0.5]]),
                       z=np.array([[0.0, 1.0]]), r=np.array([[2.0, 0.0]]))
    out = ns.neuron_step(p, s, np.array([[1.0, 1.0]]))
    # neuron 0: refractory: i = 0.25 + 1 = 1.25, v held at 0.5, r -> 1, a = 0
    # neuron 1: i = 1.25, a = 0.25 + 1 = 1.25, v = 0.375 + 1.25 = 1.625 < A = 1 + 2.5: no spike
    np.testing.assert_array_equal(out.i, [[1.25, 1.25]])
    np.testing.assert_array_equal(out.v, [[0.5, 1.625]])
    np.testing.assert_array_equal(out.a, [[0.0, 1.25]])
    np.testing.assert_array_equal(out.z, [[0.0, 0.0]])
    np.testing.assert_array_equal(out.r, [[1.0, 0.0]])

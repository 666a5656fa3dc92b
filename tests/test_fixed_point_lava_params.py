"""Fixed-point mode, Lava 0.10's parameters: per-neuron du, dv, vth and bias in one population,
Lava's lowest-bit drop of mixed-sign weights applied by the model, and neurosim's bias on i
expressed as Lava's bias on v when alpha != 0 (Python-integer and float64 references; the
runs against Lava itself are in test_mapping_lava)."""
from __future__ import annotations

import numpy as np
import pytest
from test_fixed_point_step import _reference_chain

import neurosim as ns
from neurosim.fixed_point import (DECAY_ONE, FixedPointNetwork, FixedPopulation, FixedProjection, dequantize,
                                  quantize, simulate_fixed)


def _spikes(seed: int, steps: int) -> list[int]:
    return sorted({int(t) for t in np.random.default_rng(seed).integers(0, steps - 1, 25)})


def test_per_neuron_parameters_equal_one_reference_neuron_each():
    """One population of 4 neurons with their own du, dv, vth, bias = 4 single-neuron
    references (each written from PyLifModelBitAcc in Python integers)."""
    du, dv, vth = [0, 410, 1000, 4095], [0, 300, 100, 2000], [100, 90, 50, 300]
    bias_mant, bias_exp, m = [0, 5, -7, 3], [0, 3, 6, 2], [100, 120, 90, 255]
    pop = FixedPopulation("n", 4, np.array(du), np.array(dv), np.array(vth), np.array(bias_mant),
                          np.array(bias_exp), 0, 0, scale=1.0)
    assert pop.per_neuron and pop.is_lava_lif
    net = FixedPointNetwork(1e-3, (pop,), (FixedProjection("in_n", "in", "n", np.array([m]), 0, 1, "excitatory"),),
                            (ns.SpikeInput("in", 1),))
    steps = 60
    spikes = _spikes(4, steps)
    x = np.zeros((steps, 1), bool)
    x[spikes, 0] = True
    res = simulate_fixed(net, {"in": x}, steps, traces={"n": ["u_int", "v_int"]})
    for j in range(4):
        u, v, s = _reference_chain(du[j], dv[j], vth[j], bias_mant[j] << bias_exp[j], m[j], 0, spikes, steps)
        np.testing.assert_array_equal(res.traces["n"]["u_int"][:, 0, j], u)
        np.testing.assert_array_equal(res.traces["n"]["v_int"][:, 0, j], v)
        np.testing.assert_array_equal(res.spikes["n"].dense()[:, 0, j], s)
    assert res.spikes["n"].counts().sum() > 10


@pytest.mark.parametrize("m,kept", [(201, 200), (-57, -58), (255, 254), (-256, -256), (2, 2)])
def test_mixed_sign_mantissas_lose_their_lowest_bit_as_in_lava(m, kept):
    """Lava's Dense (clip_weights, then truncate_weights with 8 bits): a mixed-sign mantissa m
    acts as (m >> 1) << 1, an arithmetic shift (floor); the model applies it and counts it."""
    q = FixedProjection("in_n", "in", "n", np.array([[m]]), 0, 1, "mixed")
    assert int(q.effective_weights[0, 0]) == kept and q.n_bit_dropped == int(m != kept)
    pop = FixedPopulation("n", 1, 300, 100, 100, 0, 0, 0, 0, scale=1.0)
    net = FixedPointNetwork(1e-3, (pop,), (q,), (ns.SpikeInput("in", 1),))
    steps = 40
    spikes = _spikes(abs(m), steps)
    x = np.zeros((steps, 1), bool)
    x[spikes, 0] = True
    res = simulate_fixed(net, {"in": x}, steps, traces={"n": ["u_int"]})
    u, _, _ = _reference_chain(300, 100, 100, 0, (m >> 1) << 1, 0, spikes, steps)
    np.testing.assert_array_equal(res.traces["n"]["u_int"][:, 0, 0], u)
    assert res.meta["bit_dropped"] == {"in_n": int(m != kept)}
    exc = FixedProjection("x", "in", "n", np.array([[201]]), 0, 1, "excitatory")
    assert exc.n_bit_dropped == 0 and int(exc.effective_weights[0, 0]) == 201


def test_bias_with_current_decay_sits_on_v_and_follows_the_float_model():
    """LIF with per-neuron alpha in (0, 1), beta, bias and i0 (no input, no spike): quantize puts
    b / (1 - alpha_q) on v and u0 = (i0 - b / (1 - alpha_q)) S; the float network it stands for
    (dequantize) is within a rounding of the original, and the integer i, v follow that float
    network's float64 run up to the truncations: |d i| < 1 / ((1 - alpha_q) S) and
    |d v| < (1 + 1 / (1 - alpha_q)) / ((1 - beta_q) S)."""
    r = np.random.default_rng(5)
    n = 8
    net = ns.Network(dt=1e-3, populations=[ns.Population(
        "p", n, ns.LIF(alpha=r.uniform(0.3, 0.95, n), beta=r.uniform(0.8, 0.97, n), bias=r.normal(0, 0.05, n),
                       theta=100.0, reset="zero"), i0=r.uniform(-0.3, 0.3, n), v0=r.uniform(0, 0.5, n))])
    fixed = quantize(net)
    fp = fixed.populations[0]
    assert fp.per_neuron and fixed.report.populations["p"]["bias_on_v"]
    alpha_q, beta_q, s = fp.alpha, fp.beta, fp.scale
    np.testing.assert_allclose(fp.effective_bias / s, net.populations[0].params.bias / (1 - alpha_q),
                               atol=2.0 ** (fp.bias_exp.max() - 1) / s.min())
    back = dequantize(fixed).populations[0]
    bias_bound = 2.0 ** (fp.bias_exp - 1) * (1 - alpha_q) / s
    assert np.all(np.abs(back.params.bias - net.populations[0].params.bias) <= bias_bound * (1 + 1e-12))
    assert np.all(np.abs(back.i0 - net.populations[0].i0) <= (0.5 + 2.0 ** (fp.bias_exp - 1)) / s * (1 + 1e-12))
    assert fixed.report.populations["p"]["i0_max_abs_error"] == np.abs(back.i0 - net.populations[0].i0).max()

    steps = 300
    fx = simulate_fixed(fixed, {}, steps, traces={"p": ["i", "v"]})
    fl = ns.simulate(dequantize(fixed), {}, steps, traces={"p": ["i", "v"]}, dtype="float64")
    assert len(fx.spikes["p"]) == 0 and len(fl.spikes["p"]) == 0
    di = np.abs(fx.traces["p"]["i"] - fl.traces["p"]["i"])[:, 0]
    dv = np.abs(fx.traces["p"]["v"] - fl.traces["p"]["v"])[:, 0]
    u_bound = 1.0 / (1.0 - alpha_q)
    assert np.all(di < u_bound / s + 1e-12)
    assert np.all(dv < (1.0 + u_bound) / ((1.0 - beta_q) * s) + 1e-12)
    # the bias acted: i moved from i0 towards bias / (1 - alpha), far beyond the bound
    assert np.all(np.abs(fl.traces["p"]["i"][-1, 0] - fl.traces["p"]["i"][0, 0]) > 10 * u_bound / s)
    assert DECAY_ONE - 1 - fp.du.max() > 0  # every neuron keeps part of u (alpha_q > 0)

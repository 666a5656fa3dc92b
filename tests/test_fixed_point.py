"""Loihi fixed-point mode: integer step against a Python-integer reference, quantisation bounds,
refusals, and agreement with the float model (no Lava needed; Lava parity is in test_mapping_lava)."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim.fixed_point import (FixedPointNetwork, FixedPopulation, FixedProjection, WEIGHT_LIMITS,
                                  dequantize, quantize, simulate_fixed)


def lif_network(seed: int, recurrent: bool = True, nh: int = 40, no: int = 15) -> ns.Network:
    """Lava-expressible network: LIF (reset zero) with per-neuron thresholds and current decay,
    an alpha = 0 population with bias, mixed/excitatory/inhibitory, dense/CSR projections and
    per-synapse delays; `recurrent` adds h->h (CSR, delay 2) and o->h (inhibitory)."""
    r = np.random.default_rng(seed)
    pops = [
        ns.Population("h", nh, ns.LIF(beta=r.uniform(0.8, 0.97), alpha=r.uniform(0.2, 0.7),
                                      theta=r.uniform(0.7, 1.3, nh), reset="zero"), v0=r.uniform(0, 0.5, nh)),
        ns.Population("o", no, ns.LIF(beta=r.uniform(0.7, 0.95), theta=1.0, bias=r.normal(0.02, 0.02, no),
                                      gain=r.uniform(0.8, 1.2, no), reset="zero")),
    ]

    def mask(a: int, b: int, p: float) -> np.ndarray:
        return r.random((a, b)) < p

    projs = [
        ns.Projection("in_h", "in", "h", r.normal(0.35, 0.4, (10, nh)) * mask(10, nh, 0.6)),
        ns.Projection("in_o", "in", "o", r.uniform(0, 0.3, (10, no)) * mask(10, no, 0.3)),
        ns.Projection("h_o", "h", "o", r.normal(0.15, 0.35, (nh, no)) * mask(nh, no, 0.5),
                      delay=r.integers(1, 4, (nh, no))),
    ]
    if recurrent:
        projs += [
            ns.Projection("h_h", "h", "h", ns.CSR.from_dense(r.normal(0, 0.3, (nh, nh)) * mask(nh, nh, 0.2)), delay=2),
            ns.Projection("o_h", "o", "h", -r.uniform(0, 0.4, (no, nh)) * mask(no, nh, 0.3)),
        ]
    return ns.Network(dt=1e-3, populations=pops, projections=projs, inputs=[ns.SpikeInput("in", 10)])


def spike_input(seed: int, steps: int, p: float = 0.15, batch: int = 1) -> dict[str, np.ndarray]:
    return {"in": np.random.default_rng(seed + 100).random((steps, batch, 10)) < p}


# --------------------------------------------------------------------- the integer step


def _trunc_div4096(p: int) -> int:
    """Lava's sign(p) * (|p| >> 12), in Python integers."""
    return -((-p) >> 12) if p < 0 else p >> 12


def _reference_chain(du: int, dv: int, vth: int, bias: int, m: int, e: int, spikes: list[int], steps: int):
    """One input channel -> one neuron through one Dense synapse, in plain Python integers,
    written from Lava 0.10's PyLifModelBitAcc and PyDenseModelBitAcc source."""
    u = v = 0
    arriving = [0] * (steps + 1)
    out_u, out_v, out_s = [], [], []
    for t in range(steps):
        a_in = arriving[t]
        u = _trunc_div4096(u * (4096 - (du + 1))) + a_in * 64
        if u > 2 ** 23:
            u -= 2 ** 24
        elif u <= -2 ** 23:
            u += 2 ** 24
        v = max(-(2 ** 23 - 1), min(2 ** 23 - 1, _trunc_div4096(v * (4096 - dv)) + u + bias))
        s = v > vth * 64
        if s:
            v = 0
        out_u.append(u), out_v.append(v), out_s.append(s)
        if t in spikes:
            arriving[t + 1] += m << e if e > 0 else m >> -e
    return out_u, out_v, out_s


def _chain(du: int, dv: int, vth: int, bias_mant: int, bias_exp: int, m: int, e: int) -> FixedPointNetwork:
    pop = FixedPopulation("n", 1, du, dv, vth, bias_mant, bias_exp, 0, 0, scale=64.0 * vth)
    mode = "mixed" if m < 0 and m % 2 == 0 else ("inhibitory" if m < 0 else "excitatory")
    proj = FixedProjection("in_n", "in", "n", np.array([[m]]), e, 1, mode)
    return FixedPointNetwork(1e-3, (pop,), (proj,), (ns.SpikeInput("in", 1),))


@pytest.mark.parametrize("du,dv,vth,bias_mant,bias_exp,m,e", [
    (0, 0, 100, 0, 0, 100, 0),          # du = 0 still decays u by 1/4096 (the +1 offset)
    (4095, 0, 300, 0, 0, 255, 1),       # du = 4095: u holds one step of input only
    (410, 300, 90, 5, 3, -200, 0),      # mixed-sign even mantissa, bias, both decays
    (1000, 100, 50, -7, 6, -255, -2),   # inhibitory, negative exponent: floor of the sum
    (0, 0, 131071, 0, 0, 255, 7),       # strong drive: u wraps past 2**23, v clips
])
def test_simulate_fixed_equals_python_integer_reference(du, dv, vth, bias_mant, bias_exp, m, e):
    steps = 60
    spikes = sorted({int(t) for t in np.random.default_rng(du + vth).integers(0, steps - 1, 25)})
    x = np.zeros((steps, 1), bool)
    x[spikes, 0] = True
    res = simulate_fixed(_chain(du, dv, vth, bias_mant, bias_exp, m, e), {"in": x}, steps,
                         traces={"n": ["u_int", "v_int"]})
    u, v, s = _reference_chain(du, dv, vth, bias_mant << bias_exp, m, e, spikes, steps)
    np.testing.assert_array_equal(res.traces["n"]["u_int"][:, 0, 0], u)
    np.testing.assert_array_equal(res.traces["n"]["v_int"][:, 0, 0], v)
    np.testing.assert_array_equal(res.spikes["n"].dense()[:, 0, 0], s)
    if vth == 131071:
        assert res.meta["u_wraps"]["n"] > 0  # the wrap case really was exercised


def test_threshold_is_strict_in_integers():
    """v == vth << 6 does not spike, one unit more does (a closed form: du = 4095, dv = 0)."""
    for m, spikes_expected in ((100, False), (101, True)):
        net = _chain(4095, 0, 200, 0, 0, m, 0)   # two spikes add 2 * 64 * m; threshold 200 * 64
        x = np.zeros((5, 1), bool)
        x[[0, 1], 0] = True
        res = simulate_fixed(net, {"in": x}, 5, traces={"n": ["v_int"]})
        assert res.traces["n"]["v_int"][1, 0, 0] == 64 * m
        assert bool(res.spikes["n"].dense()[2, 0, 0]) == spikes_expected


def test_batch_equals_separate_trials():
    fixed = quantize(lif_network(3))
    x = spike_input(3, 80, batch=3)
    both = simulate_fixed(fixed, x, 80, traces={"h": ["v_int"]})
    for b in range(3):
        one = simulate_fixed(fixed, {"in": x["in"][:, b]}, 80, traces={"h": ["v_int"]})
        np.testing.assert_array_equal(both.spikes["h"].dense()[:, b], one.spikes["h"].dense()[:, 0])
        np.testing.assert_array_equal(both.traces["h"]["v_int"][:, b], one.traces["h"]["v_int"][:, 0])


# --------------------------------------------------------------------- quantisation


@pytest.mark.parametrize("seed", range(4))
def test_quantize_never_clips_and_errors_stay_within_bounds(seed):
    net = lif_network(seed)
    fixed = quantize(net)
    rep = fixed.report
    for q in fixed.projections:
        lo, hi = WEIGHT_LIMITS[q.sign_mode]
        assert lo <= q.weights.min() and q.weights.max() <= hi
        if q.sign_mode == "mixed":
            assert not np.any(q.weights % 2)
        r = rep.projections[q.name]
        assert np.all(np.abs(r["error"]) <= r["error_bound"] * (1 + 1e-12))
        assert r["max_rel_error"] < 0.02, r  # 8-bit mantissas with the exponent chosen per projection
    for p in net.populations:
        r = rep.populations[p.name]
        assert abs(r["alpha_error"]) <= 2 ** -13 and abs(r["beta_error"]) <= 2 ** -13
        assert r["theta_max_abs_error"] <= 1e-12
        assert r["state_limit"] >= 64 * p.params.theta.min() * (1 - 1e-12)  # default headroom: 64 thresholds
    assert {q.sign_mode for q in fixed.projections} >= ({"mixed", "excitatory", "inhibitory"} if seed else {"mixed"})


def test_dequantized_network_is_within_the_stated_bounds_of_the_float_one():
    """Bound: |w_q - w*gain| <= 2**e * theta/vth_mant (mixed) or half that; |d alpha|, |d beta|
    <= 2**-13; theta exact; |d bias| <= 2**(bias_exp - 1) / S."""
    net = lif_network(7)
    fixed = quantize(net)
    back = dequantize(fixed)
    for proj, q, bq in zip(net.projections, fixed.projections, back.projections):
        w = proj.weights.to_dense() if proj.is_sparse else proj.weights
        eff = w * net.population(proj.post).params.gain[None, :]
        theta = net.population(proj.post).params.theta
        vth = fixed.population(proj.post).vth
        bound = 2.0 ** q.weight_exp * theta / vth * (1.0 if q.sign_mode == "mixed" else 0.5)
        assert np.all(np.abs(bq.weights - eff) <= bound[None, :] * (1 + 1e-12))
    for p, fp, bp in zip(net.populations, fixed.populations, back.populations):
        assert np.abs(bp.params.alpha - p.params.alpha).max() <= 2 ** -13
        assert np.abs(bp.params.beta - p.params.beta).max() <= 2 ** -13
        np.testing.assert_allclose(bp.params.theta, p.params.theta, rtol=1e-14)
        bias_bound = 2.0 ** (fp.bias_exp - 1) / fp.scale
        assert np.all(np.abs(bp.params.bias - p.params.bias * p.params.gain) <= bias_bound * (1 + 1e-12))


@pytest.mark.parametrize("seed", range(3))
def test_dequantized_float_simulation_predicts_the_integer_one(seed):
    """The integer model differs from its dequantised float network only by truncating the
    decays (at most 1 unit of 2**17 per threshold per step): spikes agree (measured: all
    spikes identical on 5 seeds x 500 steps)."""
    net = lif_network(seed)
    fixed = quantize(net)
    x = spike_input(seed, 300)
    fx = simulate_fixed(fixed, x, 300, traces={"h": ["v"]})
    dq = ns.simulate(dequantize(fixed), x, 300, traces={"h": ["v"]})
    for k in ("h", "o"):
        a, b = fx.spikes[k].dense(), dq.spikes[k].dense()
        assert a.sum() > 100
        assert (a != b).sum() <= 0.005 * a.sum()


@pytest.mark.parametrize("recurrent", [False, True])
def test_fixed_point_agrees_with_float_model_in_spike_counts(recurrent):
    """Not exact (8-bit weights): measured per-neuron spike-count agreement 1 - sum|dc|/sum(c)
    0.92-0.98 on 5 recurrent seeds, 500 steps; exact spike times 52-78 %."""
    net = lif_network(11, recurrent=recurrent)
    x = spike_input(11, 500)
    fl = ns.simulate(net, x, 500)
    fx = simulate_fixed(quantize(net), x, 500)
    for k in ("h", "o"):
        c_float, c_fixed = fl.spikes[k].counts(), fx.spikes[k].counts()
        agreement = 1 - np.abs(c_float - c_fixed).sum() / c_float.sum()
        assert c_float.sum() > 500
        assert agreement > 0.9, (k, agreement)


def test_fixed_exponent_that_would_clip_raises():
    net = lif_network(1)
    with pytest.raises(ns.ExportError, match=r"projections\.\w+\.weights.*without clipping"):
        quantize(net, vth_mant=4096, weight_exp=0)
    fixed = quantize(net, weight_exp=0)  # vth_mant lowered until every weight fits at exponent 0
    assert all(q.weight_exp == 0 for q in fixed.projections)
    assert all(np.abs(q.weights).max() >= 128 for q in fixed.projections if q.pre == "in" and q.post == "h")


def test_bias_that_does_not_fit_raises():
    net = ns.Network(dt=1e-3, populations=[ns.Population("p", 3, ns.LIF(bias=10.0, reset="zero"))])
    with pytest.raises(ns.ExportError, match=r"populations\.p\.model\.bias.*lower vth_mant"):
        quantize(net)
    fixed = quantize(net, vth_mant=256)
    assert fixed.report.populations["p"]["bias_max_abs_error"] <= 2 ** 7 / fixed.populations[0].scale.min()


@pytest.mark.parametrize("change,field", [
    (lambda r: ns.LIF(reset="subtract"), r"populations\.p\.model\.reset"),
    (lambda r: ns.ALIF(reset="zero"), r"populations\.p\.model"),
    (lambda r: ns.LI(), r"populations\.p\.model"),
    (lambda r: ns.LIF(reset="zero", refractory=2), r"populations\.p\.model\.refractory"),
    (lambda r: ns.LIF(reset="zero", beta=r.uniform(0.5, 0.9, 4)), r"populations\.p\.model\.beta"),
    (lambda r: ns.LIF(reset="zero", alpha=0.5, bias=0.1), r"populations\.p\.model\.bias"),
    (lambda r: ns.LIF(reset="zero", theta=0.0), r"populations\.p\.model\.theta"),
])
def test_what_lava_fixed_point_cannot_express_raises_naming_the_field(change, field):
    net = ns.Network(dt=1e-3, populations=[ns.Population("p", 4, change(np.random.default_rng(0)))])
    with pytest.raises(ns.ExportError, match=field) as info:
        quantize(net)
    assert info.value.target == "lava"


def test_poisson_input_and_long_delay_raise():
    pop = ns.Population("p", 2, ns.LIF(reset="zero"))
    poisson = ns.Network(dt=1e-3, populations=[pop], inputs=[ns.PoissonInput("poi", 2, rate=50.0)],
                         projections=[ns.Projection("a", "poi", "p", np.eye(2))])
    with pytest.raises(ns.ExportError, match=r"inputs\.poi.*SpikeInput"):
        quantize(poisson)
    long = ns.Network(dt=1e-3, populations=[pop], inputs=[ns.SpikeInput("in", 2)],
                      projections=[ns.Projection("a", "in", "p", np.eye(2), delay=65)])
    with pytest.raises(ns.ExportError, match=r"projections\.a\.delay.*64"):
        quantize(long)


def test_fixed_records_refuse_what_lava_would_clip():
    with pytest.raises(ns.NetworkError, match=r"projections\.x\.weights.*even"):
        FixedProjection("x", "a", "b", np.array([[3, -4]]), 0, 1, "mixed")
    with pytest.raises(ns.NetworkError, match=r"projections\.x\.weights.*\[0, 255\]"):
        FixedProjection("x", "a", "b", np.array([[256]]), 0, 1, "excitatory")
    with pytest.raises(ns.NetworkError, match=r"populations\.p\.vth"):
        FixedPopulation("p", 1, 0, 0, 2 ** 17, 0, 0, 0, 0, 1.0)
    with pytest.raises(ns.NetworkError, match=r"populations\.p\.bias_mant"):
        FixedPopulation("p", 1, 0, 0, 10, 5000, 0, 0, 0, 1.0)

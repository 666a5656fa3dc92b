"""Loihi fixed-point mode: integer step (Lava's LIF and the integer ALIF / subtractive reset /
refractory / LI extension) against Python-integer references, quantisation bounds, refusals, and
agreement with the float model (no Lava needed; Lava parity is in test_mapping_lava)."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim.fixed_point import (ADAPT_RANGE, WEIGHT_LIMITS, FixedPointNetwork, FixedPopulation, FixedProjection,
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


def alif_network(seed: int, recurrent: bool = True, na: int = 30, nl: int = 12) -> ns.Network:
    """What the integer extension covers: ALIF (subtract; per-neuron theta, adapt (20 % zero),
    adapt_gain, refractory 0..2, bias, v0, a0), LIF with subtractive reset and current decay,
    Lava's own LIF (reset zero) and an LI readout with current decay; per-synapse delays 1..4,
    mixed/excitatory/inhibitory, dense and CSR; `recurrent` adds alif->alif (CSR, delay 3) and
    lif->alif (inhibitory)."""
    r = np.random.default_rng(seed)
    pops = [
        ns.Population("alif", na, ns.ALIF(beta=r.uniform(0.85, 0.97), rho=r.uniform(0.9, 0.99),
                                          adapt=r.uniform(0.0, 2.0, na) * (r.random(na) < 0.8),
                                          adapt_gain=r.uniform(0.02, 0.3, na), theta=r.uniform(0.8, 1.2, na),
                                          bias=r.normal(0.02, 0.02, na), refractory=r.integers(0, 3, na)),
                      v0=r.uniform(0, 0.5, na), a0=r.uniform(0, 0.3, na)),
        ns.Population("lif", nl, ns.LIF(beta=r.uniform(0.8, 0.95), alpha=r.uniform(0.2, 0.6),
                                        theta=r.uniform(0.8, 1.2, nl), reset="subtract")),
        ns.Population("zero", 6, ns.LIF(beta=0.9, theta=1.0, reset="zero")),
        ns.Population("out", 3, ns.LI(beta=0.9, alpha=0.5)),
    ]

    def mask(a: int, b: int, p: float) -> np.ndarray:
        return r.random((a, b)) < p

    projs = [
        ns.Projection("in_alif", "in", "alif", r.normal(0.4, 0.4, (10, na)) * mask(10, na, 0.6),
                      delay=r.integers(1, 5, (10, na))),
        ns.Projection("in_lif", "in", "lif", r.uniform(0, 0.5, (10, nl)) * mask(10, nl, 0.5), delay=2),
        ns.Projection("alif_lif", "alif", "lif", r.normal(0.1, 0.3, (na, nl)) * mask(na, nl, 0.4),
                      delay=r.integers(1, 5, (na, nl))),
        ns.Projection("alif_zero", "alif", "zero", r.uniform(0, 0.5, (na, 6)) * mask(na, 6, 0.4)),
        ns.Projection("alif_out", "alif", "out", r.normal(0, 0.3, (na, 3)), delay=r.integers(1, 5, (na, 3))),
        ns.Projection("lif_out", "lif", "out", r.normal(0, 0.3, (nl, 3))),
    ]
    if recurrent:
        projs += [
            ns.Projection("alif_alif", "alif", "alif",
                          ns.CSR.from_dense(r.normal(0, 0.3, (na, na)) * mask(na, na, 0.25)), delay=3),
            ns.Projection("lif_alif", "lif", "alif", -r.uniform(0, 0.4, (nl, na)) * mask(nl, na, 0.3),
                          delay=r.integers(1, 5, (nl, na))),
        ]
    return ns.Network(dt=1e-3, populations=pops, projections=projs, inputs=[ns.SpikeInput("in", 10)])


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
    (lambda r: ns.LIF(reset="zero", alpha=1.0, bias=0.1), r"populations\.p\.model\.bias.*alpha < 1"),
    (lambda r: ns.LI(alpha=[0.5, 1.0, 0.5, 0.5], bias=0.1), r"populations\.p\.model\.bias.*alpha < 1"),
    (lambda r: ns.LIF(reset="zero", theta=0.0), r"populations\.p\.model\.theta"),
    (lambda r: ns.ALIF(refractory=256), r"populations\.p\.model\.refractory.*255"),
    (lambda r: ns.ALIF(adapt_gain=1e10), r"populations\.p\.model\.adapt_gain"),
])
def test_what_the_integer_neuron_cannot_express_raises_naming_the_field(change, field):
    net = ns.Network(dt=1e-3, populations=[ns.Population("p", 4, change(np.random.default_rng(0)))])
    with pytest.raises(ns.ExportError, match=field) as info:
        quantize(net)
    assert info.value.target == "lava"


@pytest.mark.parametrize("model,field", [
    (ns.LIF(reset="subtract"), r"populations\.p\.model\.reset.*subtract"),
    (ns.ALIF(reset="zero"), r"populations\.p\.model: ALIF is not a Lava LIF"),
    (ns.LIF(reset="zero", refractory=2), r"populations\.p\.model\.refractory"),
])
def test_lava_lif_only_refuses_the_extension(model, field):
    """What NetX needs: Lava's own LIF (and LI readouts, see test_mapping_netx); the same models
    quantise without the flag."""
    net = ns.Network(dt=1e-3, populations=[ns.Population("p", 4, model)])
    with pytest.raises(ns.ExportError, match=field):
        quantize(net, lava_lif_only=True, target="netx")
    assert not quantize(net).populations[0].is_lava_lif


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
    with pytest.raises(ns.NetworkError, match=r"projections\.x\.weights.*\[-256, 255\]"):
        FixedProjection("x", "a", "b", np.array([[256, -4]]), 0, 1, "mixed")
    with pytest.raises(ns.NetworkError, match=r"populations\.p\.du.*\[-1, 4095\]"):
        FixedPopulation("p", 2, np.array([0, 4096]), 0, 10, 0, 0, 0, 0, 1.0)
    with pytest.raises(ns.NetworkError, match=r"populations\.p\.vth.*shape \(2,\)"):
        FixedPopulation("p", 2, 0, 0, np.array([1, 2, 3]), 0, 0, 0, 0, 1.0)
    with pytest.raises(ns.NetworkError, match=r"projections\.x\.weights.*\[0, 255\]"):
        FixedProjection("x", "a", "b", np.array([[256]]), 0, 1, "excitatory")
    with pytest.raises(ns.NetworkError, match=r"populations\.p\.vth"):
        FixedPopulation("p", 1, 0, 0, 2 ** 17, 0, 0, 0, 0, 1.0)
    with pytest.raises(ns.NetworkError, match=r"populations\.p\.bias_mant"):
        FixedPopulation("p", 1, 0, 0, 10, 5000, 0, 0, 0, 1.0)
    with pytest.raises(ns.NetworkError, match=r"populations\.p\.adapt_inc.*'lif' population has no adaptation"):
        FixedPopulation("p", 1, 0, 0, 10, 0, 0, 0, 0, 1.0, adapt_inc=3)
    with pytest.raises(ns.NetworkError, match=r"populations\.p\.adapt_mant"):
        FixedPopulation("p", 1, 0, 0, 10, 0, 0, 0, 0, 1.0, kind="alif", adapt_mant=ADAPT_RANGE[1] + 1)
    with pytest.raises(ns.NetworkError, match=r"populations\.p\.kind"):
        FixedPopulation("p", 1, 0, 0, 10, 0, 0, 0, 0, 1.0, kind="adex")
    with pytest.raises(ns.NetworkError, match=r"populations\.p\.reset"):
        FixedPopulation("p", 1, 0, 0, 10, 0, 0, 0, 0, 1.0, reset="hold")
    li = FixedPopulation("o", 1, 0, 0, 10, 0, 0, 0, 0, 1.0, kind="li")
    lif = FixedPopulation("p", 1, 0, 0, 10, 0, 0, 0, 0, 1.0)
    with pytest.raises(ns.NetworkError, match=r"projections\.x\.pre.*never spikes"):
        FixedPointNetwork(1e-3, (li, lif), (FixedProjection("x", "o", "p", np.array([[2]]), 0, 1, "excitatory"),))


# --------------------------------------------------------------------- ALIF quantisation


@pytest.mark.parametrize("seed", range(3))
def test_alif_quantisation_errors_are_the_stated_ones_and_within_bounds(seed):
    """Report = dequantised - float; |d rho| <= 2**-13; |d adapt_j| <= half a mantissa step
    2**(a_exp - shift) / S_j; |d adapt_gain| <= 2**-(a_exp + 1); a_exp and adapt_shift are the
    largest that fit (one more would overflow 16 bits or, for a neuron spiking every step, 24)."""
    net = alif_network(seed)
    fixed = quantize(net)
    pop, fp = net.population("alif"), fixed.population("alif")
    rep = fixed.report.populations["alif"]
    back = dequantize(fixed).population("alif").params
    p = pop.params
    assert (fp.kind, fp.reset) == ("alif", "subtract") and not fp.is_lava_lif
    assert rep["rho_error"] == back.rho[0] - p.rho[0] and abs(rep["rho_error"]) <= 2 ** -13
    assert rep["adapt_max_abs_error"] == np.abs(back.adapt - p.adapt).max()
    assert np.all(np.abs(back.adapt - p.adapt) <= 0.5 * 2.0 ** (fp.a_exp - fp.adapt_shift) / fp.scale * (1 + 1e-12))
    assert np.all(np.abs(back.adapt_gain - p.adapt_gain) <= 2.0 ** -(fp.a_exp + 1) * (1 + 1e-12))
    assert rep["adapt_max_rel_error"] < 2 ** -14 and rep["adapt_gain_max_rel_error"] < 2 ** -14
    np.testing.assert_array_equal(back.refractory, p.refractory)
    np.testing.assert_allclose(dequantize(fixed).population("alif").a0, pop.a0, atol=2.0 ** -(fp.a_exp + 1))
    hi = ADAPT_RANGE[1]
    assert np.abs(fp.adapt_inc).max() <= hi and np.abs(fp.adapt_mant).max() <= hi
    assert 2 * np.abs(fp.adapt_mant).max() > hi                                # shift is the largest
    inc_next = np.abs(np.round(p.adapt_gain * 2.0 ** (fp.a_exp + 1))).max()
    assert inc_next > hi or inc_next * 4096 / max(fp.drho, 1) >= 2 ** 23          # a_exp is the largest
    assert "adaptation" in str(fixed.report) and "alif" in str(fixed.report)


def test_quantising_the_dequantised_network_gives_the_same_integers():
    fixed = quantize(alif_network(4))
    again = quantize(dequantize(fixed), vth_mant={p.name: p.vth for p in fixed.populations})
    for a, b in zip(fixed.populations, again.populations):
        for name in ("kind", "reset", "du", "dv", "vth", "drho", "a_exp", "adapt_shift"):
            assert getattr(a, name) == getattr(b, name), (a.name, name)
        for name in ("bias_mant", "u0", "v0", "a0", "adapt_inc", "adapt_mant", "refractory"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=f"{a.name}.{name}")
    for a, b in zip(fixed.projections, again.projections):
        np.testing.assert_array_equal(a.weights, b.weights)


def test_a_stays_inside_24_bits_for_a_neuron_spiking_every_step():
    """a_exp is chosen for the worst case: rho = 0.999 (drho = 4), adapt_gain = 1, spikes every step."""
    net = ns.Network(dt=1e-3, populations=[ns.Population("p", 2, ns.ALIF(rho=0.999, adapt=0.0, adapt_gain=1.0,
                                                                       bias=[0.0, 2.0]))])
    fixed = quantize(net)
    res = simulate_fixed(fixed, {}, 4000, traces={"p": ["a_int", "a"]})
    assert res.spikes["p"].counts()[0, 1] == 4000 and res.meta["a_clips"]["p"] == 0
    fp = fixed.populations[0]
    assert fp.adapt_inc[1] * 4096 / fp.drho == 2 ** 22  # the bound that chose a_exp: half the range
    assert res.traces["p"]["a_int"][:, 0, 1].max() > 2 ** 21
    rho = fp.rho  # a[t] = sum of rho**k over the t spikes before t (float), to the truncations
    np.testing.assert_allclose(res.traces["p"]["a"][-1, 0, 1], (1 - rho ** 3999) / (1 - rho), rtol=2e-3)


# --------------------------------------------------------------------- against the float model


@pytest.mark.parametrize("seed", range(3))
def test_dequantized_alif_simulation_predicts_the_integer_one(seed):
    """ALIF, subtract-reset LIF, Lava LIF and LI (feed-forward): the dequantised float network
    differs from the integer one only by the truncations (decays, adaptive threshold); measured
    on seeds 0-5 x 400 steps: 0-13 differing spike bins of 1200-5200 per population (0.35 % at
    most), readout v correlation >= 0.9998."""
    net = alif_network(seed, recurrent=False)
    fixed = quantize(net)
    x = spike_input(seed, 400, p=0.3)
    fx = simulate_fixed(fixed, x, 400, traces={"out": ["v"], "alif": ["a"]})
    dq = ns.simulate(dequantize(fixed), x, 400, traces={"out": ["v"], "alif": ["a"]})
    for k in ("alif", "lif", "zero"):
        a, b = fx.spikes[k].dense(), dq.spikes[k].dense()
        assert a.sum() > 500
        assert (a != b).sum() <= 0.015 * a.sum(), (k, (a != b).sum(), a.sum())
    assert np.ptp(fx.traces["alif"]["a"]) > 0.1
    assert np.corrcoef(fx.traces["out"]["v"].ravel(), dq.traces["out"]["v"].ravel())[0, 1] > 0.995


def test_lsnn_fixed_point_agrees_with_float_model_in_spike_counts():
    """The demo's LSNN (training.nets.recurrent_network(20, 64, 2, model='alif'): recurrent ALIF,
    subtract reset, LI readout), random input at 10 % per channel and step, 1000 steps.
    Measured on network seeds 0-4: per-neuron spike-count agreement 1 - sum|dc|/sum(c) 0.974-0.980,
    exact spike times 42-47 % (the recurrent net is chaotic), readout v correlation 0.90-0.98,
    |d rho| 1.05e-4, relative |d adapt| 6.8e-6, relative |d adapt_gain| 8.5e-6."""
    from training.nets import recurrent_network

    net = recurrent_network(20, 64, 2, model="alif", seed=1)
    x = {"in": np.random.default_rng(51).random((1000, 20)) < 0.1}
    fixed = quantize(net)
    fl = ns.simulate(net, x, 1000, traces={"out": ["v"]})
    fx = simulate_fixed(fixed, x, 1000, traces={"out": ["v"]})
    c_float, c_fixed = fl.spikes["hidden"].counts(), fx.spikes["hidden"].counts()
    agreement = 1 - np.abs(c_float - c_fixed).sum() / c_float.sum()
    assert c_float.sum() > 2000
    assert agreement > 0.95, agreement
    assert np.corrcoef(fl.traces["out"]["v"].ravel(), fx.traces["out"]["v"].ravel())[0, 1] > 0.85
    rep = fixed.report.populations["hidden"]
    assert abs(rep["rho_error"]) < 2 ** -13 and rep["adapt_max_rel_error"] < 1e-4
    assert rep["adapt_gain_max_rel_error"] < 1e-4
    assert fx.meta["v_clips"] == {"hidden": 0, "out": 0} and fx.meta["a_clips"]["hidden"] == 0


def test_netx_refuses_the_integer_extension(tmp_path):
    """NetX's CUBA layer is Lava's LIF: an integer ALIF (or subtract-reset LIF) network is refused,
    as a Network (before quantising) and as a FixedPointNetwork, and no file is written."""
    from mapping.netx import to_netx

    r = np.random.default_rng(0)
    for model, field in ((ns.ALIF(), r"populations\.h\.model"), (ns.LIF(reset="subtract"), r"populations\.h\.model")):
        net = ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", 4)], populations=[ns.Population("h", 5, model)],
                         projections=[ns.Projection("in_h", "in", "h", r.uniform(0, 1, (4, 5)))])
        with pytest.raises(ns.ExportError, match=rf"netx: {field}"):
            to_netx(net, tmp_path / "x.h5")
        with pytest.raises(ns.ExportError, match=r"netx: populations\.h\.kind.*Lava's LIF"):
            to_netx(quantize(net, weight_exp=0, bias_exp=6), tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()

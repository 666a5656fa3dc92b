"""Lava export: floating_pt against neurosim's float64 simulator, fixed_pt against
simulate_fixed bit for bit (Lava's own LIF and the custom integer ALIF / subtract / refractory /
LI process), Lava's latency, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest
from test_fixed_point import alif_network, lif_network, spike_input
from test_fixed_point_step import ALIF_CASES

import neurosim as ns
from neurosim.errors import BackendUnavailable
from neurosim.fixed_point import (FixedPointNetwork, FixedPopulation, FixedProjection, quantize,
                                  simulate_fixed)


@pytest.fixture(scope="module")
def lava():
    from mapping.lava_compat import import_lava

    try:
        return import_lava()
    except BackendUnavailable as exc:
        pytest.skip(f"Lava unavailable: {exc}")


def _run(net, inputs, steps, mode, traces=None, **kw):
    from mapping.lava_export import run_lava

    return run_lava(net, inputs, steps, mode=mode, traces=traces, **kw)


STEPS = 150


NETWORKS = [(0, False), (1, True), pytest.param(2, True, marks=pytest.mark.slow),
            pytest.param(3, False, marks=pytest.mark.slow)]


@pytest.mark.parametrize("seed,recurrent", NETWORKS)
def test_floating_pt_equals_neurosim_float64(lava, seed, recurrent):
    """Lava's float LIF is float64 but computes (1 - (1 - alpha)) * u and sums in another order,
    so traces differ by rounding (measured max |dv| 3e-15); spikes are identical."""
    from lava.proc.lif.models import PyLifModelFloat

    assert np.dtype(PyLifModelFloat.v.d_type) == np.float64
    net = lif_network(seed, recurrent=recurrent)
    x = spike_input(seed, STEPS)
    ref = ns.simulate(net, x, STEPS, traces={"h": ["v", "i"], "o": ["v", "i"]})
    got = _run(net, x, STEPS, "floating_pt", traces={"h": ["v", "i"], "o": ["v", "i"]})
    assert got.backend == "lava-floating_pt"
    for k in ("h", "o"):
        assert len(ref.spikes[k]) > 50
        np.testing.assert_array_equal(got.spikes[k].dense(), ref.spikes[k].dense())
        for var in ("v", "i"):
            np.testing.assert_allclose(got.traces[k][var], ref.traces[k][var], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got.spikes["in"].dense(), ref.spikes["in"].dense())


@pytest.mark.parametrize("seed,recurrent", NETWORKS)
def test_fixed_pt_equals_simulate_fixed_bit_for_bit(lava, seed, recurrent):
    net = lif_network(seed, recurrent=recurrent)
    x = spike_input(seed, STEPS, p=0.3)  # strong drive
    spec = {"h": ["u_int", "v_int", "v"], "o": ["u_int", "v_int"]}
    want = simulate_fixed(quantize(net), x, STEPS, traces=spec)
    got = _run(net, x, STEPS, "fixed_pt", traces=spec)
    assert got.backend == "lava-fixed_pt"
    assert got.meta["quantization"].projections["in_h"]["sign_mode"] == "mixed"
    for k in ("h", "o"):
        assert len(want.spikes[k]) > 50
        np.testing.assert_array_equal(got.spikes[k].dense(), want.spikes[k].dense())
        for var in ("u_int", "v_int"):
            np.testing.assert_array_equal(got.traces[k][var], want.traces[k][var])
    np.testing.assert_allclose(got.traces["h"]["v"], want.traces["h"]["v"], rtol=0, atol=0)


def test_fixed_pt_overflow_and_ties_equal_simulate_fixed(lava):
    """Hand-made integers: u wrapping past 24 bits and v clipping ('wrap'), and v landing exactly
    on vth << 6, which must not spike ('tie'); Lava and simulate_fixed agree exactly."""
    n_in = 12
    wrap = FixedPopulation("wrap", 3, 0, 10, 131071, 0, 0, 0, 0, scale=1.0)
    tie = FixedPopulation("tie", 2, 4095, 0, 200, 0, 0, 0, 0, scale=1.0)
    w_wrap = np.full((n_in, 3), 255)
    w_tie = np.zeros((n_in, 2), np.int64)
    w_tie[0] = 100                      # two spikes of input 0 reach exactly 200 << 6
    w_tie[1, 1] = 2                     # a third input adds 128 to neuron 1 only
    fixed = FixedPointNetwork(1e-3, (wrap, tie), (
        FixedProjection("in_wrap", "in", "wrap", w_wrap, 7, 1, "excitatory"),
        FixedProjection("in_tie", "in", "tie", w_tie, 0, 1, "excitatory"),
    ), (ns.SpikeInput("in", n_in),))
    x = np.zeros((40, n_in), bool)
    x[:, 2:] = np.random.default_rng(5).random((40, n_in - 2)) < 0.7
    x[[3, 4], 0] = True
    x[4, 1] = True
    spec = {"wrap": ["u_int", "v_int"], "tie": ["u_int", "v_int"]}
    want = simulate_fixed(fixed, {"in": x}, 40, traces=spec)
    got = _run(fixed, {"in": x}, 40, "fixed_pt", traces=spec)
    assert want.meta["u_wraps"]["wrap"] > 0 and want.meta["v_clips"]["wrap"] > 0
    tie_spikes = want.spikes["tie"].dense()[:, 0]
    assert not tie_spikes[5, 0] and tie_spikes[5, 1]  # equality does not spike; one unit more does
    assert want.traces["tie"]["v_int"][5, 0, 0] == 200 << 6
    for k in ("wrap", "tie"):
        np.testing.assert_array_equal(got.spikes[k].dense(), want.spikes[k].dense())
        for var in ("u_int", "v_int"):
            np.testing.assert_array_equal(got.traces[k][var], want.traces[k][var])


@pytest.mark.parametrize("mode", ["floating_pt", "fixed_pt"])
def test_delay_d_reaches_the_target_at_t_plus_d(lava, mode):
    """One input spike at step 3 through delays 1, 2, 5 (per synapse: DelayDense) moves i of
    its target first at step 3 + d, as in neurosim; w = 1.25 arrives whole (alpha = 0; in
    fixed point it is the mantissa 128 << 1, exact)."""
    delays = np.array([[1, 2, 5]])
    net = ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", 1)],
                     populations=[ns.Population("p", 3, ns.LIF(beta=0.5, theta=10.0, reset="zero"))],
                     projections=[ns.Projection("in_p", "in", "p", np.full((1, 3), 1.25), delay=delays)])
    x = np.zeros((12, 1), bool)
    x[3] = True
    got = _run(net, {"in": x}, 12, mode, traces={"p": ["i"]})
    first = np.argmax(got.traces["p"]["i"][:, 0] != 0, axis=0)
    np.testing.assert_array_equal(first, 3 + delays[0])
    np.testing.assert_allclose(got.traces["p"]["i"][3 + delays[0], 0, [0, 1, 2]], 1.25, rtol=0, atol=0)


def test_refractory_lif_equals_neurosim_and_simulate_fixed(lava):
    r = np.random.default_rng(2)
    net = ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", 10)], populations=[
        ns.Population("p", 12, ns.LIF(beta=0.9, alpha=0.3, theta=1.0, refractory=3, reset="zero"))],
        projections=[ns.Projection("in_p", "in", "p", r.normal(0.5, 0.3, (10, 12)))])
    x = spike_input(2, 120, p=0.3)
    ref = ns.simulate(net, x, 120, traces={"p": ["v"]})
    got = _run(net, x, 120, "floating_pt", traces={"p": ["v"]})
    isi = np.diff(np.nonzero(ref.spikes["p"].dense()[:, 0, 0])[0])
    assert len(isi) > 3 and isi.min() >= 4  # the refractory period is really active
    np.testing.assert_array_equal(got.spikes["p"].dense(), ref.spikes["p"].dense())
    np.testing.assert_allclose(got.traces["p"]["v"], ref.traces["p"]["v"], rtol=0, atol=1e-12)
    # Lava 0.10 has no fixed-point LIFRefractory: the custom integer process runs it
    want = simulate_fixed(quantize(net), x, 120, traces={"p": ["v_int"]})
    fixed = _run(net, x, 120, "fixed_pt", traces={"p": ["v_int"]})
    assert fixed.meta["custom"] == ["p"] and len(want.spikes["p"]) > 50
    np.testing.assert_array_equal(fixed.spikes["p"].dense(), want.spikes["p"].dense())
    np.testing.assert_array_equal(fixed.traces["p"]["v_int"], want.traces["p"]["v_int"])


def test_batch_loops_over_trials_and_disconnected_parts_all_run(lava):
    """Two unconnected parts (each its own Lava graph), batch 2: equals neurosim per trial."""
    r = np.random.default_rng(4)
    net = ns.Network(dt=1e-3, inputs=[ns.SpikeInput("a", 5), ns.SpikeInput("b", 5)], populations=[
        ns.Population("pa", 6, ns.LIF(beta=0.9, reset="zero")),
        ns.Population("pb", 4, ns.LIF(beta=0.8, alpha=0.5, reset="zero"))],
        projections=[ns.Projection("a_pa", "a", "pa", r.uniform(0, 0.8, (5, 6))),
                     ns.Projection("b_pb", "b", "pb", r.uniform(0, 0.8, (5, 4)))])
    x = {k: r.random((60, 2, 5)) < 0.3 for k in ("a", "b")}
    ref = ns.simulate(net, x, 60)
    got = _run(net, x, 60, "floating_pt")
    assert got.batch == 2
    for k in ("pa", "pb"):
        assert len(ref.spikes[k]) > 20
        np.testing.assert_array_equal(got.spikes[k].dense(), ref.spikes[k].dense())


@pytest.mark.parametrize("model,mode,field", [
    (ns.LIF(reset="zero", refractory=[1, 2, 2]), "floating_pt",
     r"populations\.p\.model\.refractory.*LIFRefractory takes one value"),
    (ns.LIF(reset="zero", alpha=[0.5, 1.0, 0.5], bias=0.1), "floating_pt", r"populations\.p\.model\.bias.*alpha < 1"),
    (ns.LI(alpha=1.0, bias=0.1), "fixed_pt", r"populations\.p\.model\.bias.*alpha < 1"),
    (ns.IF(reset="zero", theta=0.0), "fixed_pt", r"populations\.p\.model\.theta"),
])
def test_unsupported_models_raise_before_lava_runs(model, mode, field):
    net = ns.Network(dt=1e-3, populations=[ns.Population("p", 3, model)])
    with pytest.raises(ns.ExportError, match=field):
        _run(net, {}, 10, mode)


def test_alif_custom_process_floating_pt_equals_neurosim(lava):
    """ALIF (subtractive reset, per-neuron beta, refractory, gain, recurrent with delay 2) as the
    custom NeurosimNeuron process next to a Lava LIF: spikes identical, traces to rounding."""
    r = np.random.default_rng(0)
    na, nb = 15, 8
    net = ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", 10)], populations=[
        ns.Population("alif", na, ns.ALIF(beta=r.uniform(0.8, 0.95, na), rho=0.95, adapt=0.5, alpha=0.3,
                                          refractory=r.integers(0, 3, na), gain=r.uniform(0.8, 1.2, na),
                                          adapt_gain=0.05), v0=r.uniform(0, 1, na)),
        ns.Population("lif", nb, ns.LIF(beta=0.9, reset="zero"))],
        projections=[ns.Projection("in_a", "in", "alif", r.normal(0.5, 0.4, (10, na))),
                     ns.Projection("a_a", "alif", "alif", r.normal(0, 0.3, (na, na)), delay=2),
                     ns.Projection("a_l", "alif", "lif", r.normal(0.3, 0.3, (na, nb)))])
    x = spike_input(0, 120, p=0.3)
    ref = ns.simulate(net, x, 120, traces={"alif": ["v", "i"]})
    got = _run(net, x, 120, "floating_pt", traces={"alif": ["v", "i"]})
    thr = ns.simulate(net, x, 120, traces={"alif": ["threshold"]}).traces["alif"]["threshold"]
    assert np.ptp(thr) > 0.1  # adaptation really moves the threshold
    for k in ("alif", "lif"):
        assert len(ref.spikes[k]) > 100
        np.testing.assert_array_equal(got.spikes[k].dense(), ref.spikes[k].dense())
    for var in ("v", "i"):
        np.testing.assert_allclose(got.traces["alif"][var], ref.traces["alif"][var], rtol=0, atol=1e-12)


# ------------------------------------------------------- ALIF, subtractive reset, LI (custom processes)

ALIF_NETWORKS = [0, 1, pytest.param(2, marks=pytest.mark.slow)]
ALL_INT = ["u_int", "v_int", "a_int"]


@pytest.mark.parametrize("seed", ALIF_NETWORKS)
def test_fixed_pt_alif_subtract_lif_equal_simulate_fixed_bit_for_bit(lava, seed):
    """Recurrent ALIF + subtract-reset LIF (custom fixed_pt process) + Lava's own LIF + LI readout,
    per-synapse delays 1..4 (DelayDense), strong drive: spikes and u, v, a integers identical
    (spikes compared: 2429, 2133, 2120 for seeds 0, 1, 2; 150 steps x 51 neurons x 3 integers)."""
    net = alif_network(seed)
    x = spike_input(seed, STEPS, p=0.3)
    spec = {p.name: ALL_INT + ["a", "threshold", "v", "i"] for p in net.populations}
    want = simulate_fixed(quantize(net), x, STEPS, traces=spec)
    got = _run(net, x, STEPS, "fixed_pt", traces=spec)
    assert got.meta["custom"] == ["alif", "lif", "out"]  # 'zero' runs on Lava's own PyLifModelBitAcc
    assert np.ptp(want.traces["alif"]["threshold"], axis=0).max() > 0.3  # adaptation moves thresholds
    for k in ("alif", "lif", "zero"):
        assert len(want.spikes[k]) > 100, k
    for k in spec:
        np.testing.assert_array_equal(got.spikes[k].dense(), want.spikes[k].dense(), err_msg=k)
        for var in spec[k]:
            np.testing.assert_array_equal(got.traces[k][var], want.traces[k][var], err_msg=f"{k}.{var}")


def _edge_network(steps: int, names: list[str]) -> tuple[FixedPointNetwork, np.ndarray]:
    """Hand-made integer cases of test_fixed_point.ALIF_CASES (a saturating, subtract clipping,
    refractory, LI, both resets), each its own one-neuron population on its own input channel,
    plus 'tie': two neurons whose v lands exactly on / one unit over the adaptive threshold."""
    pops, projs = [], []
    x = np.zeros((steps, len(names) + 1), bool)
    for k, name in enumerate(names):
        c, m, p = ALIF_CASES[name]
        kind = c.get("kind", "alif")
        adapt = dict(drho=c["drho"], adapt_inc=c["inc"], adapt_mant=c["mant"], adapt_shift=c["shift"],
                     a0=c.get("a0", 0)) if kind == "alif" else {}
        pops.append(FixedPopulation(name, 1, c["du"], c["dv"], c["vth"], c.get("bias", 0), c.get("bias_exp", 0), 0, 0,
                                    scale=64.0 * c["vth"], kind=kind, reset=c["reset"], refractory=c["refractory"],
                                    **adapt))
        w = np.zeros((len(names) + 1, 1), np.int64)
        w[k] = m
        mode = "mixed" if m < 0 and m % 2 == 0 else ("inhibitory" if m < 0 else "excitatory")
        projs.append(FixedProjection(f"in_{name}", "in", name, w, 0, 1, mode))
        x[:-1, k] = np.random.default_rng(len(name)).random(steps - 1) < p
    # tie: A = 64*100 + trunc(25600 * a0 / 2**3) = 9600 with a0 = 1; input 150 at step 0 arrives at
    # step 1 and sets v = 9600 (v0 = 0: no spike) and 9601 (v0 = 1: spike)
    pops.append(FixedPopulation("tie", 2, 4095, 0, 100, 0, 0, 0, [0, 1], 1.0, kind="alif", reset="subtract",
                                drho=0, adapt_inc=3, adapt_mant=25600, adapt_shift=3, a0=1))
    w = np.zeros((len(names) + 1, 2), np.int64)
    w[-1] = 150
    projs.append(FixedProjection("in_tie", "in", "tie", w, 0, 1, "excitatory"))
    x[0, -1] = True
    return FixedPointNetwork(1e-3, tuple(pops), tuple(projs), (ns.SpikeInput("in", len(names) + 1),)), x


@pytest.mark.parametrize("names", [
    ["a_saturates", "subtract_clips"],
    pytest.param(["alif_subtract", "alif_zero", "li", "lif_subtract_refractory"], marks=pytest.mark.slow),
])
def test_fixed_pt_integer_edge_cases_equal_simulate_fixed(lava, names):
    steps = 120
    fixed, x = _edge_network(steps, names)
    spec = {p.name: ALL_INT for p in fixed.populations}
    want = simulate_fixed(fixed, {"in": x}, steps, traces=spec)
    got = _run(fixed, {"in": x}, steps, "fixed_pt", traces=spec)
    if "a_saturates" in names:
        assert want.meta["a_clips"]["a_saturates"] > 0 and want.meta["v_clips"]["subtract_clips"] > 0
    tie = want.spikes["tie"].dense()[1, 0]
    assert want.traces["tie"]["v_int"][1, 0, 0] == 9600 and not tie[0] and tie[1]
    for k in spec:
        np.testing.assert_array_equal(got.spikes[k].dense(), want.spikes[k].dense(), err_msg=k)
        for var in ALL_INT:
            np.testing.assert_array_equal(got.traces[k][var], want.traces[k][var], err_msg=f"{k}.{var}")


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_floating_pt_alif_subtract_lif_and_li_equal_neurosim_float64(lava, seed):
    """The same networks in floating_pt: ALIF, subtract-reset LIF and LI run neuron_step in the custom
    process, the reset-to-zero LIF is Lava's PyLifModelFloat; spikes identical, traces to rounding
    (Lava's Dense sums in another order: measured max |dv| 4e-15)."""
    net = alif_network(seed)
    x = spike_input(seed, STEPS, p=0.3)
    # neurosim's a of a model without adaptation records z[t-1] (its defaults rho = 0,
    # adapt_gain = 1); Lava's own LIF has no a: it is compared where it means something
    spec = {p.name: ["v", "i", "threshold"] + (["a"] if p.name != "zero" else []) for p in net.populations}
    ref = ns.simulate(net, x, STEPS, traces=spec)
    got = _run(net, x, STEPS, "floating_pt", traces=spec)
    assert got.meta["custom"] == ["alif", "lif", "out"]
    assert np.ptp(ref.traces["alif"]["threshold"], axis=0).max() > 0.3  # adaptation moves thresholds
    for k in spec:
        np.testing.assert_array_equal(got.spikes[k].dense(), ref.spikes[k].dense(), err_msg=k)
        for var in spec[k]:
            np.testing.assert_allclose(got.traces[k][var], ref.traces[k][var], rtol=0, atol=1e-12,
                                       err_msg=f"{k}.{var}")
    with pytest.raises(ns.NetworkError, match="'a_int' exists in mode 'fixed_pt' only"):
        _run(net, x, STEPS, "floating_pt", traces={"alif": ["a_int"]})


@pytest.mark.slow
def test_lsnn_demo_network_in_both_lava_modes(lava):
    """The demo's LSNN (training.nets.recurrent_network(20, 64, 2, model='alif'): recurrent ALIF,
    subtract reset, LI readout): Lava fixed_pt = simulate_fixed bit for bit (spikes, u, v, a of the
    hidden layer, the readout's integers), Lava floating_pt = neurosim float64 spikes."""
    from training.nets import recurrent_network

    net = recurrent_network(20, 64, 2, model="alif", seed=0)
    steps = 200
    x = {"in": np.random.default_rng(7).random((steps, 20)) < 0.1}
    spec = {"hidden": ALL_INT, "out": ["u_int", "v_int", "v"]}
    want = simulate_fixed(quantize(net), x, steps, traces=spec)
    got = _run(net, x, steps, "fixed_pt", traces=spec)
    assert len(want.spikes["hidden"]) > 300
    np.testing.assert_array_equal(got.spikes["hidden"].dense(), want.spikes["hidden"].dense())
    for k, variables in spec.items():
        for var in variables:
            np.testing.assert_array_equal(got.traces[k][var], want.traces[k][var], err_msg=f"{k}.{var}")
    ref = ns.simulate(net, x, steps, traces={"out": ["v"]})
    flt = _run(net, x, steps, "floating_pt", traces={"out": ["v"]})
    np.testing.assert_array_equal(flt.spikes["hidden"].dense(), ref.spikes["hidden"].dense())
    np.testing.assert_allclose(flt.traces["out"]["v"], ref.traces["out"]["v"], rtol=0, atol=1e-12)


def test_poisson_input_raises():
    net = ns.Network(dt=1e-3, populations=[ns.Population("p", 2, ns.LIF(reset="zero"))],
                     inputs=[ns.PoissonInput("poi", 2, rate=40.0)],
                     projections=[ns.Projection("x", "poi", "p", np.eye(2))])
    with pytest.raises(ns.ExportError, match=r"lava: inputs\.poi: .*SpikeInput"):
        _run(net, {}, 10, "floating_pt")


def test_compat_relaxes_nothing_after_the_import(lava):
    """The 3.11 dataclass check and multiprocessing.set_start_method are Python's own again."""
    import dataclasses
    import multiprocessing

    from lava.magma.compiler.var_model import ByteEncoder

    assert dataclasses._get_field.__module__ == "dataclasses"
    assert multiprocessing.set_start_method.__module__ == "multiprocessing.context"
    assert ByteEncoder.__hash__ is None  # lava's class is left unhashable
    with pytest.raises(ValueError, match="mutable default"):
        @dataclasses.dataclass
        class Holder:
            x: ByteEncoder = ByteEncoder()


# ------------------------------------------------- per-neuron parameters, bit drop, bias on v


def _per_neuron_network() -> FixedPointNetwork:
    """ONE Lava LIF population of 6 neurons, each with its own du, dv, vth, bias_mant and
    bias_exp, fed through a mixed-sign projection with odd mantissas (Lava's Dense drops their
    lowest bit) and an excitatory one with odd mantissas (kept)."""
    r = np.random.default_rng(12)
    n, n_in = 6, 10
    pop = FixedPopulation("p", n, np.array([0, 100, 700, 2000, 3500, 4095]), np.array([0, 30, 200, 900, 2048, 4095]),
                          np.array([5000, 2500, 4000, 150, 120, 300]), np.array([0, 3, -5, 17, 1, -2]),
                          np.array([6, 0, 3, 6, 7, 2]), 0, 0, scale=1.0)
    mixed = 2 * r.integers(-120, 120, (n_in, n)) + 1                       # every mantissa odd
    exc = 2 * r.integers(0, 60, (n_in, n)) + 1
    return FixedPointNetwork(1e-3, (pop,), (FixedProjection("in_p", "in", "p", mixed, 0, 1, "mixed"),
                                            FixedProjection("in_p2", "in", "p", exc, -1, 2, "excitatory")),
                             (ns.SpikeInput("in", n_in),))


def test_per_neuron_lava_lif_is_one_population_and_matches_lava_fixed_pt_bit_for_bit(lava):
    """Lava 0.10's PyLifModelBitAcc applies du, dv, vth and bias per neuron: one Lava LIF
    process, u and v equal simulate_fixed's at every step; the odd mixed-sign mantissas act
    without their lowest bit in both (Lava's Dense truncates them itself)."""
    fixed = _per_neuron_network()
    assert fixed.populations[0].per_neuron and fixed.populations[0].is_lava_lif
    x = {"in": np.random.default_rng(13).random((80, 10)) < 0.4}
    spec = {"p": ["u_int", "v_int"]}
    want = simulate_fixed(fixed, x, 80, traces=spec)
    got = _run(fixed, x, 80, "fixed_pt", traces=spec)
    assert got.meta["custom"] == []                       # Lava's own LIF ran it
    counts = want.spikes["p"].counts()[0]
    assert np.all((counts >= 15) & (counts <= 60))  # every neuron spikes, none at every step
    np.testing.assert_array_equal(got.spikes["p"].dense(), want.spikes["p"].dense())
    for var in ("u_int", "v_int"):
        np.testing.assert_array_equal(got.traces["p"][var], want.traces["p"][var])
    assert want.meta["bit_dropped"] == {"in_p": 60, "in_p2": 0}


def test_bias_on_v_with_current_decay_matches_lava_in_both_modes(lava):
    """neurosim's bias on i with alpha != 0 (per-neuron alpha, beta) as Lava's bias on v:
    floating_pt (Lava's float LIF, bias b/(1-alpha), u0 = i0 - b/(1-alpha)) equals neurosim's
    float64 run; fixed_pt equals simulate_fixed bit for bit."""
    r = np.random.default_rng(3)
    n = 12
    net = ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", 8)], populations=[
        ns.Population("p", n, ns.LIF(alpha=r.uniform(0.3, 0.9, n), beta=r.uniform(0.8, 0.95, n),
                                     bias=r.normal(0.03, 0.02, n), theta=r.uniform(0.8, 1.2, n), reset="zero"),
                      i0=r.uniform(0, 0.2, n), v0=r.uniform(0, 0.3, n))],
        projections=[ns.Projection("in_p", "in", "p", r.normal(0.1, 0.2, (8, n)))])
    x = {"in": np.random.default_rng(4).random((100, 8)) < 0.3}
    ref = ns.simulate(net, x, 100, traces={"p": ["v", "i"]})
    got = _run(net, x, 100, "floating_pt", traces={"p": ["v", "i"]})
    assert len(ref.spikes["p"]) > 40
    np.testing.assert_array_equal(got.spikes["p"].dense(), ref.spikes["p"].dense())
    np.testing.assert_allclose(got.traces["p"]["i"], ref.traces["p"]["i"], rtol=0, atol=1e-12)
    fixed = quantize(net)
    assert fixed.report.populations["p"]["bias_on_v"] and fixed.populations[0].per_neuron
    want = simulate_fixed(fixed, x, 100, traces={"p": ["u_int", "v_int"]})
    got = _run(fixed, x, 100, "fixed_pt", traces={"p": ["u_int", "v_int"]})
    np.testing.assert_array_equal(got.spikes["p"].dense(), want.spikes["p"].dense())
    np.testing.assert_array_equal(got.traces["p"]["v_int"], want.traces["p"]["v_int"])

"""Loihi fixed-point mode, the integer step: Lava's LIF and the integer ALIF / subtractive reset /
refractory / LI extension against Python-integer references (networks: tests/test_fixed_point.py)."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim.fixed_point import (FixedPointNetwork, FixedPopulation, FixedProjection, initial_state, neuron_step_fixed,
                                  quantize, simulate_fixed)
from test_fixed_point import lif_network, spike_input

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


def _trunc_shift(p: int, k: int) -> int:
    return -((-p) >> k) if p < 0 else p >> k


def _clip(x: int) -> int:
    return max(-(2 ** 23 - 1), min(2 ** 23 - 1, x))


def _reference_alif(c: dict, m: int, spikes: list[int], steps: int):
    """One input channel -> one integer neuron (ALIF, LIF or LI; either reset; refractory) through
    one synapse (weight exponent 0), in plain Python integers, written from the module docstring
    of neurosim.fixed_point (the order of neurosim.models.neuron_step)."""
    u = v = z = r = 0
    a = c.get("a0", 0)
    arriving = [0] * (steps + 1)
    out = {"u": [], "v": [], "a": [], "s": []}
    for t in range(steps):
        u = _trunc_shift(u * (4096 - (c["du"] + 1)), 12) + arriving[t] * 64
        u = u - 2 ** 24 if u > 2 ** 23 else (u + 2 ** 24 if u <= -2 ** 23 else u)
        v_new = _clip(_trunc_shift(v * (4096 - c["dv"]), 12) + u + (c.get("bias", 0) << c.get("bias_exp", 0)))
        a = _clip(_trunc_shift(a * (4096 - c["drho"]), 12) + c["inc"] * z)
        if r > 0:
            v_new = v                      # refractory: v held, no spike
        threshold = c["vth"] * 64 + _trunc_shift(c["mant"] * a, c["shift"])
        z = int(r == 0 and c.get("spiking", True) and v_new > threshold)
        if z:
            v_new = _clip(v_new - c["vth"] * 64) if c["reset"] == "subtract" else 0
        v = v_new
        r = c["refractory"] if z else max(r - 1, 0)
        for k, x in (("u", u), ("v", v), ("a", a), ("s", z)):
            out[k].append(x)
        if t in spikes:
            arriving[t + 1] += m
    return out


def _alif_chain(c: dict, m: int) -> FixedPointNetwork:
    kind = c.get("kind", "alif")
    adapt = dict(drho=c["drho"], adapt_inc=c["inc"], adapt_mant=c["mant"], adapt_shift=c["shift"],
                 a0=c.get("a0", 0)) if kind == "alif" else {}
    pop = FixedPopulation("n", 1, c["du"], c["dv"], c["vth"], c.get("bias", 0), c.get("bias_exp", 0), 0, 0,
                          scale=64.0 * c["vth"],
                          kind=kind, reset=c["reset"], refractory=c["refractory"], **adapt)
    mode = "mixed" if m < 0 and m % 2 == 0 else ("inhibitory" if m < 0 else "excitatory")
    return FixedPointNetwork(1e-3, (pop,), (FixedProjection("in_n", "in", "n", np.array([[m]]), 0, 1, mode),),
                             (ns.SpikeInput("in", 1),))


ALIF_CASES = {
    # adaptation with subtractive reset and a 3-step refractory period
    "alif_subtract": (dict(du=4095, dv=200, vth=300, drho=200, inc=4000, mant=9000, shift=8, refractory=3,
                           reset="subtract", bias=40), 255, 0.6),
    # decaying current, reset to zero, adaptation starting from a0
    "alif_zero": (dict(du=1000, dv=100, vth=500, drho=40, inc=30000, mant=300, shift=10, refractory=0,
                       reset="zero", a0=50000), 200, 0.5),
    # no decay of a, no threshold effect: a (starting near the top) saturates at 2**23 - 1
    "a_saturates": (dict(du=4095, dv=0, vth=10, drho=0, inc=32767, mant=0, shift=0, refractory=0,
                         reset="subtract", bias=4095, a0=2 ** 23 - 200000), 0, 0.0),
    # negative adapt puts A below -2**23 and each spike lowers it more: the neuron fires every
    # step while v sits at the negative clip, and the subtract clips at -(2**23 - 1)
    "subtract_clips": (dict(du=4095, dv=0, vth=1000, drho=0, inc=1000, mant=-32768, shift=0, refractory=0,
                            reset="subtract", bias=-4096, bias_exp=7, a0=300), -254, 0.5),
    "lif_subtract_refractory": (dict(kind="lif", du=3000, dv=300, vth=200, drho=0, inc=0, mant=0, shift=0,
                                     refractory=2, reset="subtract"), 255, 0.7),
    "li": (dict(kind="li", du=2000, dv=300, vth=10, drho=0, inc=0, mant=0, shift=0, refractory=0,
                reset="zero", spiking=False), 255, 0.7),
}


@pytest.mark.parametrize("case", sorted(ALIF_CASES))
def test_integer_alif_equals_python_integer_reference(case):
    c, m, p = ALIF_CASES[case]
    steps = 300
    spikes = sorted(np.nonzero(np.random.default_rng(len(case)).random(steps - 1) < p)[0].tolist())
    x = np.zeros((steps, 1), bool)
    x[spikes, 0] = True
    res = simulate_fixed(_alif_chain(c, m), {"in": x}, steps, traces={"n": ["u_int", "v_int", "a_int"]})
    ref = _reference_alif(c, m, spikes, steps)
    for var, key in (("u_int", "u"), ("v_int", "v"), ("a_int", "a")):
        np.testing.assert_array_equal(res.traces["n"][var][:, 0, 0], ref[key], err_msg=var)
    s = res.spikes["n"].dense()[:, 0, 0]
    np.testing.assert_array_equal(s, ref["s"])
    if case in ("a_saturates", "subtract_clips"):
        assert s.all()
    elif case != "li":
        assert 5 < s.sum() < steps - 5, s.sum()  # spikes and silences both happen
    if case == "a_saturates":
        assert res.meta["a_clips"]["n"] > 0 and max(ref["a"]) == 2 ** 23 - 1
    if case == "subtract_clips":
        assert res.meta["v_clips"]["n"] > 0 and min(ref["v"]) == -(2 ** 23 - 1)
    if c["refractory"]:
        assert np.diff(np.nonzero(s)[0]).min() >= c["refractory"] + 1
    if case == "lif_subtract_refractory":
        assert np.diff(np.nonzero(s)[0]).min() == c["refractory"] + 1  # the refractory period is active
    if case == "alif_subtract":
        thr = res.traces["n"]["a_int"][:, 0, 0] * c["mant"] >> c["shift"]
        assert thr.max() > 64 * c["vth"]  # adaptation more than doubles the threshold


def test_adaptive_threshold_is_strict_and_subtract_removes_vth_only():
    """Closed form (du = 4095: u is this step's input; dv = 0, drho = 0: no leak): a0 = 1 gives
    A = 64*100 + trunc(51200 * 1 / 2**4) = 9600. Input 150 puts v exactly on A (no spike); one
    unit of bias more spikes, the subtract leaves v - 64*vth (not v - A), and the spike raises
    a by adapt_inc on the next step."""
    pop = FixedPopulation("n", 2, 4095, 0, 100, [0, 1], 0, 0, 0, 1.0, kind="alif", reset="subtract", drho=0,
                          adapt_inc=3, adapt_mant=51200 // 2, adapt_shift=3, a0=1)
    s0 = initial_state(pop, 1)
    s1 = neuron_step_fixed(pop, s0, np.array([[150, 150]]))
    assert pop.threshold_int(np.array([1]))[0] == 9600
    np.testing.assert_array_equal(s1.v[0], [9600, 9601 - 6400])
    np.testing.assert_array_equal(s1.z[0], [0, 1])
    s2 = neuron_step_fixed(pop, s1, np.array([[0, 0]]))
    np.testing.assert_array_equal(s2.a[0], [1, 4])
    np.testing.assert_array_equal(s2.z[0], [0, 0])


def test_batch_equals_separate_trials():
    fixed = quantize(lif_network(3))
    x = spike_input(3, 80, batch=3)
    both = simulate_fixed(fixed, x, 80, traces={"h": ["v_int"]})
    for b in range(3):
        one = simulate_fixed(fixed, {"in": x["in"][:, b]}, 80, traces={"h": ["v_int"]})
        np.testing.assert_array_equal(both.spikes["h"].dense()[:, b], one.spikes["h"].dense()[:, 0])
        np.testing.assert_array_equal(both.traces["h"]["v_int"][:, b], one.traces["h"]["v_int"][:, 0])

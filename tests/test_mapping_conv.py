"""Convolutional networks through Lava (its own Conv process, floating_pt and fixed_pt) and
Brian2 (synapses expanded from the kernels): spikes identical to neurosim's (float64) and to
neurosim's fixed-point mode (Lava fixed_pt), on random conv networks.

Independent references: torch's conv2d / conv1d on the integer kernel for the fixed-point
convolution, torch's conv applied to one-hot frames for the Brian2 synapse table, and the
peers' own runs (Lava's PyConvModelFloat / PyConvModelFixed, Brian2's numpy target)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conv_lava_nets import lava_conv_network, spikes_in
from conv_nets import conv_inputs, random_conv_network

import neurosim as ns
from neurosim.fixed_point import (FixedConv, FixedPointNetwork, FixedPopulation, dequantize, lava_conv_refusal,
                                  quantize, simulate_fixed, wrap24)

STEPS = 40
ASSETS = Path(__file__).resolve().parents[1] / "assets"
LAVA_NETS = (0, 1, 2, 3, 4, 5, 6)    # Lava's Conv carries every conv and pool
FALLBACK_NETS = (0, 1, 2)            # tests/conv_nets: per-tap delays, per-neuron thresholds, recurrent convs


def _lava():
    pytest.importorskip("lava", reason="lava-nc is not installed")
    from mapping.lava_export import run_lava
    return run_lava


def _same(a: ns.SimulationResult, b: ns.SimulationResult, names) -> None:
    for name in names:
        x, y = a.spikes[name].dense(), b.spikes[name].dense()
        assert np.array_equal(x, y), f"{name}: {np.count_nonzero(x != y)} of {x.size} bins differ"


def _spiking(net) -> list[str]:
    return [p.name for p in net.populations]


# ----------------------------------------------------------------------------- fixed point, no Lava

@pytest.mark.parametrize("seed", [0, 2])
def test_fixed_conv_step_is_torch_conv_of_the_integers_wrapped_to_24_bits(seed):
    """FixedConv.step_input = wrap24(conv(spikes, m << e)), torch's conv in float64 on exact integers."""
    net = lava_conv_network(seed)
    fixed = quantize(net)
    conv = next(q for q in fixed.projections if isinstance(q, FixedConv) and q.pre == "in")
    r = np.random.default_rng(seed)
    s = (r.random((3, conv.shape[0])) < 0.5).astype(np.int64)
    g = conv.geometry
    want = F.conv2d(torch.tensor(s.reshape(3, *g.in_shape), dtype=torch.float64),
                    torch.tensor(conv.lava_kernel, dtype=torch.float64), None, g.stride, g.padding, g.dilation,
                    g.groups).reshape(3, -1).numpy()
    assert np.array_equal(conv.step_input(s), wrap24(np.rint(want).astype(np.int64)))
    # the wrap: a sum beyond 2**23 comes back from the other end, as Lava's signed_clamp(x, 24)
    assert wrap24(np.array([2 ** 23 - 1, 2 ** 23, -2 ** 23, -2 ** 23 - 1])).tolist() == [2 ** 23 - 1, -2 ** 23,
                                                                                          -2 ** 23, 2 ** 23 - 1]


def test_quantize_keeps_what_lava_conv_carries_and_lowers_the_rest_with_a_reason():
    kept = quantize(lava_conv_network(0))
    assert [type(q).__name__ for q in kept.projections] == ["FixedConv"] * 3 + ["FixedProjection"] * 2
    assert all(q.weight_exp >= 0 for q in kept.projections if isinstance(q, FixedConv))
    for seed, reason in ((1, "no synaptic delay (it delivers after 1 step); delays 1..3 go through DelaySparse"),
                         (0, "input factor (gain / threshold scale) differs between neurons of one channel")):
        fallback = quantize(random_conv_network(seed))  # per-tap delays (1), per-neuron thresholds (0) on c1
        notes = {n.split(":")[0]: n for n in fallback.report.notes}
        assert notes["c1"].startswith("c1: conv2d quantised as its CSR lowering") and reason in notes["c1"]
        assert not any(isinstance(q, FixedConv) and q.name in ("c1", "rc") for q in fallback.projections)
    lowered = quantize(lava_conv_network(0), conv="lowered")
    assert not any(isinstance(q, FixedConv) for q in lowered.projections)


def test_fixed_conv_mantissas_dequantise_within_half_a_step():
    fixed = quantize(lava_conv_network(1))
    convs = [q for q in fixed.projections if isinstance(q, FixedConv)]
    assert len(convs) == 3
    back = {j.name: j for j in dequantize(fixed).projections}
    for q in convs:
        rep = fixed.report.projections[q.name]
        assert np.all(np.abs(rep["error"]) <= rep["error_bound"] * (1 + 1e-12))
        assert isinstance(back[q.name], ns.Conv2d)  # pooling comes back as its grouped kernel
        # the dequantised kernel is the mantissas times one step per output channel
        steps = back[q.name].kernel / np.where(q.kernel == 0, 1, q.kernel)
        per_channel = steps.reshape(steps.shape[0], -1)[np.arange(steps.shape[0]), np.argmax(q.kernel.reshape(
            steps.shape[0], -1) != 0, axis=1)]
        np.testing.assert_allclose(np.where(q.kernel == 0, per_channel[:, None, None, None], steps),
                                   np.broadcast_to(per_channel[:, None, None, None], steps.shape), rtol=1e-12)


def test_lava_conv_refusal_names_each_reason():
    net = random_conv_network(1)
    by_name = {j.name: j for j in net.shaped}
    assert lava_conv_refusal(by_name["fl"]).startswith("a Flatten")
    assert "no synaptic delay" in lava_conv_refusal(by_name["c1"])  # per-tap delays 1..3
    ok = lava_conv_network(0)
    c1 = next(j for j in ok.shaped if j.name == "c1")
    n = ok.population("l1").size
    assert lava_conv_refusal(c1, np.ones(n)) is None
    assert "differs between neurons of one channel" in lava_conv_refusal(c1, np.arange(n, dtype=float))


# ------------------------------------------------------------------------------------------ Lava

def test_lava_floating_pt_runs_convs_as_conv_processes_with_neurosims_spikes():
    run_lava = _lava()
    net = lava_conv_network(3)  # conv2d, average pool, conv2d: 99 neurons
    x = spikes_in(net, 3, STEPS)
    got = run_lava(net, x, STEPS, mode="floating_pt")
    assert got.meta["shaped"] == {"c1": "Conv", "pool": "Conv", "c3": "Conv"}  # Flatten: the Sparse identity
    ref = ns.simulate(net, x, STEPS)
    assert all(ref.spikes[p].dense().any() for p in ("l1", "l2", "l3", "f"))
    _same(ref, got, _spiking(net))


def test_lava_fixed_pt_conv_is_neurosims_fixed_point_mode_bit_for_bit():
    run_lava = _lava()
    net = lava_conv_network(2)  # 1-D
    fixed = quantize(net)
    x = spikes_in(net, 2, STEPS)
    got = run_lava(fixed, x, STEPS, mode="fixed_pt", traces={"l1": ["v_int", "u_int"]})
    assert got.meta["shaped"] == {"c1": "Conv", "c3": "Conv"}
    ref = simulate_fixed(fixed, x, STEPS, traces={"l1": ["v_int", "u_int"]})
    _same(ref, got, _spiking(net))
    for var in ("v_int", "u_int"):
        np.testing.assert_array_equal(got.traces["l1"][var], ref.traces["l1"][var])


def test_lava_fixed_pt_conv_wraps_its_sum_as_neurosim_models_it():
    """A kernel whose sum leaves 24 bits: Lava's Conv wraps it (no clip, no bit drop, weight_exp
    ignored); simulate_fixed does the same (u, v traces equal)."""
    run_lava = _lava()
    c, h, w = 32, 3, 3
    from neurosim.conv import ConvGeometry

    geom = ConvGeometry((c, h, w), (1, 1, 1), np.zeros((1, c, 3, 3)), 1, (1, 1), (0, 0), (1, 1), 1)
    kernel = np.full((1, c, 3, 3), 255, np.int64)
    kernel[0, 0, 0, 0] = 201
    conv = FixedConv("k", "in", "p", geom, kernel, 7, "excitatory")
    assert int(conv.lava_kernel.sum()) > 2 ** 23
    pop = FixedPopulation("p", 1, du=4095, dv=4096, vth=2 ** 17 - 1, bias_mant=np.zeros(1, np.int64),
                          bias_exp=np.zeros(1, np.int64), u0=np.zeros(1, np.int64), v0=np.zeros(1, np.int64),
                          scale=np.ones(1))
    fixed = FixedPointNetwork(1e-3, (pop,), (conv,), (ns.SpikeInput("in", (c, h, w)),))
    x = {"in": np.ones((6, 1, c * h * w), bool)}
    x["in"][2, 0, :5] = False
    ref = simulate_fixed(fixed, x, 6, traces={"p": ["u_int", "v_int"]})
    got = run_lava(fixed, x, 6, mode="fixed_pt", traces={"p": ["u_int", "v_int"]})
    total = int(conv.lava_kernel.sum())
    assert conv.step_input(np.ones((1, c * h * w), np.int64))[0, 0] == total - 2 ** 24 < 0  # wrapped once
    assert np.any(ref.traces["p"]["u_int"] != 0)
    for var in ("u_int", "v_int"):
        np.testing.assert_array_equal(got.traces["p"][var], ref.traces["p"][var])


def test_lava_falls_back_to_the_lowering_for_delays_and_per_neuron_factors():
    run_lava = _lava()
    net = random_conv_network(1)
    x = conv_inputs(net, 1, 25, 1)
    got = run_lava(net, x, 25, mode="floating_pt")
    assert got.meta["shaped"]["c1"].startswith("Sparse (CSR lowering): Lava's Conv has no synaptic delay")
    _same(ns.simulate(net, x, 25), got, _spiking(net))


# ---------------------------------------------------------------------------------------- Brian2

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_brian2_synapses_are_the_kernels_expanded(seed):
    """The synapse table of every conv and pool equals torch's conv of one-hot frames (the
    Jacobian column by column), per delay class."""
    from mapping.brian2_model import synapse_table

    net = random_conv_network(seed)
    shapes = {**{p.name: p.shape for p in net.populations}, **{s.name: s.shape for s in net.inputs}}
    for j in net.shaped:
        pre, post, w, d = synapse_table(j)
        n_pre, n_post = j.shape
        eye = torch.eye(n_pre, dtype=torch.float64).reshape(n_pre, *shapes[j.pre])
        delays = np.broadcast_to(np.asarray(j.delay), getattr(j, "kernel", np.zeros(())).shape) \
            if isinstance(j, ns.Convolution) else np.asarray(j.delay)
        for dc in np.unique(delays):
            if isinstance(j, ns.Convolution):
                op = F.conv1d if isinstance(j, ns.Conv1d) else F.conv2d
                k = torch.tensor(np.where(delays == dc, j.kernel, 0.0))
                dense = op(eye, k, None, j.stride, j.padding, j.dilation, j.groups).reshape(n_pre, -1).numpy()
                reach = op(eye, torch.tensor((delays == dc).astype(float)), None, j.stride, j.padding, j.dilation,
                           j.groups).reshape(n_pre, -1).numpy() != 0
            elif isinstance(j, ns.Pooling):
                div = None if isinstance(j, ns.AvgPool2d) else 1
                dense = F.avg_pool2d(eye, j.kernel_size, j.stride, j.padding, count_include_pad=True,
                                     divisor_override=div).reshape(n_pre, -1).numpy()
                reach = dense != 0
            else:
                dense, reach = np.eye(n_pre), np.eye(n_pre) != 0
            table = np.zeros((n_pre, n_post))
            sel = d == dc
            np.add.at(table, (pre[sel], post[sel]), w[sel])
            np.testing.assert_array_equal(table, dense, err_msg=f"{j.name} delay {dc}")
            assert np.array_equal(np.isin(np.arange(n_pre * n_post), pre[sel] * n_post + post[sel]).reshape(
                n_pre, n_post), reach), f"{j.name}: taps reached"


def test_brian2_conv_network_gives_neurosims_spikes():
    pytest.importorskip("brian2", reason="brian2 is not installed")
    from mapping.brian2_export import run_brian2

    net = lava_conv_network(1)
    x = spikes_in(net, 1, STEPS)
    got = run_brian2(net, x, STEPS, target="numpy")
    _same(ns.simulate(net, x, STEPS), got, _spiking(net))


# ---------------------------------------------------------------------------- the 10-network bar

def _bar_networks():
    return [(f"lava{s}", lava_conv_network(s), spikes_in(lava_conv_network(s), s, STEPS)) for s in LAVA_NETS] + \
        [(f"fallback{s}", random_conv_network(s), conv_inputs(random_conv_network(s), s, STEPS, 1))
         for s in FALLBACK_NETS]


@pytest.mark.slow
def test_ten_conv_networks_brian2_and_lava_give_neurosims_spikes():
    """Brian2 float64 and Lava floating_pt equal neurosim; Lava fixed_pt equals simulate_fixed."""
    pytest.importorskip("brian2", reason="brian2 is not installed")
    run_lava = _lava()
    from mapping.brian2_export import run_brian2

    for name, net, x in _bar_networks():
        ref = ns.simulate(net, x, STEPS)
        _same(ref, run_brian2(net, x, STEPS, target="numpy"), _spiking(net))
        _same(ref, run_lava(net, x, STEPS, mode="floating_pt"), _spiking(net))
        fixed = quantize(net)
        _same(simulate_fixed(fixed, x, STEPS), run_lava(fixed, x, STEPS, mode="fixed_pt"), _spiking(net))


@pytest.mark.slow
def test_trained_event_digit_network_brian2_and_lava_give_neurosims_spikes():
    """assets/nmnist_digits_conv_2ep.h5: `neurosim train --task nmnist_digits --arch
    'conv(16,k=5,s=2,p=2,reset=zero),pool(2),conv(32,k=3,p=1,reset=zero),pool(2),flatten,dense(10)'
    --epochs 2 --seed 0` (test accuracy 0.942), one test trial; the readout's v as well."""
    pytest.importorskip("brian2", reason="brian2 is not installed")
    run_lava = _lava()
    import torch as _torch

    from mapping.brian2_export import run_brian2
    from training.runfiles import to_batch
    from training.tasks import make_task

    net = ns.load(ASSETS / "nmnist_digits_conv_2ep.h5")
    batch = to_batch(make_task("nmnist_digits", seed=0).test, np.arange(1), _torch.float64)
    x, steps, tr = {"in": batch.inputs.numpy() != 0}, int(batch.inputs.shape[0]), {"out": ["v"]}
    ref = ns.simulate(net, x, steps, traces=tr)
    spiking = [p.name for p in net.populations if p.spiking]
    assert all(ref.spikes[p].dense().any() for p in spiking)
    fixed = quantize(net)
    assert all(isinstance(q, FixedConv) for q in fixed.projections[:4])
    ref_fixed = simulate_fixed(fixed, x, steps, traces=tr)
    for want, got in ((ref, run_brian2(net, x, steps, target="numpy", traces=tr)),
                      (ref, run_lava(net, x, steps, mode="floating_pt", traces=tr)),
                      (ref_fixed, run_lava(fixed, x, steps, mode="fixed_pt", traces=tr))):
        _same(want, got, spiking)
        np.testing.assert_array_equal(got.traces["out"]["v"], want.traces["out"]["v"])


def _per_neuron_thresholds(net: ns.Network, name: str, seed: int) -> ns.Network:
    """`net` with population `name`'s thresholds drawn per neuron (they vary within each channel)."""
    import dataclasses

    pops = []
    for p in net.populations:
        if p.name == name:
            theta = np.random.default_rng(seed).uniform(0.8, 1.2, p.size)
            p = dataclasses.replace(p, model=dataclasses.replace(p.model, theta=theta))
        pops.append(p)
    return net.replace(populations=tuple(pops))


def test_channel_scales_keep_a_conv_into_per_neuron_thresholds_and_lava_agrees():
    """quantize(scale='channel'): one scale per channel and per-neuron vth, so the conv stays a
    kernel (Lava's own LIF takes the per-neuron vth); Lava fixed_pt equals simulate_fixed."""
    run_lava = _lava()
    net = _per_neuron_thresholds(lava_conv_network(3), "l1", 3)
    per_neuron = quantize(net)
    assert not isinstance(per_neuron.projections[0], FixedConv)  # c1 lowered: thresholds vary in a channel
    fixed = quantize(net, scale="channel")
    assert isinstance(fixed.projections[0], FixedConv) and fixed.projections[0].name == "c1"
    l1 = fixed.population("l1")
    assert np.ndim(l1.vth) == 1 and l1.is_lava_lif
    rep = fixed.report.populations["l1"]
    assert rep["theta_max_abs_error"] <= 0.5 * 1.2 / np.min(l1.vth) * 1.0001  # half a vth step
    x = spikes_in(net, 3, STEPS)
    ref = simulate_fixed(fixed, x, STEPS)
    assert ref.spikes["l1"].dense().any()
    _same(ref, run_lava(fixed, x, STEPS, mode="fixed_pt"), _spiking(net))

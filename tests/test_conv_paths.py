"""The code paths that walk projections, on networks with shaped projections: each handles them
through the exact CSR lowering (fixed point with conv="lowered", Brian2, command line) or refuses them in one line
naming the projection (NIR and NetX export, a later issue)."""
from __future__ import annotations

import numpy as np
import pytest
from conv_nets import conv_inputs, random_conv_network

import neurosim as ns
from neurosim.cli.app import main
from neurosim.fixed_point import quantize


def test_quantize_conv_lowered_is_that_of_the_lowering():
    r = np.random.default_rng(0)
    pops = [ns.Population("c", (4, 6, 6), ns.LIF(beta=0.9, bias=ns.channel_bias(r.normal(0, 0.1, 4), (4, 6, 6)))),
            ns.Population("p", (4, 3, 3), ns.IF())]
    projs = [ns.Conv2d("c", "in", "c", r.normal(0, 0.5, (4, 1, 3, 3)), delay=r.integers(1, 3, (4, 1, 3, 3)),
                       groups=2), ns.SumPool2d("p", "c", "p", 2, delay=2)]
    net = ns.Network(1e-3, pops, projs, [ns.SpikeInput("in", (2, 8, 8))])
    a, b = quantize(net, conv="lowered"), quantize(net.lowered())
    assert [q.name for q in a.projections] == [q.name for q in b.projections] and len(a.projections) >= 2
    for p, q in zip(a.projections, b.projections):
        np.testing.assert_array_equal(p.weights, q.weights)
        np.testing.assert_array_equal(p.delay, q.delay)


def test_brian2_description_is_that_of_the_lowering():
    from mapping.brian2_model import describe

    net = random_conv_network(3)
    spec, arrays = describe(net)
    spec_low, arrays_low = describe(net.lowered())
    shaped = {j["name"]: j.pop("shaped") for j in spec["projections"] if "shaped" in j}
    assert sorted(shaped) == sorted(j.name for j in net.shaped) and shaped["c1"] == next(j for j in net.shaped if j.name == "c1").describe()
    assert spec == spec_low and arrays.keys() == arrays_low.keys()
    for key in arrays:
        np.testing.assert_array_equal(arrays[key], arrays_low[key], err_msg=key)


def test_netx_refuses_a_second_recurrent_projection_naming_it(tmp_path):
    from mapping.netx import to_netx

    net = random_conv_network(0)  # NIR exports conv networks: tests/test_nir_conv.py
    with pytest.raises(ns.ExportError, match=r"netx: projections\.rc: at most one recurrent projection per layer"):
        to_netx(net, tmp_path / "n.h5")


def test_cli_info_and_simulate_run_a_conv_file(tmp_path, capsys):
    net = random_conv_network(2)
    ns.save(net, tmp_path / "c.h5")
    assert main(["info", str(tmp_path / "c.h5")]) == 0
    out = capsys.readouterr().out
    assert "conv1d, kernel" in out and f"{net.n_synapses} synapses" in out
    inp = conv_inputs(net, 2, 30, 1)
    np.savez(tmp_path / "in.npz", **{k: v[:, 0] for k, v in inp.items()})
    assert main(["simulate", str(tmp_path / "c.h5"), "--steps", "30", "--input", str(tmp_path / "in.npz"),
                 "--no-progress", "--out", str(tmp_path / "r.h5")]) == 0
    got = ns.load_result(tmp_path / "r.h5")
    want = ns.simulate(net, inp, 30)
    for name, sp in want.spikes.items():
        np.testing.assert_array_equal(got.spikes[name].dense(), sp.dense())

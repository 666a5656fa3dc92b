"""Loihi for what neurosim trains: `neurosim train --model lif --reset zero` (LIF or LI readout)
-> `neurosim export --to netx` -> lava-dl's own ``netx.hdf5.Network`` in Lava fixed_pt gives
spikes (and the readout's u, v) identical to neurosim's fixed-point mode."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim.cli.app import main
from neurosim.errors import BackendUnavailable
from neurosim.fixed_point import VTH_MAX, simulate_fixed


@pytest.fixture(scope="module")
def netx():
    from mapping.lava_compat import import_netx

    try:
        return import_netx()
    except BackendUnavailable as exc:
        pytest.skip(f"lava-dl NetX unavailable: {exc}")


def _trained(tmp_path, readout: str) -> str:
    """A tiny run of the CLI: delayed_xor (40 inputs, 200 steps), 16 hidden LIF, reset zero."""
    run = tmp_path / "run"
    assert main(["train", "--task", "delayed_xor", "--model", "lif", "--reset", "zero", "--readout", readout,
                 "--hidden", "16", "--epochs", "1", "--n-train", "16", "--n-test", "8", "--batch-size", "16",
                 "--seed", "3", "--device", "cpu", "--no-progress", "--out", str(run)]) == 0
    return str(run / "model.h5")


@pytest.mark.parametrize("readout", ["lif", "li"])
def test_trained_lif_network_runs_in_lava_dl_netx_with_fixed_point_spikes(netx, tmp_path, capsys, readout):
    from mapping.netx import netx_quantize, read_netx_fixed, run_netx

    model = _trained(tmp_path, readout)
    net = ns.storage.load(model)
    assert [type(p.model).__name__ for p in net.populations] == ["LIF", "LIF" if readout == "lif" else "LI"]
    assert all(p.model.reset == "zero" for p in net.populations if p.spiking)
    path = str(tmp_path / "net.h5")
    capsys.readouterr()
    assert main(["export", model, "--to", "netx", "--out", path]) == 0
    printed = capsys.readouterr().out
    assert "lowest bit" in printed
    if readout == "li":  # the report says what the readout became
        assert f"out: LI readout written as a CUBA layer with vThMant {VTH_MAX}" in printed
    loaded = netx.Network(net_config=path)  # lava-dl's own reader
    assert len(loaded.layers) == 2 and type(loaded.layers[0]).__name__ == "RecurrentDense"

    fixed = netx_quantize(net)
    assert [p.kind for p in read_netx_fixed(path, net.dt).populations] == ["lif", readout]
    steps = 150  # a dense random input (the task's own is sparse): many spikes to compare
    x = np.random.default_rng(7).random((steps, net.inputs[0].size)) < 0.3
    want = simulate_fixed(fixed, {"in": x[:, None, :]}, steps,
                          traces={"hidden": ["u_int", "v_int"], "out": ["u_int", "v_int"]})
    got = run_netx(path, {"in": x}, steps, traces=True)
    assert len(want.spikes["hidden"]) > 100
    for k in ("hidden", "out"):
        np.testing.assert_array_equal(got.spikes[k].dense(), want.spikes[k].dense())
        for var in ("u_int", "v_int"):
            np.testing.assert_array_equal(got.traces[k][var], want.traces[k][var])
    if readout == "li":
        assert len(got.spikes["out"]) == 0 and np.abs(want.traces["out"]["v_int"]).max() > 1000
    else:
        assert len(want.spikes["out"]) > 0
    assert want.meta["bit_dropped"] == {q.name: 0 for q in fixed.projections}


def test_train_refuses_what_it_cannot_train(tmp_path, capsys):
    """--readout lif with e-prop (its learning signal is the LI readout's) and bad values exit 2."""
    assert main(["train", "--task", "delayed_xor", "--rule", "eprop", "--readout", "lif",
                 "--out", str(tmp_path / "r")]) == 2
    assert "--readout lif" in capsys.readouterr().err
    assert main(["train", "--task", "delayed_xor", "--reset", "hold", "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


def test_a_checkpoint_from_before_the_options_resumes_as_subtract_and_li(tmp_path):
    """A run written before --reset/--readout existed (neither in its config) was trained with
    a subtractive reset and an LI readout: it resumes with those and is refused with others."""
    from dataclasses import asdict

    import torch

    from neurosim.errors import NeurosimError
    from training.config import TrainConfig
    from training.runfiles import CHECKPOINT_VERSION, read_checkpoint

    old = asdict(TrainConfig(task="delayed_xor", epochs=2))
    del old["reset"], old["readout"]
    row = dict(epoch=0, train_loss=1.0, train_acc=0.5, test_loss=1.0, test_acc=0.5, seconds=1.0)
    torch.save({"version": CHECKPOINT_VERSION, "config": old, "epoch": 0, "history": [row]}, tmp_path / "c.pt")
    assert read_checkpoint(tmp_path / "c.pt", TrainConfig(task="delayed_xor", epochs=2))[1] == 0
    with pytest.raises(NeurosimError, match="--reset 'subtract' there, 'zero' here"):
        read_checkpoint(tmp_path / "c.pt", TrainConfig(task="delayed_xor", epochs=2, reset="zero"))


def test_li_readout_scale_is_lowered_until_it_cannot_spike_and_a_non_leaky_one_is_refused(tmp_path):
    """The LI readout's worst case (every hidden neuron spiking every step, excitatory weights,
    beta 0.999) would pass vThMant << 6 at the default scale: netx_quantize lowers that layer's
    scale until the bound holds; with beta = 1 (no leak) no scale does, and nothing is written."""
    from mapping.netx import netx_quantize, to_netx
    from mapping.netx_readout import LI_VTH_INT, li_bound
    from neurosim.fixed_point import quantize

    r = np.random.default_rng(0)
    w_in, w_out = r.uniform(0, 0.5, (10, 30)), r.uniform(0, 1.0, (30, 3))

    def net(beta: float) -> ns.Network:
        return ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", 10)], populations=[
            ns.Population("h", 30, ns.LIF(beta=0.9, reset="zero")), ns.Population("o", 3, ns.LI(beta=beta))],
            projections=[ns.Projection("in_h", "in", "h", w_in), ns.Projection("h_o", "h", "o", w_out)])

    plain = quantize(net(0.999), weight_exp=0, bias_exp=6, lava_lif_only=True)
    assert li_bound(plain, "o") > LI_VTH_INT
    fixed = netx_quantize(net(0.999))
    assert li_bound(fixed, "o") <= LI_VTH_INT and fixed.population("o").vth < plain.population("o").vth
    assert fixed.population("h").vth == plain.population("h").vth
    assert any("o: LI readout written as a CUBA layer" in n for n in fixed.report.notes)
    with pytest.raises(ns.ExportError, match=r"netx: populations\.o: an LI readout .* must never spike"):
        to_netx(net(1.0), tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()

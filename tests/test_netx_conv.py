"""NetX conv export (issue 21, item 3): conv, pooling, Conv1d and flatten -> dense written in the
layout lava-dl's ``netx.hdf5.Network`` reads, run there (Lava fixed_pt) with exactly neurosim's
fixed-point spikes, u and v; the integers written are those of the fixed-point network; what
NetX cannot hold is refused naming the field."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

import neurosim as ns
from mapping.netx import netx_quantize, read_netx, read_netx_file, read_netx_fixed, run_netx, to_netx
from mapping.netx_conv import lowered_weights
from neurosim.errors import BackendUnavailable
from neurosim.fixed_point import dequantize, simulate_fixed
from netx_conv_nets import random_input, random_netx_conv_network


@pytest.fixture(scope="module")
def netx():
    from mapping.lava_compat import import_netx

    try:
        return import_netx()
    except BackendUnavailable as exc:
        pytest.skip(f"lava-dl NetX unavailable: {exc}")


def _agree(net: ns.Network, path, steps: int, seed: int, min_spikes: int = 1) -> None:
    """lava-dl NetX on `path` and simulate_fixed on netx_quantize(net): every spike, u and v equal."""
    fixed = netx_quantize(net)
    x = random_input(net, seed, steps)
    names = [p.name for p in net.populations]
    want = simulate_fixed(fixed, {"in": x}, steps, traces={n: ["u_int", "v_int"] for n in names})
    got = run_netx(path, {"in": x}, steps, traces=True)
    for n in names:
        if net.population(n).spiking:
            assert want.spikes[n].dense().sum() >= min_spikes, n
        np.testing.assert_array_equal(got.spikes[n].dense(), want.spikes[n].dense(), err_msg=n)
        for var in ("u_int", "v_int"):
            np.testing.assert_array_equal(got.traces[n][var], want.traces[n][var], err_msg=f"{n} {var}")


def test_conv_pool_conv_dense_runs_in_lava_dl_with_fixed_point_spikes(netx, tmp_path):
    """Strided, padded, dilated conv; sum pool; a second conv (current decay); flatten; a LIF
    readout with per-synapse delays; per-neuron decays and biases in NetX's (W, H, C) form."""
    net = random_netx_conv_network(3)
    path = tmp_path / "c.h5"
    to_netx(net, path)
    loaded = netx.Network(net_config=str(path))  # lava-dl's own reader
    assert [type(b).__name__ for b in loaded.layers] == ["Conv", "Conv", "Conv", "Dense"]
    assert tuple(loaded.layers[0].shape) == tuple(net.population("c1").shape[::-1])  # (X, Y, C)
    _agree(net, path, 30, 3, min_spikes=20)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_random_conv_networks_agree_with_lava_dl(netx, tmp_path, seed):
    net = random_netx_conv_network(seed)
    to_netx(net, tmp_path / "c.h5")
    _agree(net, tmp_path / "c.h5", 60, seed, min_spikes=10)


def test_file_layout_and_integers_are_the_fixed_point_networks(tmp_path):
    net = random_netx_conv_network(0)  # conv (dilated, padded), avg pool, conv, LI readout
    path = tmp_path / "c.h5"
    to_netx(net, path)
    conv = net.projections[0]
    with h5py.File(path) as f:
        types = [f[f"layer/{k}/type"][0].decode() for k in range(len(f["layer"]))]
        assert types == ["input", "conv", "conv", "conv", "flatten", "dense"]
        assert list(f["layer/0/shape"]) == list(net.inputs[0].shape)
        g = f["layer/1"]
        assert list(g["shape"]) == list(net.population("c1").shape)
        assert g["weight"].shape == conv.kernel.shape  # torch's (C_out, C_in // groups, kh, kw)
        assert [list(g[k]) for k in ("stride", "padding", "dilation")] == \
            [list(conv.stride), list(conv.padding), list(conv.dilation)]
        pool = f["layer/2"]
        assert int(pool["groups"][()]) == net.population("c1").shape[0]
        assert len(np.unique(pool["weight"][()])) == 1 and pool["weight"].shape[1] == 1
    fixed = netx_quantize(net)
    back = read_netx_fixed(path, net.dt)
    for a, b in zip(fixed.projections, back.projections):
        assert (a.name, a.pre, a.post) == (b.name, b.pre, b.post)
        np.testing.assert_array_equal(a.weights, b.weights)   # every lowered integer, exactly
    for a, b in zip(fixed.populations, back.populations):
        for k in ("du", "dv") + (("vth",) if a.kind != "li" else ()):  # an LI readout is written with vth 131071
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
        np.testing.assert_array_equal(a.effective_bias, b.effective_bias)
    assert back.population("out").kind == "li"


def test_per_neuron_arrays_are_written_in_netx_orientation(tmp_path):
    net = random_netx_conv_network(1)  # per-neuron beta and bias on c1
    path = tmp_path / "c.h5"
    to_netx(net, path)
    c, h, w = net.population("c1").shape
    fixed = netx_quantize(net)
    dv = fixed.population("c1").dv
    with h5py.File(path) as f:
        stored = f["layer/1/neuron/vDecay"][()]
        assert stored.shape == (w, h, c)
        for (x, y, ch) in [(0, 0, 0), (w - 1, 0, c - 1), (w // 2, h - 1, 0)]:
            assert stored[x, y, ch] == dv[(ch * h + y) * w + x]  # NetX's (X, Y, C) is our (c, y, x)


def test_netx_conv_block_computes_torch_conv(netx, tmp_path):
    """NetX's own conv loader and Lava's conv function on our file equal the lowering of the
    kernel we wrote (torch's cross-correlation), independent of any run."""
    from lava.proc.conv import utils as conv_utils

    net = random_netx_conv_network(4)
    path = tmp_path / "c.h5"
    to_netx(net, path)
    layout = read_netx_file(path, net.dt)
    g = layout.convs["c1"]
    with h5py.File(path) as f:
        from lava.lib.dl.netx.utils import NetDict

        block, _ = netx.hdf5.Network.create_conv(NetDict(f=f["layer/1"]), tuple(g.in_shape[::-1]))
    weight = block.synapse.weight.init
    x = np.random.default_rng(0).random(g.in_shape) < 0.4   # (C, H, W)
    got = conv_utils.conv(x.transpose(2, 1, 0), weight.astype(np.int32), weight.shape[1:3], g.stride[::-1],
                          g.padding[::-1], g.dilation[::-1], g.groups)           # (X, Y, C)
    want = x.reshape(-1).astype(np.int64) @ lowered_weights(g)
    np.testing.assert_array_equal(got.transpose(2, 1, 0).reshape(-1), want)


def test_float_round_trip_gives_shaped_conv_records(tmp_path):
    net = random_netx_conv_network(0)
    path = tmp_path / "c.h5"
    fixed = netx_quantize(net)
    to_netx(net, path)
    flt = read_netx(path, net.dt)
    assert [p.shape for p in flt.populations] == [p.shape for p in net.populations]
    assert [type(j).__name__ for j in flt.projections] == ["Conv2d", "Conv2d", "Conv2d", "Projection"]
    ref = dequantize(read_netx_fixed(path, net.dt))
    for a, b in zip(flt.lowered().projections, ref.projections):
        np.testing.assert_array_equal(a.weights.to_dense() if a.is_sparse else a.weights, b.weights)
    # SLAYER units: state scale 4096 = 64 * vth for a LIF's vth, 64 * 64 for the LI readout (theta 1)
    again = netx_quantize(flt, vth_mant={p.name: p.vth if p.kind != "li" else 64 for p in fixed.populations})
    for a, b in zip(fixed.projections, again.projections):
        np.testing.assert_array_equal(a.weights, b.weights)


def _conv1d_net() -> ns.Network:
    r = np.random.default_rng(7)
    pops = [ns.Population("a", (3, 9), ns.LIF(beta=0.9, theta=1.0, reset="zero")),
            ns.Population("b", 4, ns.LIF(beta=0.8, reset="zero"))]
    projs = [ns.Conv1d("in_a", "in", "a", r.normal(0.4, 0.5, (3, 2, 3)), stride=2, padding=1, dilation=1),
             ns.Projection("a_b", "a", "b", r.normal(0.2, 0.4, (27, 4)))]
    return ns.Network(1e-3, pops, projs, [ns.SpikeInput("in", (2, 17))], name="c1d")


def test_conv1d_is_a_conv_of_height_one_and_reads_back(tmp_path):
    net = _conv1d_net()
    path = tmp_path / "c.h5"
    to_netx(net, path)
    with h5py.File(path) as f:
        assert list(f["layer/0/shape"]) == [2, 1, 17] and list(f["layer/1/shape"]) == [3, 1, 9]
    back = read_netx(path, net.dt)
    assert type(back.projections[0]).__name__ == "Conv1d" and back.population("a").shape == (3, 9)
    assert back.inputs[0].shape == (2, 17)


@pytest.mark.slow
def test_conv1d_runs_in_lava_dl(netx, tmp_path):
    net = _conv1d_net()
    to_netx(net, tmp_path / "c.h5")
    _agree(net, tmp_path / "c.h5", 40, 7, min_spikes=10)


def _flatten_net() -> ns.Network:
    """A shaped input flattened by a Flatten record into a LIF layer, then a dense readout."""
    r = np.random.default_rng(11)
    pops = [ns.Population("f", 32, ns.LIF(beta=0.8, theta=0.7, reset="zero")),
            ns.Population("o", 3, ns.LIF(beta=0.9, reset="zero"))]
    projs = [ns.Flatten("in_f", "in", "f"), ns.Projection("f_o", "f", "o", r.normal(0.3, 0.4, (32, 3)))]
    return ns.Network(1e-3, pops, projs, [ns.SpikeInput("in", (2, 4, 4))], name="flat")


def test_a_flatten_record_is_a_flatten_entry_and_an_identity_dense_layer(tmp_path):
    net = _flatten_net()
    to_netx(net, tmp_path / "f.h5")
    with h5py.File(tmp_path / "f.h5") as f:
        assert [f[f"layer/{k}/type"][0].decode() for k in range(4)] == ["input", "flatten", "dense", "dense"]
        assert list(f["layer/0/shape"]) == [2, 4, 4]
        w = f["layer/2/weight"][()]
        np.testing.assert_array_equal(w, np.diag(np.diag(w)))
        assert len(np.unique(np.diag(w))) == 1 and w[0, 0] > 0
    back = read_netx_fixed(tmp_path / "f.h5", net.dt)
    for a, b in zip(netx_quantize(net).projections, back.projections):
        np.testing.assert_array_equal(a.weights, b.weights)


@pytest.mark.slow
def test_flatten_record_runs_in_lava_dl(netx, tmp_path):
    net = _flatten_net()
    to_netx(net, tmp_path / "f.h5")
    _agree(net, tmp_path / "f.h5", 40, 11, min_spikes=10)


def _refusals() -> list:
    net = random_netx_conv_network(2)  # c1 -> p1 -> out
    c1, p1, out = net.populations
    conv, pool, dense = net.projections
    k = conv.kernel
    other = ns.Population("c1", c1.shape, ns.LIF(beta=0.9, theta=np.linspace(0.8, 1.2, c1.size), reset="zero"))
    return [
        (net.replace(projections=(ns.Conv2d("in_c1", "in", "c1", k, conv.stride, conv.padding, conv.dilation,
                                            conv.groups, delay=np.full(k.shape, 2)), pool, dense)),
         r"projections\.in_c1\.delay: Lava's Conv synapse .* has no delays"),
        (net.replace(projections=(conv, pool, dense, ns.Conv2d("rc", "c1", "c1", np.ones((k.shape[0], k.shape[0] //
                                                                                          conv.groups, 1, 1)),
                                                               groups=conv.groups))),
         r"projections\.rc: NetX has no recurrent conv block"),
        (net.replace(populations=(other, p1, out)), r"populations\.c1\.model\.theta: NetX's conv shares one"),
        (net.replace(populations=(ns.Population("c1", c1.shape, ns.LIF(reset="subtract")), p1, out)),
         r"populations\.c1\.model\.reset"),
    ]


@pytest.mark.parametrize("case", range(4))
def test_what_netx_cannot_hold_is_refused_naming_the_field(tmp_path, case):
    network, match = _refusals()[case]
    with pytest.raises(ns.ExportError, match="netx: " + match):
        to_netx(network, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def test_conv_after_dense_is_refused(tmp_path):
    pops = [ns.Population("d", 18, ns.LIF(reset="zero"), shape=(2, 3, 3)),
            ns.Population("c", (1, 2, 2), ns.LIF(reset="zero"))]
    projs = [ns.Projection("in_d", "in", "d", np.full((5, 18), 0.5)),
             ns.Conv2d("d_c", "d", "c", np.ones((1, 2, 2, 2)))]
    net = ns.Network(1e-3, pops, projs, [ns.SpikeInput("in", 5)])
    with pytest.raises(ns.ExportError, match=r"netx: projections\.d_c: NetX feeds a conv block from the input"):
        to_netx(net, tmp_path / "x.h5")


@pytest.mark.parametrize("edit,field", [
    (lambda f: f["layer/1/shape"].write_direct(np.array([1, 9, 9])), r"/layer/1/shape: expected \["),
    (lambda f: (f.__delitem__("layer/4"), f.move("layer/5", "layer/4")),
     r"/layer/4/type: a dense layer after a conv layer needs a 'flatten'"),
    (lambda f: f["layer/1/weight"].write_direct(np.ones(f["layer/1/weight"].shape, np.int64) *
                                                 np.array([1, -1])[np.arange(f["layer/1/weight"].size) % 2]
                                                 .reshape(f["layer/1/weight"].shape)),
     r"/layer/1/weight: odd mixed-sign weights: Lava.s Conv uses them whole"),
])
def test_bad_conv_files_raise_naming_the_hdf5_path(tmp_path, edit, field):
    path = tmp_path / "c.h5"
    to_netx(random_netx_conv_network(0), path)
    with h5py.File(path, "r+") as f:
        edit(f)
    with pytest.raises(ns.FileFormatError, match=field):
        read_netx(path, 1e-3)


def test_cli_exports_and_imports_a_conv_net(tmp_path, capsys):
    from neurosim.cli.app import main

    net = random_netx_conv_network(5)
    ns.save(net, tmp_path / "m.h5")
    assert main(["export", str(tmp_path / "m.h5"), "--to", "netx", "--out", str(tmp_path / "m.netx.h5")]) == 0
    fixed = netx_quantize(net)
    for a, b in zip(fixed.projections, read_netx_fixed(tmp_path / "m.netx.h5", net.dt).projections):
        np.testing.assert_array_equal(a.weights, b.weights)
    assert main(["import", str(tmp_path / "m.netx.h5"), "--from", "netx", "--dt", "1e-3",
                 "--out", str(tmp_path / "back.h5")]) == 0
    back = ns.load(tmp_path / "back.h5")
    assert [type(j).__name__ for j in back.projections] == ["Conv2d", "Conv2d", "Projection"]
    capsys.readouterr()


@pytest.mark.slow
def test_trained_event_digit_conv_net_runs_in_lava_dl(netx, tmp_path):
    """`neurosim train --task nmnist_digits --arch conv...` (reset zero, a short run) -> `neurosim
    export --to netx` -> lava-dl NetX on a test sample: every spike, u and v of neurosim's fixed point."""
    from neurosim.cli.app import main
    from training.tasks import make_task

    arch = ("conv(8,k=5,s=2,p=2,reset=zero),pool(2,reset=zero),conv(16,k=3,p=1,reset=zero),pool(2,reset=zero),"
            "flatten,dense(10)")
    run = tmp_path / "run"
    assert main(["train", "--task", "nmnist_digits", "--arch", arch, "--epochs", "1", "--n-train", "120",
                 "--n-test", "20", "--device", "cpu", "--no-progress", "--out", str(run)]) == 0
    path = tmp_path / "m.netx.h5"
    assert main(["export", str(run / "model.h5"), "--to", "netx", "--out", str(path)]) == 0
    net = ns.load(run / "model.h5")
    fixed = netx_quantize(net)
    x = np.asarray(make_task("nmnist_digits", seed=0, n_train=120, n_test=20).test.inputs)[0] != 0
    names = [p.name for p in net.populations]
    want = simulate_fixed(fixed, {"in": x[:, None, :]}, x.shape[0], traces={n: ["u_int", "v_int"] for n in names})
    got = run_netx(path, {"in": x}, x.shape[0], traces=True)
    assert want.spikes["l1"].dense().sum() > 50
    for n in names:
        np.testing.assert_array_equal(got.spikes[n].dense(), want.spikes[n].dense(), err_msg=n)
        for var in ("u_int", "v_int"):
            np.testing.assert_array_equal(got.traces[n][var], want.traces[n][var], err_msg=f"{n} {var}")

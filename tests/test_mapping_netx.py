"""lava-dl NetX HDF5: our files run in lava-dl's own loader with exactly simulate_fixed's spikes,
round trips give the quantised network back, and bad files name the HDF5 path."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

import neurosim as ns
from neurosim.errors import BackendUnavailable
from neurosim.fixed_point import simulate_fixed
from mapping.netx import netx_quantize, read_netx, read_netx_fixed, run_netx, to_netx


def chain(seed: int, recurrent: bool, delays: bool) -> ns.Network:
    """input -> h (per-neuron thresholds, current decay) -> o (bias, gain); options: h self-
    recurrence ('dense_rec') or delays (scalar into h, per synapse into o)."""
    r = np.random.default_rng(seed)
    n_in, nh, no = 10, 20, 8
    projs = [ns.Projection("in_h", "in", "h", r.normal(0.4, 0.4, (n_in, nh)), delay=3 if delays else 1),
             ns.Projection("h_o", "h", "o", r.normal(0.2, 0.3, (nh, no)),
                           delay=r.integers(1, 6, (nh, no)) if delays else 1)]
    if recurrent:
        projs.append(ns.Projection("h_h", "h", "h", r.normal(0.0, 0.2, (nh, nh))))
    return ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", n_in)], projections=projs, populations=[
        ns.Population("h", nh, ns.LIF(beta=0.9, alpha=r.uniform(0.2, 0.6), theta=r.uniform(0.8, 1.2, nh),
                                      reset="zero")),
        ns.Population("o", no, ns.LIF(beta=0.85, theta=1.0, bias=r.normal(0.02, 0.01, no),
                                      gain=r.uniform(0.9, 1.1, no), reset="zero"))])


@pytest.fixture(scope="module")
def netx():
    from mapping.lava_compat import import_netx

    try:
        return import_netx()
    except BackendUnavailable as exc:
        pytest.skip(f"lava-dl NetX unavailable: {exc}")


@pytest.mark.parametrize("recurrent,delays", [(True, False), (False, True)])
def test_netx_file_runs_in_lava_dl_with_simulate_fixed_spikes(netx, tmp_path, recurrent, delays):
    net = chain(3, recurrent, delays)
    path = tmp_path / "net.h5"
    report = to_netx(net, path)
    assert report.projections["in_h"]["weight_exp"] == 0
    loaded = netx.Network(net_config=str(path))  # lava-dl's own reader accepts the file
    assert len(loaded.layers) == 2
    assert (type(loaded.layers[0]).__name__ == "RecurrentDense") == recurrent
    x = np.random.default_rng(4).random((120, 10)) < 0.2
    want = simulate_fixed(netx_quantize(net), {"in": x}, 120, traces={"h": ["u_int", "v_int"], "o": ["u_int", "v_int"]})
    got = run_netx(path, {"in": x}, 120, traces=True)
    for k in ("h", "o"):
        assert len(want.spikes[k]) > 40
        np.testing.assert_array_equal(got.spikes[k].dense(), want.spikes[k].dense())
        np.testing.assert_array_equal(got.traces[k]["u_int"], want.traces[k]["u_int"])
        np.testing.assert_array_equal(got.traces[k]["v_int"], want.traces[k]["v_int"])


@pytest.mark.parametrize("recurrent,delays", [(True, False), (False, True)])
def test_round_trip_gives_the_quantised_network(tmp_path, recurrent, delays):
    net = chain(5, recurrent, delays)
    fixed = netx_quantize(net)
    path = tmp_path / "net.h5"
    to_netx(fixed, path)
    back = read_netx_fixed(path, net.dt)
    assert [p.name for p in back.populations] == ["h", "o"] and back.inputs[0].name == "in"
    for a, b in zip(fixed.populations, back.populations):
        assert (a.du, a.dv, a.vth) == (b.du, b.dv, b.vth)
        np.testing.assert_array_equal(a.effective_bias, b.effective_bias)
    read = {q.name: q for q in back.projections}
    assert sorted(read) == sorted(q.name for q in fixed.projections)
    for a in fixed.projections:
        b = read[a.name]
        assert (a.pre, a.post, a.weight_exp, a.sign_mode) == (b.pre, b.post, b.weight_exp, b.sign_mode)
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.delays, b.delays)
    # the float network read back (SLAYER units) quantises to the same integers again
    flt = read_netx(path, net.dt)
    np.testing.assert_allclose(flt.population("h").params.theta, fixed.populations[0].vth / 64, rtol=0)
    again = netx_quantize(flt, vth_mant={p.name: p.vth for p in fixed.populations})
    requantised = {q.name: q for q in again.projections}
    for a in fixed.projections:
        np.testing.assert_array_equal(a.weights, requantised[a.name].weights)
    for a, b in zip(fixed.populations, again.populations):
        assert (a.du, a.dv) == (b.du, b.dv)
        np.testing.assert_array_equal(a.effective_bias, b.effective_bias)


def test_what_netx_cannot_hold_raises(tmp_path):
    net = chain(1, recurrent=False, delays=False)
    pops = list(net.populations)
    bad = [
        (net.replace(projections=net.projections + (ns.Projection("in_o", "in", "o", np.ones((10, 8))),)),
         r"netx: projections\.in_o"),
        (net.replace(populations=(pops[0], ns.Population("o", 8, ns.LIF(reset="zero"), v0=0.5))),
         r"netx: populations\.o\.v0"),
        (net.replace(populations=(pops[0], ns.Population("o", 8, ns.LIF(reset="subtract")))),
         r"netx: populations\.o\.model\.reset"),
        (net.replace(projections=(net.projections[0], ns.Projection("h_o", "h", "o", np.ones((20, 8)), delay=64))),
         r"netx: projections\.h_o\.delay"),
    ]
    for network, match in bad:
        with pytest.raises(ns.ExportError, match=match):
            to_netx(network, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
    with pytest.raises(ns.ExportError, match=r"projections\.in_h\.weights.*clip"):
        to_netx(net, tmp_path / "x.h5", vth_mant=4000)


def _corrupt(path, where, value=None, delete=False):
    with h5py.File(path, "r+") as f:
        del f[where]
        if not delete:
            f[where] = value


@pytest.mark.parametrize("where,value,delete,field", [
    ("layer/1/neuron/vThMant", None, True, "/layer/1/neuron/vThMant: missing"),
    ("layer/2/type", np.array([b"pool"], "S10"), False, "/layer/2/type: unsupported layer type 'pool'"),
    ("layer/1/weight", np.zeros((20, 9)), False, r"/layer/1/weight: expected shape \(20, 10\)"),
    ("layer/1/weight", np.full((20, 10), 300) * np.sign(np.arange(-100, 100).reshape(20, 10)), False,
     r"/layer/1/weight: NetX/Lava clip mixed weights"),
    ("layer/1/weight", np.full((20, 10), 0.5), False, "/layer/1/weight: expected whole numbers"),
    ("layer/1/neuron/iDecay", 5000, False, r"/layer/1/neuron/iDecay: expected values in \[0, 4096\]"),
    ("layer/2/delay", np.full((8, 20), 70), False, r"/layer/2/delay: expected values in \[0, 62\]"),
])
def test_bad_files_raise_naming_the_hdf5_path(tmp_path, where, value, delete, field):
    path = tmp_path / "net.h5"
    to_netx(chain(2, recurrent=False, delays=True), path)
    _corrupt(path, where, value, delete)
    with pytest.raises(ns.FileFormatError, match=field):
        read_netx(path, 1e-3)


def test_not_hdf5_raises(tmp_path):
    path = tmp_path / "net.h5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(ns.FileFormatError, match="cannot be opened as HDF5"):
        read_netx(path, 1e-3)


def test_reader_follows_netx_on_other_layouts(netx, tmp_path):
    """Forms our writer does not produce but NetX reads: a per-output-neuron delay vector, a
    variable-length string type, no names. read_netx_fixed + simulate_fixed = NetX in Lava."""
    path = tmp_path / "net.h5"
    to_netx(chain(6, recurrent=False, delays=False), path)
    with h5py.File(path, "r+") as f:
        f["layer/2"].create_dataset("delay", data=np.arange(8) % 4)      # one extra delay per output neuron
        del f["layer/1/neuron/type"]
        f["layer/1/neuron/type"] = "CUBA"
        for k in ("0", "1", "2"):
            for a in list(f[f"layer/{k}"].attrs):
                del f[f"layer/{k}"].attrs[a]
    fixed = read_netx_fixed(path, 1e-3)
    assert [p.name for p in fixed.populations] == ["layer1", "layer2"]
    np.testing.assert_array_equal(fixed.projections[1].delays, np.broadcast_to(np.arange(8) % 4 + 1, (20, 8)))
    x = np.random.default_rng(8).random((80, 10)) < 0.25
    want = simulate_fixed(fixed, {"input": x}, 80)
    got = run_netx(path, {"input": x}, 80)
    for k in ("layer1", "layer2"):
        assert len(want.spikes[k]) > 20
        np.testing.assert_array_equal(got.spikes[k].dense(), want.spikes[k].dense())


def test_per_neuron_decays_and_thresholds_run_in_lava_dl(netx, tmp_path):
    """NetX hands iDecay, vDecay, vThMant arrays to Lava's LIF, which applies them per neuron: a
    float network with per-neuron alpha and beta (one NetX layer) and the same integers with
    per-neuron vth written back run in lava-dl with simulate_fixed's spikes, u and v."""
    import dataclasses

    r = np.random.default_rng(9)
    net = chain(9, recurrent=False, delays=False)
    h = net.populations[0].model
    per = dataclasses.replace(h, alpha=r.uniform(0.1, 0.8, 20), beta=r.uniform(0.8, 0.97, 20))
    net = net.replace(populations=(ns.Population("h", 20, per), net.populations[1]))
    fixed = netx_quantize(net)
    assert np.ndim(fixed.population("h").du) == 1 and np.ndim(fixed.population("h").dv) == 1
    o = fixed.population("o")
    fixed = dataclasses.replace(fixed, populations=(fixed.populations[0], dataclasses.replace(
        o, vth=np.round(o.vth * r.uniform(0.6, 1.0, o.size)).astype(np.int64))))
    path = tmp_path / "net.h5"
    to_netx(fixed, path)
    back = read_netx_fixed(path, net.dt)
    for a, b in zip(fixed.populations, back.populations):
        for k in ("du", "dv", "vth"):
            np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    x = np.random.default_rng(10).random((100, 10)) < 0.25
    spec = {"h": ["u_int", "v_int"], "o": ["u_int", "v_int"]}
    want = simulate_fixed(fixed, {"in": x}, 100, traces=spec)
    got = run_netx(path, {"in": x}, 100, traces=True)
    for k in ("h", "o"):
        assert len(want.spikes[k]) > 30
        np.testing.assert_array_equal(got.spikes[k].dense(), want.spikes[k].dense())
        for var in ("u_int", "v_int"):
            np.testing.assert_array_equal(got.traces[k][var], want.traces[k][var])

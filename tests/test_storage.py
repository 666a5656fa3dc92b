"""HDF5 storage: exact round trips of networks and results, refusal of malformed files, atomic writes."""
from __future__ import annotations

import os
import stat

import h5py
import numpy as np
import pytest
from helpers import random_inputs, random_network

import neurosim as ns
from neurosim import storage


# ------------------------------------------------------------------------------------ helpers
def every_feature_network() -> ns.Network:
    """Every model, per-neuron and scalar params, initial state, both inputs, dense and CSR,
    scalar and per-synapse delays, a recurrent projection; names not in alphabetical order."""
    r = np.random.default_rng(7)
    pops = [
        ns.Population("zeta", 20, ns.ALIF(beta=r.uniform(0.8, 1.0, 20), rho=0.95, adapt=r.uniform(0, 1, 20),
                                          alpha=0.3, refractory=r.integers(0, 3, 20), reset="zero"),
                      v0=r.uniform(0, 1, 20), i0=r.normal(0, 0.1, 20), a0=r.uniform(0, 0.5, 20)),
        ns.Population("alpha", 15, ns.LIF(beta=0.9, alpha=r.uniform(0, 0.5, 15), theta=r.uniform(0.5, 1.5, 15),
                                          bias=0.01, refractory=2), v0=0.25),
        ns.Population("mid", 8, ns.IF(theta=1.2, gain=r.uniform(0.5, 1.5, 8), reset="zero")),
        ns.Population("readout", 3, ns.LI(beta=r.uniform(0.8, 1.0, 3), alpha=0.2, bias=-0.01)),
    ]
    rec = r.normal(0, 0.6, (20, 20)) * (r.random((20, 20)) < 0.2)
    csr = ns.CSR.from_dense(r.normal(0.2, 0.5, (8, 15)) * (r.random((8, 15)) < 0.5))
    projs = [
        ns.Projection("x_zeta", "x", "zeta", r.normal(0.6, 0.4, (12, 20)), delay=r.integers(1, 5, (12, 20))),
        ns.Projection("zeta_zeta", "zeta", "zeta", ns.CSR.from_dense(rec), delay=2),
        ns.Projection("poi_alpha", "poi", "alpha", r.normal(0.4, 0.2, (6, 15)), delay=3),
        ns.Projection("zeta_alpha", "zeta", "alpha", r.normal(0.2, 0.5, (20, 15))),
        ns.Projection("alpha_mid", "alpha", "mid", r.normal(0.3, 0.4, (15, 8))),
        ns.Projection("mid_alpha", "mid", "alpha", csr, delay=r.integers(1, 4, csr.nnz)),
        ns.Projection("alpha_readout", "alpha", "readout", r.normal(0, 1, (15, 3))),
    ]
    inputs = [ns.SpikeInput("x", 12), ns.PoissonInput("poi", 6, rate=r.uniform(20, 200, 6))]
    return ns.Network(dt=5e-4, populations=pops, projections=projs, inputs=inputs, name="every feature ✓")


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_identical(a: ns.Network, b: ns.Network) -> None:
    assert (b.dt, b.name) == (a.dt, a.name)
    assert [p.name for p in b.populations] == [p.name for p in a.populations]
    for p, q in zip(a.populations, b.populations):
        assert type(q.model) is type(p.model) and q.size == p.size
        assert getattr(q.model, "reset", None) == getattr(p.model, "reset", None)
        assert q.model.param_names() == p.model.param_names()
        mp, mq = p.model.per_neuron(p.size), q.model.per_neuron(q.size)
        assert all(same_bits(mp[k], mq[k]) for k in mp)
        assert all(same_bits(x, y) for x, y in zip(p.params, q.params))
        assert all(same_bits(getattr(p, k), getattr(q, k)) for k in ("v0", "i0", "a0"))
    assert [(type(s), s.name, s.size) for s in b.inputs] == [(type(s), s.name, s.size) for s in a.inputs]
    for s, t in zip(a.inputs, b.inputs):
        if isinstance(s, ns.PoissonInput):
            assert same_bits(s.rate, t.rate)
    assert [(j.name, j.pre, j.post, j.is_sparse) for j in b.projections] == \
        [(j.name, j.pre, j.post, j.is_sparse) for j in a.projections]
    for j, k in zip(a.projections, b.projections):
        if j.is_sparse:
            assert k.weights.shape == j.weights.shape
            assert all(same_bits(getattr(j.weights, f), getattr(k.weights, f)) for f in ("indptr", "indices", "values"))
        else:
            assert same_bits(j.weights, k.weights)
        if np.ndim(j.delay) == 0:
            assert type(k.delay) is int and k.delay == j.delay
        else:
            assert same_bits(j.delay, k.delay)


def assert_same_spikes(r1: ns.SimulationResult, r2: ns.SimulationResult) -> None:
    assert list(r1.spikes) == list(r2.spikes)
    for name in r1.spikes:
        a, b = r1.spikes[name], r2.spikes[name]
        assert all(same_bits(getattr(a, f), getattr(b, f)) for f in ("step", "batch", "index"))
        assert (a.size, a.n_steps, a.n_batch) == (b.size, b.n_steps, b.n_batch)


# --------------------------------------------------------------------------------- round trips
def test_every_feature_round_trips_exactly_and_simulates_identically(tmp_path):
    net = every_feature_network()
    path = tmp_path / "net.h5"
    ns.save(net, path)
    back = ns.load(str(path))
    assert_identical(net, back)
    assert back.summary() == net.summary()
    spikes = np.random.default_rng(3).random((300, 2, 12)) < 0.15
    kw = dict(inputs={"x": spikes}, steps=300, seed=11, traces={"zeta": ["v", "a"], "readout": ["v"]})
    r1, r2 = ns.simulate(net, **kw), ns.simulate(back, **kw)
    assert sum(len(s) for s in r1.spikes.values()) > 100  # the comparison is not vacuous
    assert_same_spikes(r1, r2)
    for pop in r1.traces:
        assert all(same_bits(r1.traces[pop][v], r2.traces[pop][v]) for v in r1.traces[pop])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_networks_round_trip(tmp_path, seed):
    net = random_network(seed)
    ns.save(net, tmp_path / "n.h5")
    back = ns.load(tmp_path / "n.h5")
    assert_identical(net, back)
    kw = dict(inputs=random_inputs(seed, 120, 2), steps=120, seed=seed)
    assert_same_spikes(ns.simulate(net, **kw), ns.simulate(back, **kw))


def test_file_layout_is_the_documented_one(tmp_path):
    net = every_feature_network()
    ns.save(net, tmp_path / "n.h5")
    def text(obj, key):  # strings are fixed-length UTF-8, kept out of HDF5's global heap
        assert h5py.check_string_dtype(obj.attrs.get_id(key).dtype).length is not None
        return obj.attrs[key].decode("utf-8")

    with h5py.File(tmp_path / "n.h5", "r") as f:
        assert text(f, "format") == "neurosim.network" and f.attrs["schema_version"] == 2
        assert text(f, "neurosim_version") == ns.__version__ and f.attrs["dt"] == 5e-4
        assert text(f, "name") == "every feature ✓"
        z = f["populations/zeta"]
        assert (text(z, "model"), text(z, "reset"), z.attrs["size"], z.attrs["order"]) == ("alif", "zero", 20, 0)
        assert "reset" not in f["populations/readout"].attrs
        assert f["populations/alpha"].attrs["order"] == 1
        assert f["populations/alpha/alpha"].shape == (15,) and f["populations/alpha/alpha"].dtype == np.float64
        assert f["populations/alpha/beta"].shape == () and f["populations/alpha/beta"][()] == 0.9  # one for all
        assert f["populations/alpha/v0"].shape == () and f["populations/alpha/v0"][()] == 0.25
        assert set(f["populations/readout"]) == {"beta", "alpha", "bias", "gain", "v0", "i0", "a0"}
        assert text(f["inputs/x"], "kind") == "spikes" and len(f["inputs/x"]) == 0
        assert text(f["inputs/poi"], "kind") == "poisson" and f["inputs/poi/rate"].shape == (6,)
        assert "shape" not in z.attrs and "shape" not in f["inputs/x"].attrs  # flat nodes
        c = f["projections/mid_alpha"]
        assert text(c, "format") == "csr" and list(c.attrs["shape"]) == [8, 15]
        assert (text(c, "pre"), text(c, "post")) == ("mid", "alpha")
        assert c["indptr"].dtype == np.int64 and c["indices"].dtype == np.int64 and c["values"].dtype == np.float64
        assert c["delay"].shape == c["indices"].shape and c["delay"].dtype == np.int64
        d = f["projections/zeta_zeta"]
        assert text(d, "format") == "csr" and d["delay"].shape == () and d["delay"][()] == 2
        assert text(f["projections/x_zeta"], "format") == "dense"
        assert f["projections/x_zeta/weights"].shape == (12, 20)


def test_result_round_trips(tmp_path):
    net = random_network(4)
    res = ns.simulate(net, random_inputs(4, 80, 3), 80, seed=9, traces={"lif": ["i", "v"], "alif": ["a"]})
    ns.save_result(res, tmp_path / "r.h5")
    back = ns.load_result(tmp_path / "r.h5")
    assert_same_spikes(res, back)
    assert list(back.traces) == ["alif", "lif"] and list(back.traces["lif"]) == ["i", "v"]
    for pop in res.traces:
        assert all(same_bits(res.traces[pop][v], back.traces[pop][v]) for v in res.traces[pop])
    assert back.timings == res.timings and list(back.timings) == list(res.timings)
    assert (back.backend, back.dtype, back.dt, back.steps, back.batch, back.seed) == \
        (res.backend, res.dtype, res.dt, res.steps, res.batch, res.seed)
    assert back.meta == res.meta and back.meta["populations"] == ["alif", "lif", "if", "out"]
    assert sum(len(back.spikes[p]) for p in back.meta["populations"]) > 0
    assert back.rates_hz() == res.rates_hz()


def test_float32_result_keeps_its_trace_dtype(tmp_path):
    res = ns.simulate(random_network(5), random_inputs(5, 30, 1), 30, dtype="float32", traces=["lif:v"])
    ns.save_result(res, tmp_path / "r.h5")
    back = ns.load_result(tmp_path / "r.h5")
    assert back.dtype == "float32" and back.traces["lif"]["v"].dtype == np.float32
    assert same_bits(back.traces["lif"]["v"], res.traces["lif"]["v"])


# ----------------------------------------------------------------------------- malformed files
@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "good.h5"
    ns.save(every_feature_network(), path)
    return path


def expect_error(path, field, *words, reader=ns.load):
    with pytest.raises(ns.FileFormatError) as exc:
        reader(path)
    msg = str(exc.value)
    assert str(path) in msg and exc.value.path == str(path)
    assert exc.value.field == field, msg
    for w in words:
        assert w in msg, msg
    e = exc.value  # no raw h5py/KeyError traceback chained underneath
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)
    return msg


def replace(group, name, data, **kw):
    """Replace dataset `name` by `data`, keeping its attributes."""
    attrs = dict(group[name].attrs) if isinstance(group.get(name), h5py.Dataset) else {}
    del group[name]
    group.create_dataset(name, data=data, **kw).attrs.update(attrs)


MUTATIONS = {
    "wrong format": (lambda f: f.attrs.__setitem__("format", "neurosim.result"), "@format", "neurosim.load_result"),
    "no format": (lambda f: f.attrs.__delitem__("format"), "@format", "missing attribute"),
    "future schema": (lambda f: f.attrs.__setitem__("schema_version", 3), "@schema_version", "newer neurosim"),
    "schema zero": (lambda f: f.attrs.__setitem__("schema_version", 0), "@schema_version", "expected 1 to 2, got 0"),
    "schema as text": (lambda f: f.attrs.__setitem__("schema_version", "1"), "@schema_version",
                       "expected the integer 2"),
    "dt as text": (lambda f: f.attrs.__setitem__("dt", "fast"), "@dt", "expected a real number"),
    "dt zero": (lambda f: f.attrs.__setitem__("dt", 0.0), "@dt", "expected a finite time step > 0"),
    "no populations": (lambda f: f.__delitem__("populations"), "populations", "missing; expected a group"),
    "populations is a dataset": (lambda f: replace(f, "populations", [1, 2]), "populations", "expected a group"),
    "missing weights": (lambda f: f["projections/x_zeta"].__delitem__("weights"), "projections/x_zeta/weights",
                        "missing; expected a dataset of real numbers"),
    "missing size": (lambda f: f["populations/mid"].attrs.__delitem__("size"), "populations/mid@size",
                     "missing attribute"),
    "nan weight": (lambda f: f["projections/x_zeta/weights"].__setitem__((0, 0), np.nan),
                   "projections/x_zeta/weights", "expected finite values"),
    "nan csr value": (lambda f: f["projections/mid_alpha/values"].__setitem__(0, np.nan),
                      "projections/mid_alpha/values", "expected finite values"),
    "negative delay": (lambda f: replace(f["projections/zeta_zeta"], "delay", np.int64(-1)),
                       "projections/zeta_zeta/delay", "expected delays >= 1"),
    "zero per-synapse delay": (lambda f: f["projections/x_zeta/delay"].__setitem__((1, 1), 0),
                               "projections/x_zeta/delay", "expected delays >= 1"),
    "float delay": (lambda f: replace(f["projections/zeta_zeta"], "delay", 2.0), "projections/zeta_zeta/delay",
                    "expected integers"),
    "weights as strings": (lambda f: replace(f["projections/alpha_mid"], "weights", np.full((15, 8), b"0.5")),
                           "projections/alpha_mid/weights", "expected real numbers"),
    "complex weights": (lambda f: replace(f["projections/alpha_mid"], "weights", np.ones((15, 8), complex)),
                        "projections/alpha_mid/weights", "expected real numbers"),
    "wrong weight shape": (lambda f: replace(f["projections/alpha_mid"], "weights", np.ones((15, 9))),
                           "projections/alpha_mid/weights", "expected shape (15, 8)"),
    "wrong csr shape attr": (lambda f: f["projections/mid_alpha"].attrs.__setitem__("shape", np.array([8, 16])),
                             "projections/mid_alpha@shape", "expected two whole numbers (8, 15)"),
    "csr index out of range": (lambda f: f["projections/mid_alpha/indices"].__setitem__(0, 15),
                               "projections/mid_alpha/indices", "expected column indices in [0, 15)"),
    "csr indptr decreasing": (lambda f: f["projections/mid_alpha/indptr"].__setitem__(1, 10**6),
                              "projections/mid_alpha/indptr", "non-decreasing"),
    "unknown model": (lambda f: f["populations/mid"].attrs.__setitem__("model", "hodgkin_huxley"),
                      "populations/mid@model", "expected one of"),
    "model as number": (lambda f: f["populations/mid"].attrs.__setitem__("model", 3), "populations/mid@model",
                        "expected one of"),
    "unknown reset": (lambda f: f["populations/mid"].attrs.__setitem__("reset", "half"), "populations/mid@reset",
                      "'subtract'"),
    "absurd size": (lambda f: f["populations/mid"].attrs.__setitem__("size", 10**12), "populations/mid@size",
                    "expected a whole number in [1, 2147483647]"),
    "size disagrees with data": (lambda f: f["populations/mid"].attrs.__setitem__("size", 9), "populations/mid/gain",
                                 "expected shape (9,) or a scalar"),
    "decay above one": (lambda f: f["populations/zeta/beta"].__setitem__(3, 1.5), "populations/zeta/beta",
                        "a decay must lie in [0, 1]"),
    "scalar decay above one": (lambda f: replace(f["populations/alpha"], "beta", 1.5), "populations/alpha/beta",
                               "a decay must lie in [0, 1]"),
    "fractional refractory": (lambda f: f["populations/zeta/refractory"].__setitem__(0, 0.5),
                              "populations/zeta/refractory", "whole number of steps"),
    "per-channel form on a flat node": (lambda f: replace(f["populations/zeta"], "beta", np.full(2, 0.5)),
                                        "populations/zeta/beta", "expected shape (20,) or a scalar"),
    "missing parameter": (lambda f: f["populations/zeta"].__delitem__("rho"), "populations/zeta/rho",
                          "missing; expected a dataset of real numbers"),
    "unexpected dataset": (lambda f: f["populations/mid"].create_dataset("tau", data=np.ones(8)),
                           "populations/mid/tau", "unexpected member"),
    "bad v0": (lambda f: f["populations/zeta/v0"].__setitem__(0, np.inf), "populations/zeta/v0", "finite"),
    "bad scalar v0": (lambda f: replace(f["populations/mid"], "v0", np.inf), "populations/mid/v0", "finite"),
    "unknown pre": (lambda f: f["projections/alpha_mid"].attrs.__setitem__("pre", "nobody"),
                    "projections/alpha_mid@pre", "expected the name of a population or input"),
    "post is an input": (lambda f: f["projections/alpha_mid"].attrs.__setitem__("post", "x"),
                         "projections/alpha_mid@post", "expected the name of a population"),
    "pre is a readout": (lambda f: f["projections/alpha_mid"].attrs.__setitem__("pre", "readout")
                         or replace(f["projections/alpha_mid"], "weights", np.ones((3, 8)))
                         or replace(f["projections/alpha_mid"], "delay", np.int64(1)),
                         "projections/alpha_mid@pre", "never spikes"),
    "unknown input kind": (lambda f: f["inputs/x"].attrs.__setitem__("kind", "video"), "inputs/x@kind", "'poisson'"),
    "poisson rate too high": (lambda f: f["inputs/poi/rate"].__setitem__(0, 5000.0), "inputs/poi/rate",
                              "rate * dt must be <= 1"),
    "duplicate order": (lambda f: f["populations/mid"].attrs.__setitem__("order", 0), "populations/zeta@order",
                        "unique position"),
    "order out of range": (lambda f: f["projections/alpha_mid"].attrs.__setitem__("order", 99),
                           "projections/alpha_mid@order", "expected a whole number in [0, 6]"),
    "soft link": (lambda f: f["projections/alpha_mid"].__delitem__("weights")
                  or f["projections/alpha_mid"].__setitem__("weights", h5py.SoftLink("/populations/mid/theta")),
                  "projections/alpha_mid/weights", "found SoftLink"),
    "external link": (lambda f: f["projections/alpha_mid"].__delitem__("weights")
                      or f["projections/alpha_mid"].__setitem__("weights", h5py.ExternalLink("other.h5", "/w")),
                      "projections/alpha_mid/weights", "found ExternalLink"),
    "bad name": (lambda f: f["populations"].move("mid", "m i d"), "populations/m i d", "expected a name"),
    "input shares a population name": (lambda f: f["inputs"].move("x", "mid")
                                       or f["projections/x_zeta"].attrs.__setitem__("pre", "mid"),
                                       "inputs/mid", "name already used by a population"),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_malformed_network_file_names_file_and_field(saved, case):
    mutate, field, words = MUTATIONS[case][0], MUTATIONS[case][1], MUTATIONS[case][2:]
    with h5py.File(saved, "r+") as f:
        mutate(f)
    expect_error(saved, field, *words)


def test_unallocated_giant_dataset_is_refused_before_allocation(saved):
    """A chunked dataset may claim 8 GB while the file holds none of it: refuse, do not read."""
    with h5py.File(saved, "r+") as f:
        g = f["inputs/poi"]
        g.attrs.__setitem__("size", 10**9)
        del g["rate"]
        g.create_dataset("rate", shape=(10**9,), dtype=np.float64, chunks=(1 << 16,))
    assert os.path.getsize(saved) < 10**6
    expect_error(saved, "inputs/poi/rate", "8000000000 bytes", "stores only 0 bytes")


def test_truncated_file(saved, tmp_path):
    data = saved.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    expect_error(cut, "", "cannot be opened as HDF5", "expected an intact HDF5 file")


@pytest.mark.parametrize("content", [b"", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8))],
                         ids=["empty", "random"])
def test_not_hdf5(tmp_path, content):
    path = tmp_path / "junk.h5"
    path.write_bytes(content)
    expect_error(path, "", "cannot be opened as HDF5")


def test_missing_file_and_directory(tmp_path):
    expect_error(tmp_path / "nope.h5", "", "no such file")
    expect_error(tmp_path, "", "is a directory; expected an HDF5 file written by neurosim")
    os.mkfifo(tmp_path / "pipe.h5")
    expect_error(tmp_path / "pipe.h5", "", "not a regular file")


def test_other_hdf5_file(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.arange(3))
    expect_error(path, "@format", "missing attribute", "'neurosim.network'")


def test_result_file_is_not_a_network_and_vice_versa(tmp_path, saved):
    res = ns.simulate(random_network(0), random_inputs(0, 10, 1), 10)
    ns.save_result(res, tmp_path / "r.h5")
    expect_error(tmp_path / "r.h5", "@format", "neurosim.load_result")
    expect_error(saved, "@format", "neurosim.load", reader=ns.load_result)


# --------------------------------------------------------------------------- malformed results
@pytest.fixture
def saved_result(tmp_path):
    res = ns.simulate(random_network(1), random_inputs(1, 50, 2), 50, seed=2, traces=["lif:v"])
    assert len(res.spikes["lif"]) > 2
    path = tmp_path / "res.h5"
    ns.save_result(res, path)
    return path


RESULT_MUTATIONS = {
    "index out of range": (lambda f: f["spikes/lif/index"].__setitem__(0, 10**6), "spikes/lif/index",
                           "expected values in [0,"),
    "step out of range": (lambda f: f["spikes/lif/step"].__setitem__(-1, 50), "spikes/lif/step",
                          "expected values in [0, 50)"),
    "negative batch": (lambda f: f["spikes/lif/batch"].__setitem__(0, -1), "spikes/lif/batch", "[0, 2)"),
    "lengths differ": (lambda f: replace(f["spikes/lif"], "index", np.zeros(1, np.int32)), "spikes/lif/index",
                       "expected shape"),
    "unsorted": (lambda f: replace(f["spikes/lif"], "step", f["spikes/lif/step"][()][::-1].copy()),
                 "spikes/lif/step", "sorted by (step, batch, index)"),
    "float steps": (lambda f: replace(f["spikes/lif"], "step", f["spikes/lif/step"][()].astype(float)),
                    "spikes/lif/step", "expected integers"),
    "trace shape": (lambda f: replace(f["traces/lif"], "v", np.zeros((50, 2, 3))), "traces/lif/v",
                    "(steps, batch, size)"),
    "trace as ints": (lambda f: replace(f["traces/lif"], "v", np.zeros((50, 2, 3), int)), "traces/lif/v",
                      "floating-point"),
    "meta not json": (lambda f: f.attrs.__setitem__("meta", "{populations"), "@meta", "JSON object"),
    "meta names unknown population": (lambda f: f.attrs.__setitem__("meta", '{"populations": ["ghost"]}'), "@meta",
                                      "'populations'"),
    "timing as text": (lambda f: f["timings"].attrs.__setitem__("run", "fast"), "timings@run", "real number"),
    "steps absurd": (lambda f: f.attrs.__setitem__("steps", -5), "@steps", "expected a whole number"),
    "no spikes group": (lambda f: f.__delitem__("spikes"), "spikes", "missing; expected a group"),
    "spike size missing": (lambda f: f["spikes/lif"].attrs.__delitem__("size"), "spikes/lif@size", "missing"),
}


@pytest.mark.parametrize("case", sorted(RESULT_MUTATIONS))
def test_malformed_result_file_names_file_and_field(saved_result, case):
    mutate, field, words = RESULT_MUTATIONS[case][0], RESULT_MUTATIONS[case][1], RESULT_MUTATIONS[case][2:]
    with h5py.File(saved_result, "r+") as f:
        mutate(f)
    expect_error(saved_result, field, *words, reader=ns.load_result)


# ------------------------------------------------------------------------------- atomic writes
def test_failed_save_leaves_old_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / "net.h5"
    old = random_network(0)
    ns.save(old, path)
    before = path.read_bytes()
    calls = []

    def broken(parent, proj, order):  # writes two projections, then fails midway
        calls.append(proj.name)
        if len(calls) > 2:
            raise RuntimeError("disk on fire")
        real(parent, proj, order)

    real = storage._write_projection
    monkeypatch.setattr(storage, "_write_projection", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        ns.save(every_feature_network(), path)
    assert len(calls) == 3
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.h5"]  # no *.tmp left behind
    assert_identical(old, ns.load(path))

    fresh = tmp_path / "fresh.h5"
    with pytest.raises(RuntimeError):
        ns.save(every_feature_network(), fresh)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.h5"]


def test_failed_result_save_leaves_nothing(tmp_path):
    res = ns.simulate(random_network(0), random_inputs(0, 10, 1), 10)
    res.meta["bad"] = object()  # not JSON-serialisable
    with pytest.raises(TypeError, match="meta"):
        ns.save_result(res, tmp_path / "r.h5")
    assert list(tmp_path.iterdir()) == []


def test_save_replaces_existing_file_and_keeps_usual_permissions(tmp_path):
    path = tmp_path / "net.h5"
    ns.save(random_network(0), path)
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    path.chmod(0o640)
    ns.save(every_feature_network(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert_identical(every_feature_network(), ns.load(path))


def test_save_rejects_non_networks(tmp_path):
    with pytest.raises(ns.NetworkError, match="network"):
        ns.save("not a network", tmp_path / "x.h5")
    with pytest.raises(TypeError, match="SimulationResult"):
        ns.save_result(every_feature_network(), tmp_path / "x.h5")
    assert list(tmp_path.iterdir()) == []

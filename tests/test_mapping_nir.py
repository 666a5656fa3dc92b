"""NIR export and import: exact round trips, peers' graphs in neurosim, our graphs in the peers,
refusals.

Conventions the peer comparisons state and apply (see mapping/nir_graph/__init__.py's docstring):
- every NIR Linear/Affine path is a neurosim projection with one step of latency, while snnTorch
  and Norse run a feed-forward chain within one step: a peer's layer L emits at step t what
  neurosim's emits at t + L (recurrent edges take one step in both);
- snnTorch writes dt = 1e-4, Euler (beta = 1 - dt/tau); Norse 1.1's ``to_nir`` writes
  ``tau = dt/tau_inv`` (dt*tau, not tau), so its graphs read back exactly with dt = dt_norse**2;
- peers run in float64 (see tests/nir_peers.py); parameters they round to float32 on import are
  chosen so that float32 holds them exactly.
"""
from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest
from helpers import random_inputs, random_network

import neurosim as ns
from neurosim.errors import ExportError, FileFormatError

nir = pytest.importorskip("nir")
from mapping.nir_graph import ALIF_TYPE, ALIFNode, from_nir, read_nir, to_nir, write_nir  # noqa: E402

# ------------------------------------------------------------------------------------ helpers
def assert_same_network(a: ns.Network, b: ns.Network) -> None:
    """Same dt, names and order, models, lowered parameters, initial state, synapses and delays
    (bit for bit)."""
    assert (a.dt, a.name) == (b.dt, b.name)
    assert [(type(s), s.name, s.size) for s in a.inputs] == [(type(s), s.name, s.size) for s in b.inputs]
    for s, t in zip(a.inputs, b.inputs):
        if isinstance(s, ns.PoissonInput):
            np.testing.assert_array_equal(s.rate, t.rate)
    assert [(p.name, p.size, type(p.model)) for p in a.populations] == \
        [(p.name, p.size, type(p.model)) for p in b.populations]
    for p, q in zip(a.populations, b.populations):
        assert getattr(p.model, "reset", None) == getattr(q.model, "reset", None), p.name
        for field, x, y in zip(p.params._fields, p.params, q.params):
            np.testing.assert_array_equal(x, y, err_msg=f"{p.name}.{field}")
        for init in ("v0", "i0", "a0"):
            np.testing.assert_array_equal(getattr(p, init), getattr(q, init), err_msg=f"{p.name}.{init}")
    assert [(j.name, j.pre, j.post, j.is_sparse) for j in a.projections] == \
        [(j.name, j.pre, j.post, j.is_sparse) for j in b.projections]
    for j, k in zip(a.projections, b.projections):
        (cj, dj), (ck, dk) = j.to_csr(), k.to_csr()
        np.testing.assert_array_equal(cj.to_dense(), ck.to_dense(), err_msg=j.name)
        wj, wk = np.zeros(cj.shape, np.int64), np.zeros(ck.shape, np.int64)
        wj[np.repeat(np.arange(cj.shape[0]), np.diff(cj.indptr)), cj.indices] = dj
        wk[np.repeat(np.arange(ck.shape[0]), np.diff(ck.indptr)), ck.indices] = dk
        np.testing.assert_array_equal(wj, wk, err_msg=f"{j.name}.delay")


def assert_same_spikes(a: ns.Network, b: ns.Network, inputs: dict, steps: int, batch: int) -> int:
    ra = ns.simulate(a, inputs, steps, batch=batch, seed=3)
    rb = ns.simulate(b, inputs, steps, batch=batch, seed=3)
    for name, s in ra.spikes.items():
        np.testing.assert_array_equal(s.dense(), rb.spikes[name].dense(), err_msg=name)
    return ra.n_spikes()


def every_nir_form(dt: float = 1e-3) -> ns.Network:
    """One population per NIR node form: LIF, CubaLIF (alpha = 0 mixed in), IF (model LIF with
    beta = 1 and model IF), LI, CubaLI, I, neurosim.ALIF; a bias without incoming projections
    (v_leak), biases on Affine nodes, refractoriness, both resets, initial state, recurrence,
    dense and CSR per-synapse delays, a Poisson input; names not in alphabetical order."""
    r = np.random.default_rng(11)
    pops = [
        ns.Population("pace", 6, ns.LIF(beta=r.uniform(0.8, 0.95, 6), bias=r.uniform(0.05, 0.2, 6),
                                        gain=r.uniform(0.5, 2, 6), refractory=r.integers(0, 3, 6))),
        ns.Population("cuba", 15, ns.LIF(beta=r.uniform(0.6, 0.95, 15), alpha=np.r_[0, 0, r.uniform(0.1, 0.8, 13)],
                                         gain=r.uniform(0.5, 1.5, 15), theta=r.uniform(0.5, 1.5, 15),
                                         bias=0.02, reset="zero"), v0=r.uniform(0, 0.5, 15), i0=0.1),
        ns.Population("nolk", 7, ns.LIF(beta=1.0, theta=1.3, refractory=1)),
        ns.Population("integ", 5, ns.IF(theta=r.uniform(0.8, 1.2, 5), gain=r.uniform(0.5, 1.5, 5),
                                        bias=-0.01, reset="zero")),
        ns.Population("adapt", 12, ns.ALIF(beta=r.uniform(0.8, 0.99, 12), rho=0.97, adapt=r.uniform(0.5, 2, 12),
                                           alpha=0.3, adapt_gain=0.05, refractory=2), a0=r.uniform(0, 0.2, 12)),
        ns.Population("read", 3, ns.LI(beta=r.uniform(0.8, 0.95, 3), bias=0.01)),
        ns.Population("readc", 3, ns.LI(beta=0.9, alpha=r.uniform(0.2, 0.6, 3))),
        ns.Population("count", 2, ns.LI(beta=1.0, gain=0.5)),
    ]
    sz = {p.name: p.size for p in pops} | {"in": 9, "poi": 4}

    def w(pre: str, post: str, mean: float = 0.3, density: float = 0.6) -> np.ndarray:
        return r.normal(mean, 0.4, (sz[pre], sz[post])) * (r.random((sz[pre], sz[post])) < density)

    csr = ns.CSR.from_dense(w("cuba", "adapt"))
    projs = [
        ns.Projection("in_cuba", "in", "cuba", w("in", "cuba", 0.5), delay=r.integers(1, 4, (9, 15))),
        ns.Projection("poi_cuba", "poi", "cuba", w("poi", "cuba"), delay=2),
        ns.Projection("pace_cuba", "pace", "cuba", w("pace", "cuba")),
        ns.Projection("cuba_cuba", "cuba", "cuba", ns.CSR.from_dense(w("cuba", "cuba", 0.0, 0.3))),
        ns.Projection("cuba_nolk", "cuba", "nolk", w("cuba", "nolk", 0.1)),
        ns.Projection("cuba_integ", "cuba", "integ", w("cuba", "integ", 0.2), delay=4),
        ns.Projection("cuba_adapt", "cuba", "adapt", csr, delay=r.integers(1, 5, csr.nnz)),
        ns.Projection("adapt_adapt", "adapt", "adapt", w("adapt", "adapt", 0.0, 0.3)),
        ns.Projection("integ_read", "integ", "read", w("integ", "read", 0.0, 1.0)),
        ns.Projection("adapt_readc", "adapt", "readc", w("adapt", "readc", 0.0, 1.0)),
        ns.Projection("nolk_count", "nolk", "count", w("nolk", "count", 0.5, 1.0), delay=3),
    ]
    return ns.Network(dt=dt, populations=pops, projections=projs, name="every-form",
                      inputs=[ns.SpikeInput("in", 9), ns.PoissonInput("poi", 4, rate=r.uniform(50, 300, 4))])


# ------------------------------------------------------------------------ our own round trips
@pytest.mark.parametrize("discretization", ["euler", "exact"])
@pytest.mark.parametrize("seed", [0, 1])
def test_round_trip_random_network_is_exact(tmp_path, seed, discretization):
    net = random_network(seed)  # ALIF, CubaLIF, IF, CubaLI, recurrent CSR, per-synapse delays, Poisson
    path = tmp_path / "net.nir"
    write_nir(net, path, discretization, extensions=True)
    back = read_nir(path, dt=net.dt, discretization=discretization)
    assert_same_network(net, back)
    n = assert_same_spikes(net, back, random_inputs(seed, 400, 3, 0.15), 400, 3)
    assert n > 2000
    print(f"round trip random_network({seed}) {discretization}", "spikes compared:", n)


def test_round_trip_every_node_form(tmp_path):
    net = every_nir_form()
    graph = to_nir(net, extensions=True)
    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    assert {k: kinds[k] for k in ("pace", "cuba", "nolk", "integ", "read", "readc", "count")} == {
        "pace": "LIF", "cuba": "CubaLIF", "nolk": "IF", "integ": "IF", "read": "LI", "readc": "CubaLI",
        "count": "I"}
    assert isinstance(graph.nodes["adapt"], ALIFNode) and graph.nodes["adapt"].to_dict()["type"] == ALIF_TYPE
    assert kinds["in_cuba_d2"] == "Linear" and kinds["in_cuba_delay_d2"] == "Delay"
    np.testing.assert_allclose(graph.nodes["in_cuba_delay_d3"].delay, 2 * net.dt)
    # the pace population has no incoming projection: its bias is NIR's v_leak = r * bias
    np.testing.assert_allclose(graph.nodes["pace"].v_leak, graph.nodes["pace"].r * net.population("pace").params.bias)
    # biases of the other populations sit on one Affine of their incoming projections
    assert kinds["integ_read"] == "Affine" and kinds["cuba_integ"] == "Affine"
    path = tmp_path / "every.nir"
    write_nir(net, path, extensions=True)
    back = read_nir(path, dt=net.dt)
    assert_same_network(net, back)
    inputs = {"in": np.random.default_rng(5).random((500, 2, 9)) < 0.1}
    n = assert_same_spikes(net, back, inputs, 500, 2)
    assert n > 2000
    print("round trip every node form", "spikes compared:", n)


def plain_network() -> ns.Network:
    """LIF, CubaLIF, IF, CubaLI with per-neuron parameters, a bias, a delay; nothing that needs
    neurosim metadata except the subtractive reset."""
    r = np.random.default_rng(2)
    return ns.Network(dt=5e-4, inputs=[ns.SpikeInput("in", 8)], populations=[
        ns.Population("a", 10, ns.LIF(beta=r.uniform(0.5, 0.99, 10), gain=r.uniform(0.5, 2, 10), bias=0.05)),
        ns.Population("b", 6, ns.LIF(beta=r.uniform(0.5, 0.99, 6), alpha=r.uniform(0.1, 0.9, 6),
                                     theta=r.uniform(0.5, 2, 6))),
        ns.Population("c", 4, ns.IF(gain=r.uniform(0.5, 1.5, 4))),
        ns.Population("d", 3, ns.LI(beta=0.95, alpha=0.5, gain=2.0))],
        projections=[ns.Projection("ia", "in", "a", r.normal(0.4, 0.3, (8, 10))),
                     ns.Projection("ab", "a", "b", r.normal(0.3, 0.3, (10, 6)), delay=3),
                     ns.Projection("bc", "b", "c", r.normal(0.4, 0.3, (6, 4))),
                     ns.Projection("cd", "c", "d", r.normal(0, 1, (4, 3)))])


def test_nir_read_of_our_file_gives_the_same_network(tmp_path):
    """Without the neurosim.ALIF extension our files are plain NIR: nir.read + from_nir is exact."""
    net = plain_network()
    write_nir(net, tmp_path / "plain.nir", extensions=True)
    assert_same_network(net, from_nir(nir.read(tmp_path / "plain.nir"), dt=net.dt))


@pytest.mark.parametrize("discretization", ["euler", "exact"])
def test_nir_fields_alone_carry_the_model(discretization):
    """Without any neurosim.* metadata the NIR fields give the same network up to float round-off
    (reset, refractoriness and initial state are what the metadata adds)."""
    net = plain_network()
    graph = to_nir(net, discretization, extensions=True)
    graph.metadata = {}
    for node in graph.nodes.values():
        node.metadata = {}
    back = from_nir(graph, dt=net.dt, discretization=discretization, reset="subtract")
    for p, q in zip(net.populations, back.populations):
        for field, x, y in zip(p.params._fields, p.params, q.params):
            np.testing.assert_allclose(y, x, rtol=1e-12, atol=1e-15, err_msg=f"{p.name}.{field}")
    # names come from the NIR nodes; the delay comes back from the Delay node
    assert [j.name for j in back.projections] == ["ia", "ab", "bc", "cd"] and back.projections[1].delay == 3
    n = assert_same_spikes(net, back, {"in": np.random.default_rng(3).random((400, 2, 8)) < 0.2}, 400, 2)
    assert n > 500


def test_discretisation_formulas():
    """Euler: our LIF and CubaLIF nodes are what snnTorch writes for Leaky/Synaptic at dt = 1e-4
    (tau = dt/(1 - beta), r = tau/dt, w_in = tau_syn/dt); exact: tau = -dt/ln(beta)."""
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from nir_peers import heaviside
    from snntorch.export_nir import export_to_nir

    r = np.random.default_rng(4)
    beta, alpha, beta2 = r.uniform(0.3, 0.99, 5), r.uniform(0.1, 0.9, 3), r.uniform(0.3, 0.99, 3)
    net = ns.Network(dt=1e-4, inputs=[ns.SpikeInput("in", 2)], populations=[
        ns.Population("l", 5, ns.LIF(beta=beta)), ns.Population("s", 3, ns.LIF(beta=beta2, alpha=alpha))],
        projections=[ns.Projection("a", "in", "l", np.ones((2, 5))), ns.Projection("b", "l", "s", np.ones((5, 3)))])
    ours = to_nir(net, extensions=True)
    tt = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    model = torch.nn.Sequential(torch.nn.Linear(2, 5, bias=False),
                                snn.Leaky(beta=tt(beta), threshold=tt(np.ones(5)), init_hidden=True,
                                          spike_grad=heaviside),
                                torch.nn.Linear(5, 3, bias=False),
                                snn.Synaptic(alpha=tt(alpha), beta=tt(beta2), threshold=tt(np.ones(3)),
                                             init_hidden=True, spike_grad=heaviside)).double()
    theirs = export_to_nir(model, torch.zeros(2, dtype=torch.float64))
    for a, b, fields in (("l", "1", ("tau", "r", "v_leak", "v_threshold", "v_reset")),
                         ("s", "3", ("tau_mem", "tau_syn", "r", "w_in", "v_leak", "v_threshold", "v_reset"))):
        assert type(ours.nodes[a]) is type(theirs.nodes[b])
        for f in fields:
            np.testing.assert_allclose(getattr(ours.nodes[a], f), np.asarray(getattr(theirs.nodes[b], f)),
                                       rtol=1e-14, err_msg=f"{a}.{f}")
    exact = to_nir(net, "exact", extensions=True)
    np.testing.assert_allclose(exact.nodes["l"].tau, -1e-4 / np.log(beta), rtol=1e-14)
    np.testing.assert_allclose(exact.nodes["l"].r * (1 - np.exp(-1e-4 / exact.nodes["l"].tau)), 1.0, rtol=1e-12)


def test_edited_file_is_refused_not_silently_overridden(tmp_path):
    net = every_nir_form()
    path = tmp_path / "edited.nir"
    write_nir(net, path, extensions=True)
    with h5py.File(path, "r+") as f:
        f["node/nodes/pace/tau"][0] *= 2
    with pytest.raises(ExportError, match=r"nodes\.pace\.metadata\.neurosim\.beta.*disagrees.*edited\.nir"):
        read_nir(path, dt=net.dt)
    # at another dt the file's delays and refractory periods (whole steps of its dt) would change:
    # refused, with the file's dt named
    with pytest.raises(ExportError, match=r"dt: the file was written by neurosim at dt = 0\.001 s.*import at dt = 0\.001"):
        read_nir(path, dt=net.dt / 2)


# --------------------------------------------------------------------------------- ALIF extension
def test_alif_extension_is_refused_by_strict_consumers(tmp_path):
    r = np.random.default_rng(0)
    net = ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", 3)], populations=[
        ns.Population("a", 4, ns.ALIF(beta=0.9, rho=0.95, adapt=1.0))],
        projections=[ns.Projection("w", "in", "a", r.normal(0, 1, (3, 4)))])
    path = tmp_path / "alif.nir"
    write_nir(net, path, extensions=True)
    with h5py.File(path) as f:
        assert f["node/nodes/a/type"][()].decode() == ALIF_TYPE
    with pytest.raises(AssertionError):  # nir's registry of node types: `assert type in __all_ir`
        nir.read(path)
    assert_same_network(net, read_nir(path, dt=1e-3))
    pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir

    with pytest.raises(ValueError, match="Unknown node type.*ALIFNode"):
        import_from_nir(to_nir(net, extensions=True))
    pytest.importorskip("norse")
    import norse.torch as norse

    # Norse 1.1 is not strict: its from_nir drops node types it does not know (the ALIF here)
    assert "a" not in dict(norse.from_nir(to_nir(net, extensions=True)).named_children())


# ---------------------------------------------------------------------------- sub-graphs
def test_subgraph_is_flattened():
    """A recurrent layer written as a NIR sub-graph (Input -> LIF <-> Linear, LIF -> Output) reads
    as the same network as the flat graph."""
    r = np.random.default_rng(8)
    w_in, w_rec, tau = r.normal(0.3, 0.4, (4, 3)), r.normal(0, 0.3, (4, 4)), r.uniform(2e-3, 1e-2, 4)
    lif = lambda: nir.LIF(tau=tau, r=tau / 1e-3, v_leak=np.zeros(4), v_threshold=np.ones(4))  # noqa: E731
    sub = nir.NIRGraph(nodes={"i": nir.Input(np.array([4])), "lif": lif(), "rec": nir.Linear(w_rec),
                              "o": nir.Output(np.array([4]))},
                       edges=[("i", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "o")], type_check=False)
    nested = nir.NIRGraph(nodes={"x": nir.Input(np.array([3])), "w": nir.Linear(w_in), "layer": sub,
                                 "y": nir.Output(np.array([4]))},
                          edges=[("x", "w"), ("w", "layer"), ("layer", "y")], type_check=False)
    flat = nir.NIRGraph(nodes={"x": nir.Input(np.array([3])), "w": nir.Linear(w_in), "lif": lif(),
                               "rec": nir.Linear(w_rec), "y": nir.Output(np.array([4]))},
                        edges=[("x", "w"), ("w", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "y")],
                        type_check=False)
    a, b = from_nir(nested, dt=1e-3, reset="subtract"), from_nir(flat, dt=1e-3, reset="subtract")
    assert [(j.pre, j.post) for j in a.projections] == [("x", "layer_lif"), ("layer_lif", "layer_lif")]
    np.testing.assert_array_equal(a.projections[0].weights, b.projections[0].weights)
    np.testing.assert_array_equal(a.projections[1].weights, w_rec.T)
    np.testing.assert_array_equal(a.populations[0].params.beta, b.populations[0].params.beta)
    x = r.random((200, 1, 3)) < 0.3
    za = ns.simulate(a, {"x": x}, 200).spikes["layer_lif"].dense()
    zb = ns.simulate(b, {"x": x}, 200).spikes["lif"].dense()
    np.testing.assert_array_equal(za, zb)
    assert za.sum() > 50


# ---------------------------------------------------------------------------------- bad input
def test_file_that_is_not_nir(tmp_path):
    text = tmp_path / "notes.nir"
    text.write_text("not an HDF5 file")
    with pytest.raises(FileFormatError, match="notes.nir.*not an HDF5 file"):
        read_nir(text, dt=1e-3)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(FileFormatError, match=r"other\.h5:node: no /node group"):
        read_nir(other, dt=1e-3)
    with pytest.raises(FileFormatError, match="missing.nir.*no such file"):
        from_nir(tmp_path / "missing.nir", dt=1e-3)


def _graph(*nodes_edges):
    nodes, edges = nodes_edges
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _lif(n: int, **kw):
    base = dict(tau=np.full(n, 1e-2), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n))
    base.update(kw)
    return nir.LIF(**base)


def test_unsupported_node_is_named(tmp_path):
    @dataclasses.dataclass(eq=False)
    class Spiky(nir.NIRNode):  # every node type of nir 1.0.8 is read; a tool's own one is not
        threshold: np.ndarray

    graph = _graph({"x": nir.Input(np.array([3])), "thr": Spiky(np.ones(3)), "y": nir.Output(np.array([3]))},
                   [("x", "thr"), ("thr", "y")])
    with pytest.raises(ExportError, match=r"nodes\.thr: unsupported node type 'Spiky'"):
        from_nir(graph, dt=1e-3)
    path = tmp_path / "foreign.nir"
    write_nir(ns.Network(dt=1e-3, inputs=[ns.SpikeInput("x", 2)], populations=[ns.Population("p", 2, ns.LIF())],
                         projections=[ns.Projection("w", "x", "p", np.eye(2))]), path, extensions=True)
    with h5py.File(path, "r+") as f:
        del f["node/nodes/p/type"]
        f["node/nodes/p"].create_dataset("type", data="Spiky", dtype=h5py.string_dtype())
    with pytest.raises(ExportError, match=r"nodes\.p: unsupported node type 'Spiky'.*foreign\.nir"):
        read_nir(path, dt=1e-3)


def test_shape_mismatches_are_named():
    bad_in = _graph({"x": nir.Input(np.array([5])), "w": nir.Linear(np.ones((4, 3))), "p": _lif(4)},
                    [("x", "w"), ("w", "p")])
    with pytest.raises(ExportError, match=r"nodes\.w: shape mismatch on edge x -> w: x gives 5 values, w \(Linear\) expects 3"):
        from_nir(bad_in, dt=1e-3, reset="subtract")
    bad_out = _graph({"x": nir.Input(np.array([3])), "w": nir.Linear(np.ones((4, 3))), "p": _lif(6)},
                     [("x", "w"), ("w", "p")])
    with pytest.raises(ExportError, match=r"nodes\.p: shape mismatch on edge w -> p: w gives 4 values, p \(LIF\) expects 6"):
        from_nir(bad_out, dt=1e-3, reset="subtract")
    bad_w = _graph({"x": nir.Input(np.array([3])), "w": nir.Linear(np.ones((2, 4, 3))), "p": _lif(4)},
                   [("x", "w"), ("w", "p")])
    with pytest.raises(ExportError, match=r"nodes\.w\.weight: expected a 2-D"):
        from_nir(bad_w, dt=1e-3, reset="subtract")


def test_what_neurosim_cannot_express_is_refused():
    def one(node, **kw):
        return from_nir(_graph({"x": nir.Input(np.array([2])), "w": nir.Linear(np.eye(2)), "p": node},
                               [("x", "w"), ("w", "p")]), dt=1e-3, **{"reset": "subtract", **kw})

    with pytest.raises(ExportError, match=r"nodes\.p\.v_reset: .*v_reset = -0\.5"):
        one(_lif(2, v_reset=np.full(2, -0.5)))
    cuba = dict(tau_syn=np.full(2, 5e-3), tau_mem=np.full(2, 1e-2), r=np.ones(2), v_threshold=np.ones(2))
    with pytest.raises(ExportError, match=r"nodes\.p\.v_leak"):
        one(nir.CubaLIF(v_leak=np.full(2, 0.1), **cuba))
    with pytest.raises(ExportError, match=r"nodes\.p\.tau: .*tau >= dt"):
        one(_lif(2, tau=np.full(2, 1e-4)))  # Euler needs tau >= dt
    with pytest.raises(ExportError, match=r"nodes\.d\.delay: expected whole multiples"):
        from_nir(_graph({"x": nir.Input(np.array([2])), "d": nir.Delay(np.full(2, 1.5e-3)),
                         "w": nir.Linear(np.eye(2)), "p": _lif(2)}, [("x", "d"), ("d", "w"), ("w", "p")]), dt=1e-3,
                 reset="subtract")
    with pytest.raises(ExportError, match=r"nodes\.a\.bias: the bias passes through Delay"):
        from_nir(_graph({"x": nir.Input(np.array([2])), "a": nir.Affine(np.eye(2), np.ones(2)),
                         "d": nir.Delay(np.full(2, 1e-3)), "p": _lif(2)}, [("x", "a"), ("a", "d"), ("d", "p")]),
                 dt=1e-3, reset="subtract")
    with pytest.raises(ExportError, match=r"nodes\.s: Scale feeds Output"):  # a readout is a weight node
        from_nir(_graph({"x": nir.Input(np.array([2])), "s": nir.Scale(np.ones(2)), "y": nir.Output(np.array([2]))},
                        [("x", "s"), ("s", "y")]), dt=1e-3)
    with pytest.raises(ExportError, match="reset: expected 'subtract', 'zero' or 'late_subtract'"):
        one(_lif(2), reset="none")
    # export side
    r = np.random.default_rng(0)
    with pytest.raises(ExportError, match=r"populations\.i\.model\.bias: .*IF and I nodes lack"):
        to_nir(ns.Network(dt=1e-3, populations=[ns.Population("i", 3, ns.IF(bias=0.1))]), extensions=True)
    with pytest.raises(ExportError, match=r"populations\.m\.model\.beta: beta = 1"):
        to_nir(ns.Network(dt=1e-3, inputs=[ns.SpikeInput("x", 2)],
                          populations=[ns.Population("m", 2, ns.LIF(beta=[1.0, 0.9]))],
                          projections=[ns.Projection("w", "x", "m", r.normal(size=(2, 2)))]), extensions=True)
    with pytest.raises(ExportError, match="discretization: expected 'euler' or 'exact'"):
        to_nir(random_network(0), "rk4", extensions=True)

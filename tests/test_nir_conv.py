"""NIR Conv1d, Conv2d, SumPool2d, AvgPool2d, Flatten and Threshold nodes in both directions
(issue 21, item 1).

References: neurosim's own float64 run before export (round trips), torch's conv2d on the same
spike frames (a hand-written NIR graph), the peers' own runs (tests/nir_peer_conv_cells.py).
Equality is the claim throughout, so every comparison is float64 and exact.
"""
from __future__ import annotations

import os

import nir
import numpy as np
import pytest

import neurosim as ns
from conv_nets import random_conv_network
from mapping.nir_graph import from_nir, read_nir, to_nir, write_nir
from neurosim.cli import main
from neurosim.errors import ExportError

T = 30


def _spikes_equal(a: ns.Network, b: ns.Network, seed: int) -> int:
    """Both networks on the same random input (float64, numpy): every population's spikes equal;
    returns the number of spikes (so that a silent network cannot pass unnoticed)."""
    x = (np.random.default_rng(seed).random((T, 1, a.inputs[0].size)) < 0.3).astype(np.float64)
    readouts = {p.name: ["v"] for p in a.populations if p.model.kind == "li"}
    ra = ns.simulate(a, {a.inputs[0].name: x}, T, backend="numpy", traces=readouts)
    rb = ns.simulate(b, {b.inputs[0].name: x}, T, backend="numpy", traces=readouts)
    total = 0
    for p in a.populations:
        np.testing.assert_array_equal(ra.spikes[p.name].dense(), rb.spikes[p.name].dense(), err_msg=p.name)
        total += int(ra.spikes[p.name].dense().sum())
    for name in readouts:  # a leaky readout never spikes: its membrane is the claim
        np.testing.assert_array_equal(ra.traces[name]["v"], rb.traces[name]["v"], err_msg=name)
    return total


def _records_equal(a: ns.Network, b: ns.Network) -> None:
    """Shaped projections come back as the same records (kind, kernel, geometry, delays)."""
    sa = {j.name: j for j in a.shaped}
    sb = {j.name: j for j in b.shaped}
    assert sorted(sa) == sorted(sb)
    for name, j in sa.items():
        k = sb[name]
        assert type(j) is type(k) and (j.pre, j.post) == (k.pre, k.post)
        for f in ("kernel", "stride", "padding", "dilation", "groups", "kernel_size", "delay", "in_shape"):
            if hasattr(j, f):
                np.testing.assert_array_equal(np.asarray(getattr(j, f)), np.asarray(getattr(k, f)), err_msg=f"{name}.{f}")
    for p in a.populations:
        assert b.population(p.name).shape == p.shape
        np.testing.assert_array_equal(b.population(p.name).params.bias, p.params.bias)
    assert [s.shape for s in a.inputs] == [s.shape for s in b.inputs]


@pytest.mark.parametrize("seed", range(6))
def test_round_trip_random_conv_networks_with_extensions(tmp_path, seed):
    """tests/conv_nets.random_conv_network (stride, padding, dilation, groups, per-tap delays,
    recurrent conv and CSR, pools, flatten, Conv1d): written for neurosim with extensions and read
    back, the same records and identical spikes."""
    net = random_conv_network(seed)
    path = str(tmp_path / "c.nir")
    write_nir(net, path, extensions=True)
    back = read_nir(path)
    _records_equal(net, back)
    assert _spikes_equal(net, back, seed) > 0


def _strict_net(seed: int, cuba: bool = True) -> ns.Network:
    """A conv network every strict target can hold: square kernels, reset to zero, per-channel
    conv biases, no dense projection into a shaped population; 2-D (conv, sum or average pool,
    conv with groups, flatten, dense) or 1-D (Conv1d, flatten, dense); alpha > 0 with `cuba`
    (target nir refuses it: its reference CubaLIF takes v from the previous current)."""
    r = np.random.default_rng(seed)
    one_d = seed % 3 == 2
    groups = int(r.integers(1, 3))
    cin, c1 = groups * int(r.integers(1, 3)), groups * int(r.integers(1, 3))
    k = int(r.integers(1, 4))
    s, p, d = int(r.integers(1, 3)), int(r.integers(0, 2)), int(r.integers(1, 3))
    spatial = (int(r.integers(14, 24)),) if one_d else (int(r.integers(7, 11)), int(r.integers(7, 11)))
    shape_in = (cin, *spatial)
    out = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n in spatial)
    cls = ns.Conv1d if one_d else ns.Conv2d
    kernel = r.normal(0.4, 0.6, (c1, cin // groups, *([k] * len(spatial))))
    l1 = (c1, *out)

    def lif(shape: tuple[int, ...], bias: bool = False) -> ns.LIF:
        n = int(np.prod(shape))
        b = ns.channel_bias(r.normal(0.02, 0.05, shape[0]), shape) if bias else 0.0
        return ns.LIF(beta=r.uniform(0.5, 0.95, n), alpha=r.uniform(0, 0.4) if cuba else 0.0, theta=r.uniform(0.7, 1.2, n),
                      reset="zero", bias=b)

    pops = [ns.Population("l1", l1, lif(l1, bias=True))]
    projs: list = [cls("c1", "in", "l1", kernel, s, p, d, groups, delay=int(r.integers(1, 3)))]
    last, last_shape = "l1", l1
    if not one_d and min(out) >= 2:
        pool = (ns.SumPool2d if seed % 2 else ns.AvgPool2d)("pool", "l1", "l2", 2, int(r.integers(1, 3)), 1 if seed % 4 == 1 else 0)
        l2 = tuple(pool.bind(l1, pool_out(l1, pool)).out_shape)
        pops.append(ns.Population("l2", l2, ns.IF(theta=0.6 if isinstance(pool, ns.AvgPool2d) else 1.5, reset="zero")))
        projs.append(pool)
        c2 = groups * 2
        pops.append(ns.Population("l3", (c2, l2[1], l2[2]), lif((c2, l2[1], l2[2]), bias=True)))
        projs.append(ns.Conv2d("c2", "l2", "l3", r.normal(0.3, 0.5, (c2, c1 // groups, 3, 3)), 1, 1, 1, groups))
        last, last_shape = "l3", (c2, l2[1], l2[2])
    n = int(np.prod(last_shape))
    pops += [ns.Population("f", n, lif((n,))), ns.Population("out", 4, lif((4,)))]
    projs += [ns.Flatten("fl", last, "f"), ns.Projection("fo", "f", "out", r.normal(0.1, 0.4, (n, 4)), delay=2)]
    return ns.Network(1e-3, pops, projs, [ns.SpikeInput("in", shape_in)], name=f"strict{seed}")


def pool_out(shape: tuple[int, ...], pool: ns.SumPool2d) -> tuple[int, ...]:
    """Pooling output shape (torch's formula)."""
    return (shape[0], *((n + 2 * p - k) // s + 1 for n, k, s, p in zip(shape[1:], pool.kernel_size, pool.stride,
                                                                          pool.padding)))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("target", ["neurosim", "nir"])
def test_strict_round_trip_passes_nir_read(tmp_path, seed, target):
    """Strict exports (no extensions) of random geometries pass nir.read, carry the shapes NIR
    writes (input_type/output_type, Conv2d input_shape), and read back spike-identical."""
    net = _strict_net(seed, cuba=target == "neurosim")
    path = str(tmp_path / "s.nir")
    write_nir(net, path, target=target)
    graph = nir.read(path)  # nir's own reader, type checks included
    conv = graph.nodes["c1"]
    assert tuple(conv.input_type["input"]) == net.inputs[0].shape
    assert tuple(graph.nodes["l1"].input_type["input"]) == net.population("l1").shape
    back = read_nir(path, convention="nir" if target == "nir" else None, dt=1e-3 if target == "nir" else None)
    if target == "neurosim":
        _records_equal(net, back)
    assert _spikes_equal(net, back, seed) > 0


@pytest.mark.parametrize("arch", ["conv(4,k=3,p=1,reset=zero,bias=1),pool(2,reset=zero),conv(6,k=3,g=2,reset=zero),"
                                  "flatten,dense(5,reset=zero)",
                                  "conv(4,k=5,p=2),pool(2,mode=avg),flatten,dense(10)"])
def test_layered_torch_model_round_trip(tmp_path, arch):
    """A training.layered model's network (conv with bias and groups, sum/avg pool, flatten,
    dense, LI readout): strict export where the resets allow it, else with extensions; the same
    records, spikes and readout membrane."""
    import torch
    from training.layered.convert import to_network
    from training.layered.model import LayeredSNN
    from training.layered.spec import finish, parse_arch

    torch.manual_seed(0)
    net = to_network(LayeredSNN(finish(parse_arch(arch)), (2, 12, 12)), 1e-3)
    path = str(tmp_path / "l.nir")
    write_nir(net, path, extensions="subtract" in {getattr(p.model, "reset", "") for p in net.populations})
    back = read_nir(path)
    _records_equal(net, back)
    assert _spikes_equal(net, back, 1) > 0


def test_hand_written_graph_against_torch_conv2d():
    """Input (2, 6, 6) -> Conv2d(padding 'same', bias) -> IF(r = 1): neurosim's v before any
    spike is the running sum of torch's conv2d of the frames plus the bias (an IF integrates)."""
    import torch
    import torch.nn.functional as F

    r = np.random.default_rng(5)
    w, b = r.normal(0, 0.3, (3, 2, 3, 3)), r.normal(0, 0.1, 3)
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([2, 6, 6])}),
        "c": nir.Conv2d(input_shape=(6, 6), weight=w, stride=1, padding="same", dilation=1, groups=1, bias=b),
        "n": nir.IF(r=np.ones((3, 6, 6)), v_threshold=np.full((3, 6, 6), 1e9), v_reset=np.zeros((3, 6, 6))),
        "out": nir.Output(output_type={"output": np.array([3, 6, 6])})},
        edges=[("in", "c"), ("c", "n"), ("n", "out")])
    net = from_nir(graph, convention="nir", dt=1e-3)
    assert isinstance(net.projections[0], ns.Conv2d) and net.population("n").shape == (3, 6, 6)
    x = (r.random((12, 1, 72)) < 0.4).astype(np.float64)
    res = ns.simulate(net, {"in": x}, 12, backend="numpy", traces={"n": ["v"]})
    y = F.conv2d(torch.tensor(x.reshape(12, 2, 6, 6)), torch.tensor(w), None, padding=1).numpy()
    expected = np.cumsum(np.concatenate([np.broadcast_to(b[:, None, None], (1, 3, 6, 6)), y[:-1] + b[:, None, None]]),
                         axis=0).reshape(12, 1, -1)  # bias from step 0, a frame one step later
    np.testing.assert_allclose(res.traces["n"]["v"], expected, rtol=1e-12, atol=1e-12)


def test_threshold_node_both_ways(tmp_path):
    """A memoryless LIF (alpha = beta = 0, gain 1, reset to zero) is written as NIR Threshold and
    read back as the same step (z = x > threshold)."""
    r = np.random.default_rng(0)
    net = ns.Network(1e-3, [ns.Population("h", 6, ns.LIF(beta=0.0, theta=0.5, reset="zero")),
                            ns.Population("o", 3, ns.LIF(beta=0.0, theta=r.uniform(0.2, 0.6, 3), reset="zero"))],
                     [ns.Projection("a", "in", "h", r.normal(0.4, 0.5, (4, 6))),
                      ns.Projection("b", "h", "o", r.normal(0.3, 0.5, (6, 3)))], [ns.SpikeInput("in", 4)])
    path = str(tmp_path / "t.nir")
    write_nir(net, path, target="nir")
    graph = nir.read(path)
    assert isinstance(graph.nodes["h"], nir.Threshold) and isinstance(graph.nodes["o"], nir.Threshold)
    assert _spikes_equal(net, read_nir(path, convention="nir", dt=1e-3), 0) > 0


# --------------------------------------------------------------------------- refusals
def _square_free(kernel_shape: tuple[int, ...]) -> ns.Network:
    r = np.random.default_rng(1)
    return ns.Network(1e-3, [ns.Population("l1", (2, 6, 5), ns.LIF(beta=0.9, reset="zero"))],
                      [ns.Conv2d("c", "in", "l1", r.normal(0, 1, kernel_shape))], [ns.SpikeInput("in", (1, 8, 8))])


def test_refusals_name_the_field_and_the_reason():
    with pytest.raises(ExportError, match=r"projections\.c\.kernel: .*non-square kernel.*nearest"):
        to_nir(_square_free((2, 1, 3, 4)), target="nir")
    to_nir(_square_free((2, 1, 3, 4)), extensions=True)  # readable by neurosim only
    r = np.random.default_rng(2)
    dense_in = ns.Network(1e-3, [ns.Population("l1", (2, 3, 3), ns.LIF(beta=0.9, reset="zero"))],
                          [ns.Projection("d", "in", "l1", r.normal(0, 1, (4, 18)))], [ns.SpikeInput("in", 4)])
    with pytest.raises(ExportError, match=r"projections\.d: .*reshapes a flat vector"):
        to_nir(dense_in, target="neurosim")
    pool = ns.Network(1e-3, [ns.Population("l1", (2, 4, 4), ns.LIF(beta=0.9, reset="zero"))],
                      [ns.SumPool2d("p", "in", "l1", 2)], [ns.SpikeInput("in", (2, 8, 8))])
    with pytest.raises(ExportError, match=r"projections\.p: target snntorch: snntorch's NIR importer has no SumPool2d"):
        to_nir(pool, target="snntorch")
    padded = ns.Network(1e-3, [ns.Population("l1", (2, 5, 5), ns.LIF(beta=0.9, gain=0.1, reset="zero"))],
                        [ns.SumPool2d("p", "in", "l1", 2, 2, 1)], [ns.SpikeInput("in", (2, 8, 8))])
    with pytest.raises(ExportError, match=r"projections\.p\.padding: .*LPPool2d"):
        to_nir(padded, target="norse")


def _graph(conv: "nir.NIRNode", in_shape: tuple[int, ...], n_out: tuple[int, ...]) -> "nir.NIRGraph":
    return nir.NIRGraph(nodes={"in": nir.Input(input_type={"input": np.array(in_shape)}), "c": conv,
                               "n": nir.IF(r=np.ones(n_out), v_threshold=np.ones(n_out), v_reset=np.zeros(n_out))},
                        edges=[("in", "c"), ("c", "n")], type_check=False)


def test_import_refusals_name_the_node_field():
    w = np.ones((2, 1, 2, 2))
    same_even = nir.Conv2d(input_shape=(4, 4), weight=w, stride=1, padding="same", dilation=1, groups=1, bias=np.zeros(2))
    with pytest.raises(ExportError, match=r"nodes\.c\.padding: 'same' padding .* pads one more zero"):
        from_nir(_graph(same_even, (1, 4, 4), (2, 4, 4)), convention="nir", dt=1e-3)
    wrong_c = nir.Conv2d(input_shape=(4, 4), weight=w, stride=1, padding=0, dilation=1, groups=1, bias=np.zeros(2))
    with pytest.raises(ExportError, match=r"nodes\.c\.weight: expected C_in/groups = 3/1"):
        from_nir(_graph(wrong_c, (3, 4, 4), (2, 3, 3)), convention="nir", dt=1e-3)
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    with pytest.raises(ExportError, match=r"nodes\.c\.input_type: expected an input of shape \(C, H, W\)"):
        from_nir(_graph(pool, (16,), (4,)), convention="nir", dt=1e-3)
    flat = nir.Flatten(input_type={"input": np.array([2, 4])}, start_dim=3)
    with pytest.raises(ExportError, match=r"nodes\.c\.start_dim"):
        from_nir(_graph(flat, (2, 4), (8,)), convention="nir", dt=1e-3)


# --------------------------------------------------------------------------- CLI
def test_cli_round_trip_of_a_conv_network(tmp_path, capsys):
    """`neurosim export MODEL --to nir` then `neurosim import FILE --from nir --convention
    neurosim`: identical spikes (numpy simulate before and after) and the same records."""
    net = _strict_net(0)
    model, path, back = (str(tmp_path / n) for n in ("m.h5", "m.nir", "back.h5"))
    ns.save(net, model)
    assert main(["export", model, "--to", "nir", "--out", path]) == 0
    nir.read(path)
    assert main(["import", path, "--from", "nir", "--convention", "neurosim", "--out", back]) == 0
    capsys.readouterr()
    again = ns.load(back)
    _records_equal(net, again)
    assert _spikes_equal(net, again, 3) > 0


def test_cli_refuses_an_inexpressible_conv_export(tmp_path, capsys):
    model, path = str(tmp_path / "m.h5"), str(tmp_path / "m.nir")
    ns.save(_square_free((2, 1, 3, 4)), model)
    assert main(["export", model, "--to", "nir", "--target", "nir", "--out", path]) == 2
    assert "projections.c.kernel" in capsys.readouterr().err and not os.path.exists(path)


# --------------------------------------------------------------------------- peers
pytest.importorskip("torch")
pytest.importorskip("snntorch")
pytest.importorskip("norse")
from nir_peer_conv_cells import CONV_CELLS  # noqa: E402

SUPPORTED = {k for k in CONV_CELLS if "SumPool2d" not in k[1] or k[0] == "Norse 1.1"}
SUPPORTED -= {k for k in CONV_CELLS if k[2] == "neurosim -> peer" and k[0] != "SpikingJelly 2.0" and "Conv1d" in k[1]}
SUPPORTED -= {k for k in CONV_CELLS if k[0] == "Norse 1.1" and ("AvgPool2d" in k[1] or "LPPool2d" in k[1])}


def _needs(key: tuple[str, str, str]) -> None:
    if key[0].startswith("SpikingJelly"):
        pytest.importorskip("spikingjelly.activation_based.nir_exchange")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("key", sorted(CONV_CELLS), ids=lambda k: f"{k[0]}|{k[1]}|{k[2]}")
def test_conv_peer_cell(key, seed):
    """Supported cells: every (step, neuron) bin identical to the peer's own run, and the peer
    spikes; the others refuse with the reason and the nearest expressible alternative."""
    _needs(key)
    out = CONV_CELLS[key](seed)
    if key in SUPPORTED:
        assert out.refused is None, out.refused
        assert out.bins == 1.0 and out.spikes > 0, (out.bins, out.spikes)
    else:
        assert out.bins is None and out.refused, out.refused
        assert "nearest" in out.refused or "unsupported node type 'NoneType'" in out.refused, out.refused


def test_snntorch_conv_graph_through_the_cli(tmp_path, capsys):
    """snnTorch's own conv graph (Conv2d + Leaky, AvgPool2d, Conv2d + Leaky, Flatten, Linear +
    Leaky) through `neurosim import --convention snntorch`: every layer bin for bin."""
    import torch
    from nir_peer_conv_cells import IN2, compare_layers, frames, run_peer, snntorch_conv_net
    from snntorch.export_nir import export_to_nir

    graph = export_to_nir(torch.nn.Sequential(*snntorch_conv_net(0)), torch.zeros(*IN2, dtype=torch.float64))
    path, out = str(tmp_path / "peer.nir"), str(tmp_path / "m.h5")
    nir.write(path, graph)
    assert main(["import", path, "--from", "nir", "--convention", "snntorch", "--out", out]) == 0
    assert "convention snntorch:" in capsys.readouterr().out
    x = frames(0, IN2)
    got = compare_layers(ns.load(out), x, run_peer(snntorch_conv_net(0), x))
    assert got.bins == 1.0 and got.spikes > 0

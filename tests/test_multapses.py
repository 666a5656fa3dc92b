"""Multapses (several synapses on one (pre, post), same or different delays): every target adds
them, as the reference simulator does (issue 17, item 1).

The property test draws 50 random networks (2-3 populations of 5-30 LIF/ALIF/IF neurons, CSR
projections where about a third of the synapses repeat a (pre, post) pair, delays 1-3, spike
inputs) and asks numpy, numba, torch (float64), the NIR round trip, Brian2 and Lava floating
point for the reference's spikes. numpy (the reference), torch and the NIR round trip run each
network on its own; numba, Brian2 and Lava run once on the block-diagonal union of the 50
networks (one network whose populations concatenate the networks' neurons and whose
projections are block-diagonal, so no block touches another: its spikes restricted to block k
are network k's spikes, which the fixture checks against numpy run on network k alone; the
comparison is then made per network). One run per target keeps the file fast (Lava and Brian2
start in seconds). LIF neurons share alpha and beta (Lava's own LIF takes one per population);
ALIF and IF parameters are drawn per neuron.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

import neurosim as ns
from neurosim.errors import BackendUnavailable

N_NETWORKS = 50
STEPS = 40
KINDS = ("lif", "alif", "if")


@dataclass
class Block:
    """One random network, as per-kind neuron parameters and COO synapses between node names."""

    sizes: dict[str, int]
    params: dict[str, dict[str, np.ndarray]]
    synapses: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    spikes: np.ndarray = None  # (STEPS, n_in)


def random_block(seed: int) -> Block:
    r = np.random.default_rng(seed)
    kinds = list(r.choice(KINDS, size=int(r.integers(2, 4)), replace=False))
    sizes = {k: int(r.integers(5, 31)) for k in kinds}
    sizes["in"] = int(r.integers(4, 11))
    params: dict[str, dict[str, np.ndarray]] = {}
    for k in kinds:
        n = sizes[k]
        p = {"theta": r.uniform(0.7, 1.3, n), "v0": r.uniform(0, 0.5, n)}
        if k == "lif":  # Lava's own LIF takes one alpha and beta per population: shared by all blocks
            p.update(beta=np.full(n, 0.9), alpha=np.full(n, 0.3))
        if k == "alif":
            p.update(beta=r.uniform(0.75, 0.97, n), alpha=r.uniform(0.0, 0.6, n))
        if k == "alif":
            p.update(rho=r.uniform(0.8, 0.98, n), adapt=r.uniform(0, 1.5, n), adapt_gain=r.uniform(0.05, 0.5, n),
                     refractory=r.integers(0, 3, n))
        params[k] = p
    block = Block(sizes, params)
    for pre in ["in", *kinds]:
        for post in kinds:
            if pre != "in" and r.random() < 0.3:
                continue
            m = int(r.integers(1, max(2, sizes[pre] * sizes[post] // 4)))
            i, j = r.integers(0, sizes[pre], m), r.integers(0, sizes[post], m)
            rep = r.random(m) < 0.5  # repeat about half of the pairs: multapses, same or other delays
            i, j = np.concatenate([i, i[rep]]), np.concatenate([j, j[rep]])
            w = r.uniform(0.1, 0.6, i.size) if pre == "in" else r.normal(0.05, 0.35, i.size)
            block.synapses[(pre, post)] = (i, j, w, r.integers(1, 4, i.size))
    block.spikes = r.random((STEPS, sizes["in"])) < 0.2
    return block


def _model(kind: str, p: dict[str, np.ndarray]) -> object:
    if kind == "lif":  # reset zero, no refractory: Lava's own LIF runs it
        return ns.LIF(beta=p["beta"], alpha=p["alpha"], theta=p["theta"], reset="zero")
    if kind == "alif":
        return ns.ALIF(beta=p["beta"], alpha=p["alpha"], theta=p["theta"], rho=p["rho"], adapt=p["adapt"],
                       adapt_gain=p["adapt_gain"], refractory=p["refractory"])
    return ns.IF(theta=p["theta"])


def union(blocks: list[Block]) -> tuple[ns.Network, dict[str, np.ndarray], dict[str, list[int]]]:
    """(network, inputs, offsets): the blocks side by side; offsets[node][k] is where block k's
    neurons of `node` start (the last entry is the node's size)."""
    nodes = ["in", *KINDS]
    offsets = {n: np.concatenate([[0], np.cumsum([b.sizes.get(n, 0) for b in blocks])]).astype(int).tolist()
               for n in nodes}
    pops = []
    for kind in KINDS:
        have = [b for b in blocks if kind in b.sizes]
        if not have:
            continue
        p = {key: np.concatenate([b.params[kind][key] for b in have]) for key in have[0].params[kind]}
        pops.append(ns.Population(kind, offsets[kind][-1], _model(kind, p), v0=p["v0"]))
    projs = []
    for pre in nodes:
        for post in KINDS:
            parts = [(k, b.synapses[(pre, post)]) for k, b in enumerate(blocks) if (pre, post) in b.synapses]
            if not parts:
                continue
            i = np.concatenate([s[0] + offsets[pre][k] for k, s in parts])
            j = np.concatenate([s[1] + offsets[post][k] for k, s in parts])
            w = np.concatenate([s[2] for _, s in parts])
            d = np.concatenate([s[3] for _, s in parts])
            order = np.argsort(i, kind="stable")  # from_coo orders by pre, stably: delays follow
            csr = ns.CSR.from_coo(i[order], j[order], w[order], (offsets[pre][-1], offsets[post][-1]))
            projs.append(ns.Projection(f"{pre}_{post}", pre, post, csr, delay=d[order]))
    net = ns.Network(dt=1e-3, populations=pops, projections=projs, inputs=[ns.SpikeInput("in", offsets["in"][-1])])
    return net, {"in": np.concatenate([b.spikes for b in blocks], axis=1)}, offsets


def dense(res: ns.SimulationResult, net: ns.Network) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(res.spikes[p.name].dense()).reshape(STEPS, p.size) for p in net.populations}


@pytest.fixture(scope="module")
def networks() -> list[tuple[Block, ns.Network, dict, dict[str, np.ndarray]]]:
    out = []
    for seed in range(N_NETWORKS):
        b = random_block(seed)
        net, x, _ = union([b])
        out.append((b, net, x, dense(ns.simulate(net, x, STEPS, backend="numpy", dtype="float64"), net)))
    return out


def test_the_networks_have_multapses_and_spike(networks):
    """The property is not vacuous: every network has pairs with several synapses (also with
    several delays) and spikes; no block is silent or saturated overall."""
    multi_delay = 0
    for _, net, _, ref in networks:
        assert any(j.has_multapses for j in net.projections)
        multi_delay += any(len(j.without_multapses()) > 1 for j in net.projections)
        rate = sum(int(z.sum()) for z in ref.values()) / (STEPS * net.n_neurons)
        assert 0.005 < rate < 0.6, rate
    assert multi_delay >= N_NETWORKS // 2


def test_torch_float64_gives_the_reference_spikes(networks):
    """The torch module (one weight per (pre, post, delay); a 3-D weight where a pair has
    several delays) on each network, in its graph-building step (the one training uses)."""
    from training.layers import from_network

    stacked = 0
    for seed, (_, net, x, ref) in enumerate(networks):
        model = from_network(net, dtype=torch.float64, fused=False)
        stacked += any(model.weights[j.name].ndim == 3 for j in net.projections)
        out, _ = model({"in": torch.as_tensor(x["in"][:, None, :], dtype=torch.float64)})
        for p in net.populations:
            np.testing.assert_array_equal(out[p.name]["z"][:, 0].detach().numpy() != 0, ref[p.name],
                                          err_msg=f"torch, network {seed}, {p.name}")
    assert stacked >= N_NETWORKS // 2


def test_nir_round_trip_gives_the_reference_spikes(networks):
    """Each network exported to NIR (one Linear per delay, multapses summed) and read back."""
    from mapping.nir_graph import from_nir, to_nir

    for seed, (_, net, x, ref) in enumerate(networks):
        back = from_nir(to_nir(net, extensions=True), dt=net.dt)
        got = dense(ns.simulate(back, x, STEPS, backend="numpy", dtype="float64"), back)
        for p in net.populations:
            np.testing.assert_array_equal(got[p.name], ref[p.name], err_msg=f"NIR, network {seed}, {p.name}")


@pytest.fixture(scope="module")
def blocks_union(networks):
    net, x, offsets = union([b for b, *_ in networks])
    ref = dense(ns.simulate(net, x, STEPS, backend="numpy", dtype="float64"), net)
    for k, (_, small, _, small_ref) in enumerate(networks):  # the union is the 50 networks side by side
        for p in small.populations:
            lo, hi = offsets[p.name][k], offsets[p.name][k + 1]
            np.testing.assert_array_equal(ref[p.name][:, lo:hi], small_ref[p.name])
    return net, x, offsets, ref


def _per_network(got: dict[str, np.ndarray], networks, offsets, target: str) -> None:
    for k, (_, small, _, small_ref) in enumerate(networks):
        for p in small.populations:
            lo, hi = offsets[p.name][k], offsets[p.name][k + 1]
            np.testing.assert_array_equal(got[p.name][:, lo:hi], small_ref[p.name],
                                          err_msg=f"{target}, network {k}, {p.name}")


def test_numba_gives_the_reference_spikes(networks, blocks_union):
    pytest.importorskip("numba")
    net, x, offsets, _ = blocks_union
    _per_network(dense(ns.simulate(net, x, STEPS, backend="numba", dtype="float64"), net), networks, offsets, "numba")


def test_brian2_keeps_multapses(networks, blocks_union):
    pytest.importorskip("brian2")
    from mapping import run_brian2

    net, x, offsets, _ = blocks_union
    _per_network(dense(run_brian2(net, x, STEPS, target="numpy"), net), networks, offsets, "brian2")


def test_lava_floating_point_sums_multapses(networks, blocks_union):
    from mapping.lava_compat import import_lava
    from mapping.lava_export import run_lava

    try:
        import_lava()
    except BackendUnavailable as exc:
        pytest.skip(f"Lava unavailable: {exc}")
    net, x, offsets, _ = blocks_union
    _per_network(dense(run_lava(net, x, STEPS, mode="floating_pt"), net), networks, offsets, "lava-float")


# ------------------------------------------------------------------ the measured cases, one by one

def _one_synapse_pair(delays=(1, 1), weights=(0.6, 0.6)) -> ns.Network:
    """One IF neuron (theta 1, reset zero) fed by one input channel through len(weights)
    synapses on the same (pre, post) pair."""
    csr = ns.CSR.from_coo(np.zeros(len(weights), int), np.zeros(len(weights), int), np.array(weights), (1, 1))
    return ns.Network(dt=1e-3, populations=[ns.Population("p", 1, ns.IF(theta=1.0, reset="zero"))],
                      projections=[ns.Projection("x", "in", "p", csr, delay=np.array(delays))],
                      inputs=[ns.SpikeInput("in", 1)])


def test_csr_to_dense_and_sum_duplicates_add_multapses():
    """Before the fix to_dense assigned, so the last duplicate won ([[0.6]])."""
    c = ns.CSR.from_coo([0, 0, 1, 0], [0, 0, 1, 1], [0.6, 0.6, 1.0, 2.0], (2, 2))
    np.testing.assert_array_equal(c.to_dense(), [[1.2, 2.0], [0.0, 1.0]])
    merged = c.sum_duplicates()
    assert c.has_duplicates and not merged.has_duplicates and merged.nnz == 3
    np.testing.assert_array_equal(merged.to_dense(), c.to_dense())


def test_without_multapses_merges_per_delay_and_splits_pairs_of_several_delays():
    same = _one_synapse_pair((2, 2)).projections[0].without_multapses()
    assert len(same) == 1 and same[0].weights.nnz == 1 and same[0].delay == 2
    np.testing.assert_allclose(same[0].weights.to_dense(), [[1.2]])
    split = _one_synapse_pair((1, 3, 3), (0.5, 0.25, 0.5)).without_multapses()
    assert [(j.name, j.delay, float(j.weights.to_dense()[0, 0])) for j in split.projections] == \
        [("x_d1", 1, 0.5), ("x_d3", 3, 0.75)]


def test_issue_example_simulates_the_same_after_nir_round_trip():
    """CSR.from_coo([0,0],[0,0],[.6,.6],(1,1)) driven every step: 1.2 > theta every step from
    step 1 (delay 1), so [0 1 1 1 1]; before the fix the NIR round trip gave [0 0 1 0 1]
    (0.6 per step)."""
    from mapping.nir_graph import from_nir, to_nir

    net = _one_synapse_pair()
    x = {"in": np.ones((5, 1), bool)}
    for n in (net, from_nir(to_nir(net, extensions=True), dt=net.dt)):
        np.testing.assert_array_equal(ns.simulate(n, x, 5).spikes["p"].dense().ravel(), [0, 1, 1, 1, 1])


@pytest.fixture(scope="module")
def cuba():
    from assets.cuba import cuba_network

    return cuba_network(n=400, seed=0)


def _pair_sums(net: ns.Network) -> dict[tuple[str, str], np.ndarray]:
    out: dict[tuple[str, str], np.ndarray] = {}
    for j in net.projections:
        w = j.weights.to_dense() if j.is_sparse else np.asarray(j.weights)
        out[(j.pre, j.post)] = out.get((j.pre, j.post), 0) + w
    return out


def test_bundled_cuba_keeps_its_synapse_sums_through_nir(cuba):
    """The bundled CUBA has multapses; before the fix the NIR export kept one synapse of each
    (n = 4000: ee 204604 -> 202575 synapses). The sum per (pre, post) must survive export +
    import (summed exactly: equal weights), and so must the spikes."""
    from mapping.nir_graph import from_nir, to_nir

    assert any(j.has_multapses for j in cuba.projections)
    back = from_nir(to_nir(cuba, extensions=True), dt=cuba.dt, reset="zero")
    want, got = _pair_sums(cuba), _pair_sums(back)
    assert sorted(want) == sorted(got)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=0)
    a, b = ns.simulate(cuba, None, 200), ns.simulate(back, None, 200)
    assert len(a.spikes["exc"]) > 20
    for p in ("exc", "inh"):
        np.testing.assert_array_equal(b.spikes[p].dense(), a.spikes[p].dense())


def test_from_network_float64_gives_simulates_spikes_on_cuba(cuba):
    """Before the fix the torch module kept one synapse per pair (cuba1k: 654 spikes against
    simulate's 634)."""
    from training.layers import from_network

    ref = ns.simulate(cuba, None, 200, dtype="float64")
    with torch.no_grad():
        out, _ = from_network(cuba, dtype=torch.float64)(torch.zeros(200, 1, 0, dtype=torch.float64))
    for p in ("exc", "inh"):
        np.testing.assert_array_equal(out[p]["z"][:, 0].numpy() != 0, ref.spikes[p].dense()[:, 0])


def test_to_network_writes_trained_multapse_weights_back_consistently():
    """Synapses (in order): (0,0) d1 0.5, (0,0) d1 0.5 (a multapse), (0,0) d3 -0.2 (same pair,
    other delay), (0,1) d1 0.3, (0,1) d1 -0.3 (a multapse summing to 0), (1,1) d2 0.7 (alone).
    After changing every module weight by +0.1, the network written back must give the module
    back (each class sums to its trained weight), alone synapses get the trained value, and
    multapses split the change equally. Before the fix each duplicate got the pair's whole
    weight (the sum doubled) and the delay-3 synapse the delay-1 weight."""
    from training.layers import from_network

    pre, post = np.array([0, 0, 0, 0, 0, 1]), np.array([0, 0, 0, 1, 1, 1])
    w, d = np.array([0.5, 0.5, -0.2, 0.3, -0.3, 0.7]), np.array([1, 1, 3, 1, 1, 2])
    net = ns.Network(dt=1e-3, populations=[ns.Population("p", 2, ns.LIF(beta=0.9))],
                     projections=[ns.Projection("x", "in", "p", ns.CSR.from_coo(pre, post, w, (2, 2)), delay=d)],
                     inputs=[ns.SpikeInput("in", 2)])
    model = from_network(net, dtype=torch.float64)
    assert tuple(model.weights["x"].shape) == (3, 2, 2)  # delays 1, 2, 3
    with torch.no_grad():
        model.weights["x"].add_(0.1 * torch.stack([model.mask_0_1, model.mask_0_2, model.mask_0_3]))
    back = model.to_network()
    np.testing.assert_allclose(back.projections[0].weights.values, [0.55, 0.55, -0.1, 0.35, -0.25, 0.8], atol=1e-15)
    np.testing.assert_array_equal(back.projections[0].delay, d)
    again = from_network(back, dtype=torch.float64)
    torch.testing.assert_close(again.weights["x"], model.weights["x"], rtol=0, atol=1e-15)


def test_quantize_sums_multapses_before_rounding():
    """The fixed-point network (Lava fixed_pt, NetX, the crosscheck's 'fixed') holds each pair's
    summed weight: dequantised it lies within the rounding bound of the sum. Before the fix it
    held one synapse (0.6 of 1.2), and the crosscheck blamed the lost synapse on quantisation."""
    from neurosim.fixed_point import dequantize, quantize

    net = _one_synapse_pair((1, 1, 2), (0.3, 0.3, 0.25))
    fixed = quantize(net)
    assert [q.name for q in fixed.projections] == ["x_d1", "x_d2"]
    got = {q.name: float(q.weights[0, 0]) for q in dequantize(fixed).projections}
    for name, want in (("x_d1", 0.6), ("x_d2", 0.25)):
        bound = float(np.max(fixed.report.projections[name]["error_bound"]))
        assert abs(got[name] - want) <= bound + 1e-12, (name, got[name], want, bound)


def test_netx_sums_multapses_and_refuses_pairs_of_several_delays(tmp_path):
    from mapping.netx import read_netx, to_netx
    from neurosim.errors import ExportError

    net = _one_synapse_pair((2, 2), (0.3, 0.3)).replace(
        populations=(ns.Population("p", 1, ns.LIF(beta=0.9, theta=1.0, reset="zero")),))
    to_netx(net, tmp_path / "m.net")
    back = read_netx(tmp_path / "m.net", dt=net.dt)
    rel = float(back.projections[0].weights[0, 0]) / float(back.populations[0].params.theta[0])
    assert abs(rel - 0.6) < 0.02, rel  # 0.3 alone before the fix; 8-bit mantissa rounding
    with pytest.raises(ExportError, match=r"projections\.x\.delay"):
        to_netx(_one_synapse_pair((1, 2), (0.3, 0.3)).replace(populations=net.populations), tmp_path / "n.net")


def test_lava_fixed_point_runs_the_merged_integer_network_bit_for_bit():
    """Lava fixed_pt (connections per delay class where pairs have several delays) equals
    neurosim's fixed-point mode bit for bit, and the fixed-point spike counts stay within 5 % of
    the float reference (measured 1.6 % and 0.7 %: rounding only). Before the fix both integer
    runs held one synapse per pair, so they agreed with each other and the difference to the
    float model (348 against 491 spikes here, 29 %) was reported as quantisation."""
    from mapping.lava_compat import import_lava
    from mapping.lava_export import run_lava
    from neurosim.fixed_point import quantize, simulate_fixed

    try:
        import_lava()
    except BackendUnavailable as exc:
        pytest.skip(f"Lava unavailable: {exc}")
    r = np.random.default_rng(1)

    def proj(name, pre, post, n_pre, n_post, m, mean, sd):
        i, j = np.sort(r.integers(0, n_pre, m)), r.integers(0, n_post, m)
        i, j = np.concatenate([i, i[:m // 2]]), np.concatenate([j, j[:m // 2]])  # half of them twice
        o = np.argsort(i, kind="stable")
        csr = ns.CSR.from_coo(i[o], j[o], r.normal(mean, sd, i.size), (n_pre, n_post))
        return ns.Projection(name, pre, post, csr, delay=r.integers(1, 4, i.size))

    net = ns.Network(dt=1e-3, populations=[ns.Population("h", 30, ns.LIF(beta=0.9, alpha=0.3, reset="zero")),
                                            ns.Population("a", 20, ns.ALIF(beta=0.9, alpha=0.2, rho=0.95, adapt=0.5))],
                     projections=[proj("in_h", "in", "h", 10, 30, 120, 0.4, 0.2), proj("h_a", "h", "a", 30, 20, 150, 0.2, 0.3),
                                  proj("a_h", "a", "h", 20, 30, 100, -0.1, 0.3)], inputs=[ns.SpikeInput("in", 10)])
    x = {"in": r.random((60, 10)) < 0.2}
    ref, fixed = ns.simulate(net, x, 60), simulate_fixed(quantize(net), x, 60)
    lava = run_lava(net, x, 60, mode="fixed_pt")
    for p in ("h", "a"):
        np.testing.assert_array_equal(lava.spikes[p].dense(), fixed.spikes[p].dense())
        assert len(ref.spikes[p]) > 200
        assert abs(len(fixed.spikes[p]) - len(ref.spikes[p])) <= 0.05 * len(ref.spikes[p])

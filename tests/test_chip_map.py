"""`neurosim map` and mapping.chip_*: the partitioner respects every per-core limit, names the
limit that binds, refuses what no core can hold; the report's counts against neurosim.metrics
and closed forms; the command's bad input."""
from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np
import pytest

import neurosim as ns
from mapping.chip_partition import binding, binding_limits, chip_graph, chip_network, partition
from mapping.chip_report import chip_report
from mapping.chips import LIMITS, ChipError, available_chips, load_chip, parse_chip
from neurosim.cli import main
from neurosim.metrics import neurobench_metrics
from conv_nets import conv_inputs, random_conv_network
from helpers import random_inputs, random_network

LOIHI2 = load_chip("loihi2")
SMALL = {"neurons": 9, "fan_in_axons": 20, "synaptic_memory": 1024, "fan_out_axons": 14}


def recount(network: ns.Network, core_of: np.ndarray, chip) -> dict[str, list[int]]:
    """Every core's use of every limit, in plain Python from the network's chip form (independent
    of mapping.chip_partition's vectorised counts)."""
    net = chip_network(network)
    word = int(chip.value("memory_model", "word_bits"))
    dbits = int(chip.value("memory_model", "delay_bits"))
    wbits = int(chip.value("arithmetic", "weight_bits"))
    start, k = {}, 0
    for p in net.populations:
        start[p.name] = k
        k += p.size
    n_cores = int(core_of.max()) + 1
    neurons = [int(np.sum(core_of == c)) for c in range(n_cores)]
    fan_in = [set() for _ in range(n_cores)]
    lists = defaultdict(int)          # (core, projection, pre) -> synapses
    list_bits = {}
    targets = defaultdict(set)        # (population, pre index) -> cores
    for proj in net.projections:
        csr, delays = proj.to_csr()
        bits = wbits + (dbits if np.any(delays[np.asarray(csr.values) != 0] > 1) else 0)
        for row, col, val in zip(csr.rows(), csr.indices, csr.values):
            if val == 0:
                continue
            core = int(core_of[start[proj.post] + int(col)])
            fan_in[core].add((proj.pre, int(row)))
            lists[(core, proj.name, int(row))] += 1
            list_bits[(core, proj.name, int(row))] = bits
            if proj.pre in start:
                targets[(proj.pre, int(row))].add(core)
    memory = [0] * n_cores
    for key, n in lists.items():
        core = key[0]
        idx = math.ceil(math.log2(neurons[core])) if neurons[core] > 1 else 0
        memory[core] += word * math.ceil(n * (list_bits[key] + idx) / word)
    fan_out = [0] * n_cores
    for (pop, j), cores in targets.items():
        fan_out[int(core_of[start[pop] + j])] += len(cores)
    return {"neurons": neurons, "fan_in_axons": [len(s) for s in fan_in], "synaptic_memory": memory,
            "fan_out_axons": fan_out}


@pytest.mark.parametrize("seed", range(16))
def test_partitioner_never_exceeds_a_limit_on_random_networks(seed):
    net = random_network(seed) if seed < 12 else random_conv_network(seed)
    scale = (2 + seed % 3) * (3 if seed >= 12 else 1)  # a conv neuron's per-tap lists need more memory
    chip = LOIHI2.with_limits(**{k: v * scale for k, v in SMALL.items()})
    graph = chip_graph(net, chip)
    try:
        part = partition(graph, chip)
    except ChipError as exc:  # refused: the neuron it names really needs more than a core takes
        assert "does not fit on any core" in str(exc) and "\n" not in str(exc)
        return
    usage = recount(net, part.core_of, chip)
    for name in LIMITS:
        assert max(usage[name]) <= chip.limit(name), (name, usage[name])
        assert usage[name] == part.usage[name].tolist(), name  # the report's counts are the true ones
    assert sorted(set(part.core_of.tolist())) == list(range(part.n_cores))
    assert np.all(np.diff(part.core_of) >= 0)  # consecutive neurons per core
    # the binding limit is the true one: without it, fewer cores; with every limit kept, not fewer
    relaxed = binding_limits(graph, chip, part.n_cores)
    for name in binding(relaxed, part.n_cores):
        assert partition(graph, chip.with_limits(**{name: None})).n_cores < part.n_cores


def test_a_network_that_fits_one_core_uses_one_core():
    net = random_network(3)
    res = ns.simulate(net, random_inputs(3, 20, 2), 20)
    rep = chip_report(net, res, LOIHI2)
    assert rep.summary["cores"] == 1 and rep.summary["chips"] == 1
    assert rep.summary["binding"] == [] and "fits one core" in rep.summary["binding_text"]


def _isolated(n: int, fan_in: int, limits: dict) -> tuple[ns.Network, object]:
    """n IF neurons, each fed by its own `fan_in` input channels (disjoint), weight 0.5."""
    w = np.zeros((n * fan_in, n))
    for j in range(n):
        w[j * fan_in:(j + 1) * fan_in, j] = 0.5
    net = ns.Network(1e-3, [ns.Population("p", n, ns.IF(theta=1.0))], [ns.Projection("ip", "in", "p", w)],
                     [ns.SpikeInput("in", n * fan_in)])
    return net, LOIHI2.with_limits(**limits)


@pytest.mark.parametrize("limit, limits, cores", [
    ("neurons", {"neurons": 7}, 3),                   # 20 neurons, 7 per core
    ("fan_in_axons", {"fan_in_axons": 25}, 10),       # 10 channels per neuron: 2 neurons per core
    ("synaptic_memory", {"synaptic_memory": 1920}, 7),  # 10 one-word lists (64 b) per neuron: 3 per core
])
def test_the_binding_limit_is_found_by_relaxing_it(limit, limits, cores):
    net, chip = _isolated(20, 10, limits)
    graph = chip_graph(net, chip)
    part = partition(graph, chip)
    assert part.n_cores == cores
    relaxed = binding_limits(graph, chip, part.n_cores)
    assert binding(relaxed, part.n_cores) == [limit]
    assert relaxed[limit] == 1 and part.closed_by == {limit: cores - 1}
    assert all(v == cores for k, v in relaxed.items() if k != limit)


def test_fan_out_splits_a_core_whose_neurons_reach_too_many_cores():
    # 2 neurons per core: a on 4 cores, b on 4; every a neuron reaches the 4 (or more) cores of b, so a
    # core of two a neurons sends at least 8 edges: under a fan-out limit of 5 each a neuron needs a
    # core of its own, and b at least 4: 12 cores at best
    net = ns.Network(1e-3, [ns.Population("a", 8, ns.IF()), ns.Population("b", 8, ns.IF())],
                     [ns.Projection("ia", "in", "a", np.eye(8)), ns.Projection("ab", "a", "b", np.full((8, 8), 0.1))],
                     [ns.SpikeInput("in", 8)])
    chip = LOIHI2.with_limits(neurons=2, fan_out_axons=5)
    part = partition(chip_graph(net, chip), chip)
    usage = recount(net, part.core_of, chip)
    assert part.n_cores == 12 and max(usage["fan_out_axons"]) <= 5 and max(usage["neurons"]) <= 2
    assert part.closed_by["fan_out_axons"] >= 7


def test_a_delay_longer_than_a_synapse_holds_is_refused():
    net = ns.Network(1e-3, [ns.Population("p", 2, ns.IF())], [ns.Projection("ip", "in", "p", np.ones((1, 2)), delay=70)],
                     [ns.SpikeInput("in", 1)])
    res = ns.simulate(net, {"in": np.ones((3, 1), bool)}, 3)
    with pytest.raises(ChipError, match=r"projections.ip.delay: delays up to 70 steps, more than the 64 steps"):
        chip_report(net, res, LOIHI2)


def test_a_neuron_with_more_fan_in_than_any_core_takes_is_refused(tmp_path, capsys):
    n_in = 5000  # > 4096 input axons per core (the Loihi 1 figure Loihi 2's file uses as a stand-in)
    net = ns.Network(1e-3, [ns.Population("big", 1, ns.IF())],
                     [ns.Projection("in_big", "in", "big", np.full((n_in, 1), 0.01))], [ns.SpikeInput("in", n_in)])
    res = ns.simulate(net, {"in": np.zeros((3, n_in), bool)}, 3)
    with pytest.raises(ChipError, match=r"neuron 0 of population 'big' does not fit on any core: it needs 5000 "
                                        r"presynaptic sources .* at most 4096 \(fan_in_axons"):
        chip_report(net, res, LOIHI2)
    path = tmp_path / "big.h5"
    ns.save(net, path)
    np.savez(tmp_path / "in.npz", **{"in": np.zeros((3, n_in), bool)})
    code = main(["map", str(path), "--chip", "loihi2", "--steps", "3", "--input", str(tmp_path / "in.npz")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "fan_in_axons" in err and "5000" in err


@pytest.mark.parametrize("make", ["recurrent", "conv", "multapses"])
def test_synops_in_the_report_equal_neurobench_metrics(make):
    if make == "conv":
        net = random_conv_network(4)
        res = ns.simulate(net, conv_inputs(net, 4, 25, 3), 25)
    elif make == "recurrent":
        net = random_network(5)
        res = ns.simulate(net, random_inputs(5, 40, 3, p=0.3), 40, seed=2)
    else:  # duplicates on (pre, post): merged as the chip holds them, as NeuroBench's matrices do
        csr = ns.CSR.from_coo(np.array([0, 0, 1, 1, 2]), np.array([1, 1, 0, 0, 2]),
                              np.array([0.6, 0.7, 0.5, -0.5, 0.9]), (3, 3))
        net = ns.Network(1e-3, [ns.Population("h", 3, ns.LIF(beta=0.9, theta=0.5))],
                         [ns.Projection("in_h", "in", "h", np.eye(3)),
                          ns.Projection("hh", "h", "h", csr, delay=np.array([1, 2, 1, 1, 3]))],
                         [ns.SpikeInput("in", 3)])
        res = ns.simulate(net, {"in": np.random.default_rng(0).random((30, 2, 3)) < 0.4}, 30)
    rep = chip_report(net, res, LOIHI2)
    m = neurobench_metrics(net, res)
    assert rep.summary["synops_neurobench_counted"] == m.effective_acs + m.effective_macs
    assert rep.summary["synops_neurobench"] == m.effective_acs + m.effective_macs
    if make == "conv":  # pooling and flatten are chip synapses but not NeuroBench layers
        shaped = {r["projection"]: r for r in rep.projections}
        assert "lowering" in shaped["c1"]["kind"] and any("lowering" in n for n in rep.notes)
        extra = sum(r["events"] for r in rep.projections if not r["neurobench_layer"])
        assert rep.summary["synaptic_events"] == pytest.approx(m.effective_acs + m.effective_macs + extra, rel=1e-12)
        assert rep.summary["synapses"] == sum(r["synapses"] for r in rep.projections)


def test_energy_and_latency_follow_the_cited_figures():
    # one input channel -> 3 IF neurons that never spike (theta far above the input): k input spikes
    # give 3k synaptic ops, 3T neuron updates, k input messages and no neuron spike messages
    steps, fire = 50, [3, 10, 11, 40]
    net = ns.Network(1e-3, [ns.Population("p", 3, ns.IF(theta=100.0))],
                     [ns.Projection("ip", "in", "p", np.full((1, 3), 0.5))], [ns.SpikeInput("in", 1)])
    x = np.zeros((steps, 1), bool)
    x[fire] = True
    rep = chip_report(net, ns.simulate(net, {"in": x}, steps), LOIHI2)
    e = {k: LOIHI2.value("energy", k) for k in ("synaptic_op", "neuron_update_inactive", "neuron_update_active")}
    t = {k: LOIHI2.value("time", k) for k in ("synaptic_op", "neuron_update_inactive", "neuron_update_active",
                                               "barrier_sync_one_tile")}
    k = len(fire)
    assert rep.summary["energy_J"][0] == pytest.approx(3 * k * e["synaptic_op"] + 3 * steps * e["neuron_update_inactive"])
    assert rep.summary["energy_J"][1] == pytest.approx(3 * k * e["synaptic_op"] + 3 * steps * e["neuron_update_active"])
    assert rep.summary["latency_s"][0] == pytest.approx(
        3 * k * t["synaptic_op"] + steps * (3 * t["neuron_update_inactive"] + t["barrier_sync_one_tile"]))
    assert rep.summary["input_spike_messages"] == k and rep.summary["spike_messages"] == 0
    assert any("input spikes" in u and "not published" in u for u in rep.summary["unpriced"])


def test_every_constant_carries_its_source_in_the_file_and_the_report(tmp_path):
    assert "loihi2" in available_chips()
    rep = chip_report(*_small_run())
    text = rep.markdown()
    for c in rep.constants:
        assert c["source"] in LOIHI2.sources and c["status"] in ("published", "stand-in", "model", "not published")
        assert f"**{c['source']}**" in text
    assert "Davies" in text and "stand-in" in text and "not published" in text
    embedded = rep.markdown(heading=2)
    assert embedded.startswith("## Resource and cost report") and "\n### Notes\n" in embedded
    data = json.loads(rep.to_json())
    assert data["summary"]["cores"] == 1 and data["constants"]
    bad = json.loads(open(LOIHI2.path).read())
    bad["energy"]["synaptic_op"]["source"] = "nowhere"
    with pytest.raises(ChipError, match="energy.synaptic_op.source"):
        parse_chip(bad, "bad.json")
    bad = json.loads(open(LOIHI2.path).read())
    bad["energy"]["synaptic_op"]["value"] = None
    with pytest.raises(ChipError, match="synaptic_op.value: null is only for"):
        parse_chip(bad, "bad.json")


def test_a_new_chip_is_a_data_file(tmp_path, capsys):
    # a chip that publishes only a neuron limit and no per-operation figure: placed and counted,
    # every missing figure named, no energy or latency invented
    chip = {"name": "tiny", "title": "Tiny chip", "sources": {"sheet": "a datasheet"},
            "limits": {"neurons": {"value": 3, "unit": "neurons per core", "source": "sheet", "status": "published"}},
            "energy": {"synaptic_op": {"value": None, "unit": "J", "source": "sheet", "status": "not published"}}}
    (tmp_path / "tiny.json").write_text(json.dumps(chip))
    net, res, _ = _small_run()
    rep = chip_report(net, res, load_chip(str(tmp_path / "tiny.json")))
    assert rep.summary["cores"] == 2 and rep.summary["binding"] == ["neurons"]
    assert all(math.isnan(x) for x in (*rep.summary["energy_J"], *rep.summary["latency_s"]))
    assert any("synaptic ops" in u and "not published" in u for u in rep.summary["unpriced"])
    assert "not checked" in rep.markdown() and "not estimated" in rep.markdown()


def _small_run():
    net = ns.Network(1e-3, [ns.Population("p", 4, ns.LIF(beta=0.9, theta=0.3))],
                     [ns.Projection("ip", "in", "p", np.full((2, 4), 0.4)),
                      ns.Projection("pp", "p", "p", np.full((4, 4), 0.05) - np.eye(4) * 0.05, delay=2)],
                     [ns.SpikeInput("in", 2)])
    x = np.random.default_rng(1).random((30, 2)) < 0.5
    return net, ns.simulate(net, {"in": x}, 30), LOIHI2


def test_map_command_writes_markdown_json_and_plot(tmp_path, capsys):
    net, _, _ = _small_run()
    ns.save(net, tmp_path / "m.h5")
    np.savez(tmp_path / "in.npz", **{"in": np.random.default_rng(1).random((30, 2)) < 0.5})
    for out, plot in (("r.md", ["--plot", str(tmp_path / "cores.png")]), ("r.json", [])):
        code = main(["map", str(tmp_path / "m.h5"), "--steps", "30", "--input", str(tmp_path / "in.npz"),
                     "--out", str(tmp_path / out), *plot])
        assert code == 0
    printed = capsys.readouterr().out
    assert "cores: 1" in printed and "binding limit: none" in printed
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["neurons"] == 4
    assert "## Constants and their sources" in (tmp_path / "r.md").read_text()
    assert (tmp_path / "cores.png").stat().st_size > 0


@pytest.mark.parametrize("argv, needle", [
    (["map", "{d}/missing.h5", "--steps", "5"], "missing.h5"),
    (["map", "{d}/m.h5", "--steps", "5", "--chip", "loihi9"], "--chip loihi9: unknown chip"),
    (["map", "{d}/m.h5", "--steps", "5", "--chip", "{d}/nochip.json"], "nochip.json: no such chip file"),
    (["map", "{d}/m.h5", "--steps", "5"], "pass --input IN.npz"),
    (["map", "{d}/m.h5", "--steps", "5", "--input", "{d}/in.npz", "--out", "{d}/r.txt"], "expected a file name ending in .md or .json"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, needle):
    net, _, _ = _small_run()
    ns.save(net, tmp_path / "m.h5")
    np.savez(tmp_path / "in.npz", **{"in": np.zeros((5, 2), bool)})
    code = main([a.format(d=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and needle in err, err

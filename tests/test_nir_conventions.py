"""NIR conventions as data and exports peers can open (issue 18, items 1-3).

The peer matrix (tests/nir_peer_cells.py) runs each peer's own network, or its own importer on
our export, and compares every (step, neuron) bin with neurosim's float64 run; the refusals are
checked to give a reason and the nearest alternative. bench/peer_matrix.py writes the same
cells to docs/PEERS.md.
"""
from __future__ import annotations

import os

import nir
import numpy as np
import pytest

import neurosim as ns
from helpers import random_network
from mapping.nir_graph import from_nir, read_nir, to_nir, write_nir
from mapping.nir_graph.conventions import CONVENTIONS
from mapping.nir_graph.targets import TARGETS
from mapping.nir_graph.timing import late_resets
from neurosim.cli import main
from neurosim.errors import ExportError

pytest.importorskip("torch")
pytest.importorskip("snntorch")
pytest.importorskip("norse")

from nir_peer_cells import CELLS, Outcome, norse_writable  # noqa: E402

SUPPORTED = {
    ("snnTorch 1.0", "Leaky (default: subtract, reset_delay=True) + biased Linear", "peer -> neurosim"),
    ("snnTorch 1.0", "Leaky (default) + unbiased Linear", "peer -> neurosim"),
    ("snnTorch 1.0", "Leaky(reset_mechanism='zero', reset_delay=True), --reset zero", "peer -> neurosim"),
    ("snnTorch 1.0", "Leaky(reset_mechanism='zero', reset_delay=False), --reset zero", "peer -> neurosim"),
    ("Norse 1.1", "LIBoxCell readout (membrane within 1e-6)", "peer -> neurosim"),
    ("snnTorch 1.0", "Synaptic (default) + biased Linear", "peer -> neurosim"),
    ("snnTorch 1.0", "RLeaky (default, all-to-all) + biased Linear", "peer -> neurosim"),
    ("snnTorch 1.0", "RSynaptic (default, all-to-all) + biased Linear", "peer -> neurosim"),
    ("Norse 1.1", "LIFBoxCell (default scalar parameters) + Linear", "peer -> neurosim"),
    ("Norse 1.1", "LIFCell (default scalar parameters) + Linear", "peer -> neurosim"),
    ("SpikingJelly 2.0", "LIFNode (decay_input, hard reset) + biased Linear", "peer -> neurosim"),
    ("SpikingJelly 2.0", "LIFNode (decay_input=False) + biased Linear", "peer -> neurosim"),
    ("snnTorch 1.0", "LIF", "neurosim -> peer"), ("snnTorch 1.0", "CubaLIF", "neurosim -> peer"),
    ("Norse 1.1", "LIF", "neurosim -> peer"), ("Norse 1.1", "CubaLIF", "neurosim -> peer"),
    ("SpikingJelly 2.0", "LIF", "neurosim -> peer"),
    ("SpikingJelly 2.0", "CUBALIFNode (hard reset) + biased Linear", "peer -> neurosim"),
    ("SpikingJelly 2.0", "CubaLIF", "neurosim -> peer"),
}


try:  # imported once here (it takes seconds), so that no single test pays for it
    import spikingjelly.activation_based.nir_exchange  # noqa: F401
    HAVE_SPIKINGJELLY = True
except ImportError:
    HAVE_SPIKINGJELLY = False


def _needs(key: tuple[str, str, str]) -> None:
    if key[0].startswith("SpikingJelly") and not HAVE_SPIKINGJELLY:
        pytest.skip("spikingjelly 2.0.0 is not installed (pip install --no-deps spikingjelly==2.0.0 loguru==0.7.3)")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("key", sorted(CELLS), ids=lambda k: f"{k[0]}|{k[1]}|{k[2]}")
def test_peer_matrix_cell(key, seed):
    """Supported cells: every (step, neuron) bin identical and the peer spikes; the others refuse
    with a reason and the nearest expressible alternative."""
    _needs(key)
    out: Outcome = CELLS[key](seed)
    if key in SUPPORTED:
        assert out.refused is None, out.refused
        assert out.bins == 1.0 and out.spikes > 0, (out.bins, out.spikes)
    else:
        assert out.bins is None and out.refused
        assert "nearest" in out.refused.lower(), out.refused


# --------------------------------------------------------------------------- strict exports
def _nets() -> list[ns.Network]:
    r = np.random.default_rng(3)
    zero = ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", 4)], populations=[
        ns.Population("a", 5, ns.LIF(beta=0.9, reset="zero")), ns.Population("o", 3, ns.LI(beta=0.8))],
        projections=[ns.Projection("w", "in", "a", r.normal(size=(4, 5))), ns.Projection("v", "a", "o", r.normal(size=(5, 3)))])
    return [random_network(s) for s in range(3)] + [random_network(0, dt=1e-4), zero]


@pytest.mark.parametrize("target", TARGETS)
def test_strict_export_passes_nir_read_or_refuses(tmp_path, target):
    """Without the extension flag a written file always passes nir.read; what the target cannot
    express is refused, naming the field, the reason and the nearest alternative."""
    wrote = 0
    for k, net in enumerate(_nets()):
        path = tmp_path / f"{k}.nir"
        try:
            write_nir(net, path, target=target)
        except ExportError as exc:
            assert f"target {target}:" in str(exc) and "nearest expressible:" in str(exc)
            assert not path.exists()
            continue
        nir.read(path)
        wrote += 1
    assert target not in ("neurosim", "nir") or wrote >= 1


def test_extensions_only_on_request(tmp_path):
    """ALIF and a subtract reset are neurosim's extensions: refused by default, written with the
    flag (nir.read then rejects the ALIF node, as the docs say), read back exactly by neurosim."""
    net = random_network(0)  # ALIF and subtract populations
    with pytest.raises(ExportError, match=r"target neurosim: .*nearest expressible"):
        write_nir(net, tmp_path / "strict.nir")
    write_nir(net, tmp_path / "ext.nir", extensions=True)
    with pytest.raises(AssertionError):
        nir.read(tmp_path / "ext.nir")
    back = read_nir(tmp_path / "ext.nir")
    assert [p.model.kind for p in back.populations] == [p.model.kind for p in net.populations]


def test_subtract_reset_is_not_written_as_reset_to_zero():
    net = ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", 2)], populations=[ns.Population("p", 2, ns.LIF())],
                     projections=[ns.Projection("w", "in", "p", np.eye(2))])
    for target in TARGETS:
        with pytest.raises(ExportError, match=r"populations\.p\.model\.reset: .*subtractive reset"):
            to_nir(net, target=target)


def test_from_tau_exports_its_own_time_constant(tmp_path):
    """from_tau defaults to 'exact'; the export writes tau back with it (0.0205 before, with euler)."""
    net = ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", 2)], populations=[
        ns.Population("p", 2, ns.LIF.from_tau(1e-3, tau_mem=20e-3, tau_syn=5e-3, reset="zero"))],
        projections=[ns.Projection("w", "in", "p", np.eye(2))])
    ns.save(net, tmp_path / "m.h5")
    for n in (net, ns.load(tmp_path / "m.h5")):
        node = to_nir(n).nodes["p"]
        np.testing.assert_allclose(node.tau_mem, 20e-3, rtol=1e-13)
        np.testing.assert_allclose(node.tau_syn, 5e-3, rtol=1e-13)
    back = from_nir(to_nir(net))
    assert back.population("p").params.beta[0] == net.population("p").params.beta[0]
    assert back.population("p").model.discretization == "exact"


# --------------------------------------------------------------------------- conventions
def test_late_reset_is_snntorch_synaptic_equation():
    """The late-reset self-projections reproduce, without snnTorch, its Synaptic/Leaky equations
    syn = alpha*syn + x, mem = beta*mem + syn - theta*s[t-1], s = H(mem - theta) (float64)."""
    r = np.random.default_rng(0)
    n, steps = 7, 200
    alpha, beta, theta = r.uniform(0, 0.8, n), r.uniform(0.5, 0.95, n), r.uniform(0.5, 1.5, n)
    w = r.normal(0.3, 0.5, (5, n))
    net = ns.Network(dt=1e-4, inputs=[ns.SpikeInput("in", 5)], populations=[
        ns.Population("p", n, ns.LIF(alpha=alpha, beta=beta, theta=theta))], projections=[ns.Projection("w", "in", "p", w)])
    x = (r.random((steps, 1, 5)) < 0.3).astype(float)
    xin = np.concatenate([x, np.zeros((1, 1, 5))])
    z = ns.simulate(late_resets(net, {"p"}), {"in": xin}, steps + 1).spikes["p"].dense()[1:, 0]
    syn, mem, s = np.zeros(n), np.zeros(n), np.zeros(n)
    ref = []
    for t in range(steps):
        syn = alpha * syn + x[t, 0] @ w
        mem = beta * mem + syn - theta * s
        s = (mem > theta).astype(float)
        ref.append(s)
    np.testing.assert_array_equal(z, np.array(ref))
    assert z.sum() > 50


def test_a_file_without_origin_asks_for_the_convention():
    graph = nir.NIRGraph(nodes={"x": nir.Input(np.array([2])), "w": nir.Linear(np.eye(2)),
                                "p": nir.LIF(tau=np.full(2, 1e-2), r=np.ones(2), v_leak=np.zeros(2),
                                             v_threshold=np.ones(2), v_reset=np.zeros(2)),
                                "y": nir.Output(np.array([2]))},
                         edges=[("x", "w"), ("w", "p"), ("p", "y")])
    with pytest.raises(ExportError, match=r"convention: the file does not say which tool wrote it.*--convention NAME"):
        from_nir(graph)
    for name, conv in CONVENTIONS.items():
        if name == "neurosim":
            continue
        notes: list[str] = []
        net = from_nir(graph, dt=1e-3 if conv.dt is None else None, convention=name, notes=notes)
        assert notes[0].startswith(f"convention {name}:") and net.populations[0].size == 2


def test_our_target_exports_say_how_to_read_them():
    """A file written for a peer's importer is read back by neurosim with that importer's
    reading, which the file names (the importer says so)."""
    net = _nets()[-1]
    sub = ns.Network(dt=1e-3, inputs=net.inputs, populations=net.populations[:1], projections=net.projections[:1])
    notes: list[str] = []
    back = from_nir(to_nir(sub, target="snntorch"), notes=notes)
    assert "written by neurosim for snntorch's importer" in notes[0]
    np.testing.assert_allclose(back.populations[0].params.beta, 0.9, rtol=1e-14)
    assert back.dt == 1e-4 and back.populations[0].model.reset == "zero"


# --------------------------------------------------------------------------- the Bar, from the CLI
def _cli_import(tmp_path, graph, convention: str, capsys) -> ns.Network:
    path, out = str(tmp_path / "peer.nir"), str(tmp_path / "m.h5")
    nir.write(path, graph)
    assert main(["import", path, "--from", "nir", "--convention", convention, "--out", out]) == 0
    assert f"convention {convention}:" in capsys.readouterr().out
    return ns.load(out)


def _layers_equal(net: ns.Network, x: np.ndarray, peer: dict[int, np.ndarray]) -> int:
    pops = [p for p in net.populations if p.name != "bias_clock"]
    res = ns.simulate(net, {net.inputs[0].name: np.concatenate([x, np.zeros((2, 1, x.shape[2]))])}, len(x) + 2)
    for k, (pop, layer) in enumerate(zip(pops, [peer[i] for i in sorted(peer)])):
        ours = res.spikes[pop.name].dense()[k + 1:k + 1 + len(x)]
        np.testing.assert_array_equal(ours, layer.reshape(ours.shape), err_msg=pop.name)
    return int(sum(v.sum() for v in peer.values()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cli_imports_default_snntorch_graph_exactly(tmp_path, capsys, seed):
    """Bar: Affine -> Leaky -> Affine -> Leaky (default Leaky, biased Linear) from the CLI with
    one --convention flag: every bin equal to snnTorch's own run (0.84 before)."""
    import torch
    from nir_peer_cells import _inputs, _snntorch_net
    from nir_peers import run_layers
    from snntorch.export_nir import export_to_nir

    graph = export_to_nir(torch.nn.Sequential(*_snntorch_net(seed, "Leaky", True)[0]), torch.zeros(12, dtype=torch.float64))
    net = _cli_import(tmp_path, graph, "snntorch", capsys)
    x = _inputs(seed, 12)
    mods, record = _snntorch_net(seed, "Leaky", True)
    assert _layers_equal(net, x, run_layers(mods, x, record)) > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cli_imports_default_norse_graph_exactly(tmp_path, capsys, seed):
    """Bar: Norse's default export (scalar parameters, dt*tau, reset to zero) from the CLI with
    one --convention flag: every bin equal to Norse's own run (refused before)."""
    import norse.torch as norse
    import torch
    from nir_peer_cells import _inputs
    from nir_peers import run_layers

    torch.manual_seed(seed)
    mods = [torch.nn.Linear(12, 20).double(), norse.LIFBoxCell(), torch.nn.Linear(20, 6).double(), norse.LIFBoxCell()]
    with torch.no_grad():
        mods[0].weight.mul_(12.0)
        mods[2].weight.mul_(25.0)
        mods[0].bias.uniform_(0.0, 1.0)
    graph = norse.to_nir(norse.SequentialState(*mods), torch.zeros(1, 12, dtype=torch.float64), dt=1e-3)
    assert np.ndim(graph.nodes["1"].tau) == 0  # Norse's default: scalar parameters
    net = _cli_import(tmp_path, norse_writable(graph), "norse", capsys)
    x = _inputs(seed, 12)
    assert _layers_equal(net, x, run_layers(mods, x, [1, 3])) > 0


def test_cli_export_target_and_refusal(tmp_path, capsys):
    net = _nets()[-1]
    model = str(tmp_path / "m.h5")
    ns.save(ns.Network(dt=1e-3, inputs=net.inputs, populations=net.populations[:1], projections=net.projections[:1]),
            model)
    out = str(tmp_path / "m.nir")
    assert main(["export", model, "--to", "nir", "--target", "norse", "--out", out]) == 2  # gain != 1 - beta
    assert "target norse:" in capsys.readouterr().err and not os.path.exists(out)
    assert main(["export", model, "--to", "nir", "--target", "snntorch", "--out", out]) == 0
    assert "snntorch.import_from_nir" in capsys.readouterr().out
    nir.read(out)


def test_linear_readout_equals_the_peers_last_linear():
    """Affine -> Output (snnTorch's usual readout) becomes an LI population with beta = 0 whose
    v is the peer's last Linear output, bias included from the first input step (float64)."""
    import torch
    from nir_peer_cells import _inputs, _snntorch_net
    from nir_peers import run_layers
    from snntorch.export_nir import export_to_nir

    mods = _snntorch_net(0, "Leaky", True)[0][:3]  # Linear -> Leaky -> Linear
    net = from_nir(export_to_nir(torch.nn.Sequential(*mods), torch.zeros(12, dtype=torch.float64)),
                   convention="snntorch")
    readout = [p for p in net.populations if p.model.kind == "li"]
    assert len(readout) == 1 and readout[0].size == 6
    x = _inputs(0, 12)
    fresh = _snntorch_net(0, "Leaky", True)[0][:3]
    peer = run_layers(fresh, x, [2])[2]
    res = ns.simulate(net, {net.inputs[0].name: np.concatenate([x, np.zeros((2, 1, 12))])}, len(x) + 2,
                      traces={readout[0].name: ["v"]})
    v = res.traces[readout[0].name]["v"][2:len(x) + 2]
    np.testing.assert_allclose(v, peer.reshape(v.shape), rtol=1e-12, atol=1e-12)


def test_nir_reference_cubalif_takes_the_previous_current():
    """Convention nir: NIR's reference CubaLIF (forward Euler, v from the previous step's
    current, reset to v_reset), written out here in numpy, equals the imported network."""
    r = np.random.default_rng(2)
    dt, n, steps = 1e-3, 5, 300
    tau_syn, tau_mem, w_in, rr = r.uniform(2e-3, 8e-3, n), r.uniform(5e-3, 2e-2, n), r.uniform(0.5, 2, n), r.uniform(0.5, 2, n)
    w = r.normal(2.0, 0.5, (n, 3))
    graph = nir.NIRGraph(nodes={"x": nir.Input(np.array([3])), "w": nir.Linear(w),
                                "c": nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=rr, v_leak=np.zeros(n),
                                                 v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=w_in),
                                "y": nir.Output(np.array([n]))}, edges=[("x", "w"), ("w", "c"), ("c", "y")])
    net = from_nir(graph, dt=dt, convention="nir")
    x = (r.random((steps, 1, 3)) < 0.3).astype(float)
    z = ns.simulate(net, {"x": np.concatenate([x, np.zeros((2, 1, 3))])}, steps + 2).spikes["c"].dense()[:, 0]
    i, v, ref = np.zeros(n), np.zeros(n), []
    for t in range(steps + 1):
        i_new = i + dt / tau_syn * (-i + w_in * (w @ x[t - 1, 0] if t >= 1 else 0))  # a spike at t acts at t + 1
        v = v + dt / tau_mem * (-v + rr * i)
        s = v > 1.0
        v = np.where(s, 0.0, v)
        i = i_new
        ref.append(s)
    np.testing.assert_array_equal(z[:steps + 1], np.array(ref, dtype=float))
    assert z.sum() > 20


def test_cli_choices_match_the_mapping_names():
    """The CLI lists targets and conventions without importing mapping at start-up: same names."""
    from neurosim.cli.export import NIR_CONVENTIONS, NIR_TARGETS

    assert NIR_TARGETS == TARGETS and set(NIR_CONVENTIONS) == set(CONVENTIONS)

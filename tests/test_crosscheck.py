"""The cross-check machinery itself: metrics, divergence, Poisson hand-over, report files.

Peer targets (Brian2, Lava) are exercised in their own test files and in the CLI test; here
the numba backend is an exact target and deliberately perturbed targets must be caught.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import neurosim as ns
from mapping import agreement as cc
from helpers import random_inputs, random_network


def _perturbed(scale: float) -> cc.Target:
    """A target that simulates the network with the first projection's weights scaled."""

    def run(net, inputs, steps, traces):
        p = net.projections[0]
        w = p.weights.to_dense() if p.is_sparse else np.array(p.weights)
        changed = net.replace(projections=(ns.Projection(p.name, p.pre, p.post, w * scale, p.delay),
                                           *net.projections[1:]))
        return ns.simulate(changed, inputs, steps, traces={q.name: ["v"] for q in net.populations} if traces else None)

    return cc.Target("perturbed", "neurosim", run, True, "weights of the first projection scaled")


def test_exact_target_agrees_everywhere():
    numba = pytest.importorskip("numba")
    del numba
    net = random_network(3)
    check = cc.crosscheck(net, random_inputs(3, 300, 2), 300, ["numba"], seed=5)
    assert not check.skipped
    assert {r.population for r in check.rows} == {p.name for p in net.populations}
    assert sum(r.reference_spikes for r in check.rows) > 100  # the comparison means something
    for r in check.rows:
        assert (r.count, r.bins, r.spikes, r.divergence) == (1.0, 1.0, 1.0, None)
        assert r.reference_spikes == r.target_spikes


def test_exact_backends_run_in_their_bitwise_mode_at_any_density():
    """At 40% input density numba's dense switch would sum by a matrix product, in another order
    than NumPy (equal up to rounding); the cross-check's exact targets run the backends in their
    bitwise modes, so v agrees to the bit (max |dv| 0), not to 1e-15."""
    pytest.importorskip("numba")
    r = np.random.default_rng(0)
    net = ns.Network(dt=1e-3, inputs=[ns.SpikeInput("in", 300)], populations=[
        ns.Population("h", 200, ns.LIF(beta=0.9, alpha=0.5, theta=1.0))],
        projections=[ns.Projection("in_h", "in", "h", r.normal(0.0, 0.1, (300, 200)))])
    x = {"in": r.random((100, 4, 300)) < 0.4}
    auto = ns.simulate(net, x, 100, backend="numba", traces={"h": ["v"]})
    ref = ns.simulate(net, x, 100, backend="numpy", traces={"h": ["v"]})
    assert cc.EXACT_OPTIONS["numba"] == {"dense": "never"} and cc.EXACT_OPTIONS["cupy"] == {"propagation": "gather"}
    check = cc.crosscheck(net, x, 100, ["numba"], seed=0)
    (row,) = check.rows
    assert row.bins == 1.0 and row.max_abs_dv == 0.0 and row.reference_spikes > 1000
    # the default (dense='auto') is not bitwise here: what the exact mode is for
    assert np.abs(auto.traces["h"]["v"] - ref.traces["h"]["v"]).max() > 0


def test_poisson_spikes_are_handed_over_unchanged():
    net = random_network(4)
    ref = ns.simulate(net, random_inputs(4, 200, 1), 200, seed=9)
    spiking, inputs = cc.as_spike_inputs(net, ref)
    assert all(isinstance(s, ns.SpikeInput) for s in spiking.inputs)
    again = ns.simulate(spiking, inputs, 200)
    for pop in ref.spikes:
        assert np.array_equal(ref.spikes[pop].dense(), again.spikes[pop].dense())


def test_perturbed_target_is_caught_with_the_first_divergence(monkeypatch, tmp_path):
    monkeypatch.setitem(cc.TARGETS, "perturbed", _perturbed(1.5))
    net = random_network(5)
    inputs = random_inputs(5, 400, 1, p=0.2)
    check = cc.crosscheck(net, inputs, 400, ["perturbed"])
    ref = check.results["neurosim"]
    tgt = check.results["perturbed"]
    # Independent recomputation of the metrics from the dense rasters.
    first = None
    for r in check.rows:
        a, b = ref.spikes[r.population].dense(), tgt.spikes[r.population].dense()
        assert r.bins == pytest.approx(np.mean(a == b), abs=1e-15)
        assert r.spikes == pytest.approx(2 * np.sum(a & b) / max(a.sum() + b.sum(), 1) if a.sum() + b.sum() else 1.0)
        ca, cb = a.sum(0), b.sum(0)
        if ca.sum() + cb.sum():
            assert r.count == pytest.approx(1 - np.abs(ca - cb).sum() / (ca.sum() + cb.sum()))
        if r.divergence is not None:
            d = r.divergence
            t0 = np.argwhere(a != b)[0]
            assert (d.step, d.trial, d.neuron) == tuple(int(x) for x in t0)
            assert d.reference_spike == bool(a[tuple(t0)]) and d.target_spike == bool(b[tuple(t0)])
            assert d.reference_v == pytest.approx(ref.traces[r.population]["v"][tuple(t0)])
            first = r
    assert first is not None, "a 1.5x weight change must change some spikes"
    assert check.worst("spikes") < 0.99
    # The population fed by the changed projection diverges with equal prior state (its input
    # changed); populations downstream diverge after their states have already drifted apart.
    post = net.projections[0].post
    row = next(r for r in check.rows if r.population == post)
    assert row.divergence is not None and "input or the threshold test differs" in row.divergence.reason

    paths = check.write_report(str(tmp_path / "report"))
    md = open(paths["report"]).read()
    assert "| perturbed | neurosim |" in md and "overlay_perturbed.png" in md
    from matplotlib.image import imread

    img = imread(paths["overlay_perturbed"])
    assert img.shape[0] > 200 and img.shape[1] > 500
    lines = open(paths["csv"]).read().splitlines()
    assert len(lines) == 1 + len(check.rows)
    assert not [f for f in os.listdir(tmp_path / "report") if f.endswith(".tmp")]


def test_targets_that_cannot_express_the_network_are_skipped_with_the_reason(monkeypatch):
    def refuse(net, inputs, steps, traces):
        raise ns.ExportError("lava", "populations.alif.model", "ALIF is not a Lava LIF")

    monkeypatch.setitem(cc.TARGETS, "refuses", cc.Target("refuses", "neurosim", refuse, True, "always refuses"))
    check = cc.crosscheck(random_network(6), random_inputs(6, 50, 1), 50, ["refuses"])
    assert check.skipped == {"refuses": "lava: populations.alif.model: ALIF is not a Lava LIF"}
    assert check.rows == [] and check.worst() is None  # nothing compared is not 100% agreement
    assert check.worst("spikes", exact_only=True) is None
    problems = check.shortfalls("bins", 0.9)
    assert problems[0].startswith("target refuses was skipped, so it was not checked against 0.9 (lava: ")
    assert problems[1].startswith("no exact comparison was made, so nothing was held to 0.9; the exact targets are ")
    assert "Nothing was compared (no target ran)." in check.markdown()


def test_unknown_target_is_named():
    with pytest.raises(ns.NetworkError, match="unknown target 'lava-flaot'.*lava-float"):
        cc.parse_targets("brian2,lava-flaot")


def _saved_model(tmp_path):
    net = random_network(7)
    path = str(tmp_path / "model.h5")
    ns.save(net, path)
    np.savez(tmp_path / "in.npz", **{"in": random_inputs(7, 120, 1)["in"][:, 0]})
    return path, str(tmp_path / "in.npz")


def test_cli_exit_codes(monkeypatch, tmp_path, capsys):
    from neurosim.cli import main

    model, inp = _saved_model(tmp_path)
    monkeypatch.setitem(cc.TARGETS, "perturbed", _perturbed(1.5))
    monkeypatch.setitem(cc.TARGETS, "same", _perturbed(1.0))
    common = [model, "--steps", "120", "--input", inp, "--no-progress", "--min-agreement", "0.999"]
    assert main(["crosscheck", *common, "--against", "same", "--report", str(tmp_path / "a")]) == 0
    assert main(["crosscheck", *common, "--against", "perturbed", "--metric", "spikes",
                 "--report", str(tmp_path / "b")]) == 1
    out = capsys.readouterr().out
    assert "below --min-agreement 0.999" in out and (tmp_path / "b" / "report.md").exists()
    assert main(["crosscheck", *common, "--against", "nope", "--report", str(tmp_path / "c")]) == 2
    assert "--against: unknown target 'nope'" in capsys.readouterr().err
    assert main(["crosscheck", model, "--steps", "120", "--against", "same", "--report", str(tmp_path / "d")]) == 2
    assert "pass --input IN.npz" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


def test_cli_export_and_import(tmp_path, capsys):
    pytest.importorskip("nir")
    from neurosim.cli import main
    from training.nets import recurrent_network

    lsnn = str(tmp_path / "lsnn.h5")
    ns.save(recurrent_network(6, 12, 2, model="alif", seed=1), lsnn)
    nir_path = str(tmp_path / "lsnn.nir")
    assert main(["export", lsnn, "--to", "nir", "--extensions", "--out", nir_path]) == 0
    back = str(tmp_path / "back.h5")
    assert main(["import", nir_path, "--from", "nir", "--dt", "1e-3", "--out", back]) == 0
    a, b = ns.load(lsnn), ns.load(back)
    for p, q in zip(a.projections, b.projections):
        assert np.array_equal(p.weights, q.weights) and p.delay == q.delay
    capsys.readouterr()
    # NetX has no ALIF: one line naming the population, exit 2, and no file left behind.
    assert main(["export", lsnn, "--to", "netx", "--out", str(tmp_path / "x.netx.h5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neurosim: error: netx: populations.hidden") and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["back.h5", "lsnn.h5", "lsnn.nir"]
    assert main(["import", str(tmp_path / "lsnn.h5"), "--from", "nir", "--dt", "1e-3",
                 "--out", str(tmp_path / "y.h5")]) == 2
    assert "lsnn.h5" in capsys.readouterr().err and not (tmp_path / "y.h5").exists()
    assert main(["import", nir_path, "--from", "nir", "--dt", "-1", "--out", str(tmp_path / "y.h5")]) == 2


# ------------------------------------------------------------------- the --min-agreement gate


def _lif_model(tmp_path):
    """A LIF network that the fixed-point mode can quantise, saved with an input archive."""
    from training.nets import recurrent_network

    path = str(tmp_path / "lif.h5")
    ns.save(recurrent_network(4, 10, 2, model="lif", seed=0), path)
    np.savez(tmp_path / "lif_in.npz", **{"in": np.random.default_rng(0).random((60, 4)) < 0.3})
    return path, str(tmp_path / "lif_in.npz")


def test_min_agreement_fails_when_a_requested_target_was_skipped(monkeypatch, tmp_path, capsys):
    from neurosim.cli import main

    def unusable(net, inputs, steps, traces):
        raise ns.BackendUnavailable("backend 'gone': not installed here")

    monkeypatch.setitem(cc.TARGETS, "gone", cc.Target("gone", "neurosim", unusable, True, "never runs"))
    monkeypatch.setitem(cc.TARGETS, "same", _perturbed(1.0))
    model, inp = _saved_model(tmp_path)
    common = [model, "--steps", "120", "--input", inp, "--no-progress"]
    # Without a bar a skipped target is reported, not a failure.
    assert main(["crosscheck", *common, "--against", "gone", "--report", str(tmp_path / "a")]) == 0
    assert "skipped gone: backend 'gone': not installed here" in capsys.readouterr().out
    # With one, nothing compared (worst agreement of no rows) must not pass for 100%.
    assert main(["crosscheck", *common, "--against", "gone", "--min-agreement", "0.999",
                 "--report", str(tmp_path / "b")]) == 1
    out = capsys.readouterr().out
    assert ("target gone was skipped, so it was not checked against --min-agreement 0.999 "
            "(backend 'gone': not installed here)") in out
    assert "no exact comparison was made, so nothing was held to --min-agreement 0.999" in out
    # Another target that agrees does not hide the skipped one.
    assert main(["crosscheck", *common, "--against", "same,gone", "--min-agreement", "0.999",
                 "--report", str(tmp_path / "c")]) == 1
    out = capsys.readouterr().out
    assert "holds the exact comparisons: same against neurosim" in out
    assert "target gone was skipped" in out and "no exact comparison" not in out


def test_min_agreement_never_holds_cupy_that_did_not_run(tmp_path, capsys):
    if ns.backends.available()["cupy"] == "":
        pytest.skip("a CUDA device is usable here: cupy runs")
    from neurosim.cli import main

    model, inp = _saved_model(tmp_path)
    assert main(["crosscheck", model, "--steps", "120", "--input", inp, "--no-progress", "--against", "cupy",
                 "--min-agreement", "0.999", "--report", str(tmp_path / "r")]) == 1
    assert "target cupy was skipped, so it was not checked against --min-agreement 0.999" in capsys.readouterr().out


def test_min_agreement_does_not_hold_quantised_targets_and_says_so(tmp_path, capsys):
    from neurosim.cli import main

    model, inp = _lif_model(tmp_path)
    assert main(["crosscheck", model, "--steps", "60", "--input", inp, "--no-progress", "--against", "fixed",
                 "--min-agreement", "0.999", "--report", str(tmp_path / "r")]) == 1
    out = capsys.readouterr().out
    assert "skipped" not in out  # it ran: the quantised comparison exists but is not held to the bar
    assert "--min-agreement 0.999 (bins) holds the exact comparisons: none; quantised, reported only: " \
           "fixed against neurosim" in out
    assert ("no exact comparison was made, so nothing was held to --min-agreement 0.999 (fixed against "
            "neurosim: quantised, approximate by design, not held to it); the exact targets are numba") in out
    assert "no exact comparison was made (quantised comparisons only)" in (tmp_path / "r" / "report.md").read_text()


def test_demo_bar_counts_no_exact_comparison_as_not_reached():
    from types import SimpleNamespace

    from neurosim.cli.demo_report import check_bar, summary_rows

    check = cc.CrossCheck(random_network(6), 10, {}, [], {"lava-float": "lava is not installed"})
    res = SimpleNamespace(bar=0.5, test_accuracy=0.9, simulated_accuracy=0.9, check=check,
                          files={"nir": "m.nir", "brian2": "b.py"}, exports={},
                          config=SimpleNamespace(task="t", rule="bptt", model="alif", hidden=4))
    assert check_bar(res) == [
        "cross-check: target lava-float was skipped, so it was not checked against 1 (lava is not installed)",
        "cross-check: no exact comparison was made, so nothing was held to 1; the exact targets are numba, cupy, "
        "brian2, brian2-cython, brian2-cpp, lava-float, lava-fixed (against fixed)"]
    assert dict(summary_rows(res))["worst agreement (bins, exact targets)"] == "no exact comparison made"


# ----------------------------------------------------------------------------- targets, order


def test_a_target_named_twice_is_refused(tmp_path, capsys):
    from neurosim.cli import main

    with pytest.raises(ns.NetworkError, match="target 'brian2' is named twice; name each target once"):
        cc.parse_targets("brian2,lava-float, brian2")
    model, inp = _saved_model(tmp_path)
    assert main(["crosscheck", model, "--steps", "10", "--input", inp, "--against", "numba,numba",
                 "--report", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == ("neurosim: error: --against: target 'numba' is named twice; "
                                       "name each target once\n")
    assert not (tmp_path / "r").exists()


def test_a_reference_target_runs_before_what_is_compared_with_it():
    assert cc.run_order(["lava-fixed"]) == ["fixed", "lava-fixed"]
    assert cc.run_order(["lava-fixed", "brian2", "fixed"]) == ["fixed", "lava-fixed", "brian2"]
    assert cc.run_order(["brian2", "numba"]) == ["brian2", "numba"]


# ------------------------------------------------------------------------ outputs over inputs


@pytest.mark.parametrize("case", ["report holds the model", "report holds the input"])
def test_crosscheck_report_never_replaces_an_input(tmp_path, capsys, case):
    from neurosim.cli import main

    model, inp = _saved_model(tmp_path)
    report = tmp_path / "r"
    report.mkdir()
    victim = report / ("report.md" if case == "report holds the model" else "agreement.csv")
    os.replace(model if case == "report holds the model" else inp, victim)
    args = [model, "--input", inp]
    args[0 if case == "report holds the model" else 2] = str(victim)
    before = victim.read_bytes()
    assert main(["crosscheck", *args, "--steps", "10", "--against", "numba", "--report", str(report)]) == 2
    option = "MODEL.h5" if case == "report holds the model" else "--input"
    assert capsys.readouterr().err == (f"neurosim: error: --report {victim}: is the same file as the input "
                                       f"{option} {victim}; writing it would destroy the input, choose another "
                                       "--report\n")
    assert victim.read_bytes() == before and os.listdir(report) == [victim.name]


def test_export_and_import_never_replace_their_input(tmp_path, capsys):
    pytest.importorskip("nir")
    from neurosim.cli import main

    model, _ = _lif_model(tmp_path)
    nir_path = str(tmp_path / "lif.nir")
    assert main(["export", model, "--to", "nir", "--extensions", "--out", nir_path]) == 0
    capsys.readouterr()
    saved = {p: open(p, "rb").read() for p in (model, nir_path)}
    assert main(["export", model, "--to", "nir", "--out", model]) == 2
    assert capsys.readouterr().err == (f"neurosim: error: --out {model}: is the same file as the input MODEL.h5 "
                                       f"{model}; writing it would destroy the input, choose another --out\n")
    os.symlink(nir_path, tmp_path / "alias.nir")
    assert main(["import", nir_path, "--from", "nir", "--dt", "1e-3", "--out", str(tmp_path / "alias.nir")]) == 2
    assert capsys.readouterr().err == (f"neurosim: error: --out {tmp_path / 'alias.nir'}: is the same file as the "
                                       f"input FILE {nir_path}; writing it would destroy the input, choose another "
                                       "--out\n")
    brian_model = str(tmp_path / "net.npz")  # a brian2 export writes its data beside the script, as .npz
    os.replace(model, brian_model)
    assert main(["export", brian_model, "--to", "brian2", "--out", str(tmp_path / "net.py")]) == 2
    assert "--out (its .npz)" in capsys.readouterr().err and not (tmp_path / "net.py").exists()
    os.replace(brian_model, model)
    assert {p: open(p, "rb").read() for p in (model, nir_path)} == saved


# ----------------------------------------------------------------------- import at a wrong dt


def test_import_at_a_dt_that_makes_delays_unrepresentable(tmp_path, capsys):
    pytest.importorskip("nir")
    import warnings

    from neurosim.cli import main

    net = ns.Network(1e-3, populations=[ns.Population("p", 3, ns.LIF(beta=0.9, reset="zero"))],
                     projections=[ns.Projection("in_p", "in", "p", np.full((2, 3), 0.5), delay=3)],
                     inputs=[ns.SpikeInput("in", 2)])
    model, graph = str(tmp_path / "m.h5"), str(tmp_path / "m.nir")
    ns.save(net, model)
    # written for the NIR reference (no neurosim.dt: a file for another tool, read at the dt asked for)
    assert main(["export", model, "--to", "nir", "--target", "nir", "--out", graph]) == 0
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning on the way
        assert main(["import", graph, "--from", "nir", "--dt", "1e-300", "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "-9223372036854775807" not in err
    assert ("delay: delays up to 0.002 s are 2e+297 steps at dt = 1e-300 s, more than the 100000 steps of a "
            "neurosim delay; check dt, the time step the graph was made for") in err
    assert not (tmp_path / "x.h5").exists()


def test_import_at_a_dt_that_makes_a_leak_vanish(tmp_path):
    nir = pytest.importorskip("nir")
    from mapping.nir_graph import read_nir

    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2])),
                                "w": nir.Linear(weight=np.full((3, 2), 0.5)),
                                "lif": nir.LIF(tau=np.full(3, 0.02), r=np.ones(3), v_leak=np.zeros(3),
                                               v_threshold=np.ones(3)),
                                "output": nir.Output(output_type=np.array([3]))},
                         edges=[("input", "w"), ("w", "lif"), ("lif", "output")])
    path = str(tmp_path / "g.nir")
    nir.write(path, graph)
    assert read_nir(path, 1e-4, reset="zero").population("lif").model.beta == pytest.approx(1 - 1e-4 / 0.02)
    with pytest.raises(ns.ExportError, match=r"nodes\.lif\.tau: tau = 0\.02 s is 2e\+298 steps of dt = 1e-300 s, "
                                             r"too many for a per-step decay \(it rounds to 1: no leak\); check dt"):
        read_nir(path, 1e-300, reset="zero")


def test_cli_report_of_a_conv_network_has_activity_maps(tmp_path, capsys):
    """`neurosim crosscheck` on shaped populations: the reference's activity maps, and a count
    difference map for a target exactly when its shaped spikes differ from its reference's."""
    from matplotlib.image import imread

    from conv_nets import random_conv_network
    from neurosim.cli import main

    net = random_conv_network(0)
    model = str(tmp_path / "conv.h5")
    ns.save(net, model)
    x = np.random.default_rng(5).random((25, net.input("in").size)) < 0.3
    np.savez(tmp_path / "in.npz", **{"in": x})
    report = tmp_path / "r"
    assert main(["crosscheck", model, "--steps", "25", "--input", str(tmp_path / "in.npz"), "--against",
                 "fixed", "--no-progress", "--report", str(report)]) == 0
    capsys.readouterr()
    check = cc.crosscheck(net, {"in": x[:, None]}, 25, ["fixed"])
    files = sorted(os.listdir(report))
    assert "activity_neurosim.png" in files
    fixed_differs = any(r.bins < 1.0 for r in check.rows if r.target == "fixed" and r.population in ("l1", "l2"))
    assert ("activity_diff_fixed.png" in files) == fixed_differs
    for f in files:
        if f.endswith(".png"):
            assert imread(str(report / f)).shape[0] > 100, f
    md = (report / "report.md").read_text()
    assert "(activity_neurosim.png)" in md

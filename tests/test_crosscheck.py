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
    assert check.rows == [] and check.worst() == 1.0


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
    assert main(["export", lsnn, "--to", "nir", "--out", nir_path]) == 0
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

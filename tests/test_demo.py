"""The demo pipeline at a reduced size: every artefact exists and is valid, agreement is exact."""
from __future__ import annotations

import base64
import io
import os
import re

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("brian2")

import neurosim as ns  # noqa: E402
from neurosim.cli.demo import DemoConfig, check_bar, run_demo  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("demo"))
    config = DemoConfig(hidden=24, epochs=2, n_train=64, n_test=32, n_check=1, backend="numpy")
    return out, run_demo(config, out, progress=False, log=lambda *_: None)


def test_files_exist_and_load(demo):
    out, res = demo
    for key in ("model", "simulation", "curve", "rasters", "report", "html", "brian2", "checkpoint"):
        assert os.path.isfile(res.files[key]), key
    net = ns.load(res.files["model"])
    assert [p.name for p in net.populations] == ["hidden", "out"]
    assert isinstance(net.populations[0].model, ns.ALIF)
    sim = ns.load_result(res.files["simulation"])
    assert sim.batch == 32 and sim.traces["out"]["v"].shape == (sim.steps, 32, net.population("out").size)
    # the ALIF network has no NIR form that nir.read accepts: reported, no unreadable file written
    assert "nir" not in res.files and not os.path.exists(os.path.join(out, "model.nir"))
    assert res.exports["nir"].startswith("not exported: nir: populations.hidden.model: target neurosim: ALIF")
    assert "nearest expressible" in res.exports["nir"]
    from mapping.nir_graph import read_nir, write_nir

    path = os.path.join(out, "ext.nir")  # with the extension flag neurosim reads its own file back
    write_nir(net, path, extensions=True)
    back = read_nir(path)
    for p, q in zip(net.projections, back.projections):
        assert np.array_equal(np.asarray(p.weights), np.asarray(q.weights)), p.name
    assert not [f for _, _, fs in os.walk(out) for f in fs if f.endswith(".tmp")]


def test_pngs_decode(demo):
    from matplotlib.image import imread

    _, res = demo
    pngs = [v for k, v in res.files.items() if v.endswith(".png")]
    assert len(pngs) >= 3
    for path in pngs:
        img = imread(path)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, path


def test_html_is_self_contained_and_links_resolve(demo):
    from matplotlib.image import imread

    out, res = demo
    page = open(res.files["html"], encoding="utf-8").read()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 3
    for data in images:
        assert imread(io.BytesIO(base64.b64decode(data))).shape[0] > 100
    links = re.findall(r'href="([^"]+)"', page)
    assert links and all(os.path.exists(os.path.join(out, link)) for link in links), links
    assert "src=\"http" not in page and "href=\"http" not in page


def test_agreement_and_accuracy_consistency(demo):
    _, res = demo
    brian = [r for r in res.check.rows if r.target == "brian2"]
    assert brian and all(r.bins == 1.0 and r.divergence is None for r in brian)
    assert res.check.worst("bins", exact_only=True) == 1.0
    ran = {r.target for r in res.check.rows}
    assert ran == {"brian2", "lava-float", "fixed", "lava-fixed"}, res.check.skipped
    assert sum(r.reference_spikes for r in brian) > 0
    # torch (float32) and neurosim (float64) classify the same test trials, up to rare ties.
    assert abs(res.test_accuracy - res.simulated_accuracy) <= 2 / 32
    problems = check_bar(res)
    assert any("task bar" in p for p in problems) or res.test_accuracy >= res.bar
    md = open(res.files["report"]).read()
    for section in ("Training curve", "Agreement", "Exports", "Fixed-point quantisation", "Stage timings",
                    "Versions"):
        assert f"## {section}" in md


def test_report_carries_the_neurobench_metrics_of_the_test_simulation(demo):
    out, res = demo
    from neurosim.metrics import neurobench_metrics

    want = neurobench_metrics(ns.load(res.files["model"]), ns.load_result(res.files["simulation"]))
    assert res.metrics == want and want.effective_acs > 0
    text = open(res.files["report"]).read()
    assert "## NeuroBench metrics" in text and want.table() in text
    assert "NeuroBench metrics" in open(res.files["html"]).read()

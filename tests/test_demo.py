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


def test_report_carries_the_loihi2_resource_report_of_the_test_simulation(demo):
    """The demo's resource section is chip_report of the saved model and test-set run, the same
    figures `neurosim map` would give (cores, binding limit, SynOps, energy), with cited constants."""
    import json

    from mapping.chip_report import chip_report
    from mapping.chips import load_chip

    out, res = demo
    want = chip_report(ns.load(res.files["model"]), ns.load_result(res.files["simulation"]), load_chip("loihi2"))
    assert json.loads(open(res.files["chip_json"]).read()) == json.loads(want.to_json())
    assert want.summary["cores"] >= 1 and want.summary["synaptic_events"] > 0
    text = open(res.files["report"]).read()
    assert "## Resource and cost report" in text and "| binding limit |" in text
    for k, v in want.rows():
        assert f"| {k} | {v} |" in text
    assert "Resource and cost report: Loihi 2" in open(res.files["html"]).read()


# ------------------------------------------------------------------ accuracy where it will run


def test_accuracy_in_every_arithmetic_recurrent(demo):
    """The LSNN demo's table: torch, float64, fixed point on every test trial; Lava fixed_pt on
    the cross-check's trial scores as neurosim's fixed point does (they are bit-exact)."""
    _, res = demo
    names = [e.name for e in res.accuracy]
    assert names == ["torch (float32)", "neurosim (float64)", "neurosim fixed point", "Lava fixed_pt"]
    torch_, float64, fixed, lava = res.accuracy
    assert torch_.n == float64.n == fixed.n == 32 and lava.n == 1
    assert float64.accuracy() == res.simulated_accuracy
    # the per-trial torch scores (forward pass) sum to the trainer's own evaluation of the kept epoch
    assert torch_.accuracy() == pytest.approx(res.test_accuracy, abs=1e-12)
    assert np.array_equal(lava.correct, fixed.correct[:1]) and np.array_equal(lava.counted, fixed.counted[:1])
    md = open(res.files["report"]).read()
    assert "## Accuracy where it will run" in md and "| Lava fixed_pt |" in md


def test_fixed_point_accuracy_against_its_integer_state(demo):
    """Independent of demo_accuracy: decode the readout's integer v with the quantised scale
    (S = 64 vth / theta, theta = 1 for LI) and score it with training.scoring on the same trials."""
    import torch

    from neurosim.fixed_point import quantize, simulate_fixed
    from training.scoring import score
    from training.tasks import make_task

    _, res = demo
    c = res.config
    net = ns.load(res.files["model"])
    task = make_task(c.task, seed=c.seed, n_train=c.n_train, n_test=c.n_test)
    fixed = quantize(net)
    x = np.ascontiguousarray(task.test.inputs.transpose(1, 0, 2) != 0)
    sim = simulate_fixed(fixed, {"in": x}, task.steps, traces={"out": ["v_int"]})
    out = fixed.population("out")
    scale = 64.0 * np.asarray(out.vth, np.float64)  # per population or per neuron; LI theta = 1
    v = sim.traces["out"]["v_int"] / scale
    steps = np.flatnonzero(task.test.loss_mask)
    correct, counted = score(task, {int(t): torch.as_tensor(v[t]) for t in steps}, torch.as_tensor(task.test.targets))
    fixed_scores = res.accuracy[2]
    assert (int(fixed_scores.correct.sum()), int(fixed_scores.counted.sum())) == (correct, counted)


def test_demo_cli_refuses_a_bad_arch_before_making_the_directory(tmp_path, capsys):
    from neurosim.cli import main

    out = tmp_path / "d"
    assert main(["demo", "--arch", "conv(16,k=5", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("neurosim: error: --arch: ") and not out.exists()


def test_demo_cli_refuses_cuda_without_a_gpu_before_making_the_directory(tmp_path, capsys):
    import torch

    from neurosim.cli import main

    if torch.cuda.is_available():
        pytest.skip("torch sees a CUDA device here")
    out = tmp_path / "d"
    assert main(["demo", "--device", "cuda", "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("neurosim: error: --device cuda: torch sees no CUDA device")
    assert not out.exists()


def test_report_names_the_training_device_that_auto_chose(demo):
    """DemoConfig.device is 'auto'; the report's configuration names the device used."""
    import torch

    out, res = demo
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert res.config.device == want
    assert f"device = {want}" in open(res.files["report"]).read()


def test_cuda_training_rounds_float32_as_the_cpu_does(monkeypatch):
    """pick_device('auto') on a GPU switches TF32 off (matmul and cuDNN): float32 must mean a
    24-bit significand on CUDA too, or the trained network's spikes part from its CPU export."""
    import torch

    from training.trainer import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:  # torch's flag objects take assignment, not monkeypatch's undo
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        assert pick_device("cpu").type == "cpu" and torch.backends.cudnn.allow_tf32 is True  # the CPU: untouched
        assert pick_device("auto").type == "cuda"
        assert torch.backends.cuda.matmul.allow_tf32 is False and torch.backends.cudnn.allow_tf32 is False
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# --------------------------------------------------------------------------------- conv demo

CONV_SMALL = "conv(4,k=5,s=4,p=2),pool(3),flatten,dense(10)"  # 2x34x34 -> 4x9x9 -> 4x3x3 -> 10


@pytest.fixture(scope="module")
def conv_demo(tmp_path_factory):
    pytest.importorskip("sklearn")
    from neurosim.cli.demo import conv_config

    out = str(tmp_path_factory.mktemp("conv_demo"))
    config = conv_config(arch=CONV_SMALL, epochs=2, n_train=120, n_test=12, n_check=2, n_fixed=6, backend="numpy")
    return out, run_demo(config, out, progress=False, log=lambda *_: None)


@pytest.mark.slow
def test_conv_demo_end_to_end(conv_demo):
    """Every artefact of the conv demo; Brian2 and Lava floating_pt identical to neurosim, Lava
    fixed_pt identical to neurosim's fixed point; NIR and NetX either written or refused with the
    exporter's reason (conv export lands with their own issues)."""
    from matplotlib.image import imread

    out, res = conv_demo
    net = ns.load(res.files["model"])
    assert [p.shape for p in net.populations] == [(4, 9, 9), (4, 3, 3), (10,)]
    for key in ("model", "simulation", "curve", "rasters", "activity", "report", "html", "brian2",
                "crosscheck_activity_neurosim"):
        assert os.path.isfile(res.files[key]), key
    for key in ("rasters", "activity", "crosscheck_activity_neurosim"):
        assert imread(res.files[key]).shape[0] > 100
    for name in ("nir", "netx"):
        assert name in res.files or res.exports[name].startswith(f"not exported: {name}: "), res.exports[name]
    assert {r.target for r in res.check.rows} == {"brian2", "lava-float", "fixed", "lava-fixed"}, res.check.skipped
    assert res.check.worst("bins", exact_only=True) == 1.0
    assert sum(r.reference_spikes for r in res.check.rows if r.target == "brian2") > 0
    # the epoch was chosen on the validation split (12 of the 120 training samples)
    assert "highest validation accuracy" in res.epoch and "on 12 trials" in res.epoch
    md = open(res.files["report"]).read()
    assert "## Activity maps" in md and "## Accuracy where it will run" in md
    assert "| Lava fixed_pt |" in md and "every one" in md


@pytest.mark.slow
def test_conv_demo_accuracy_is_that_of_its_spikes(conv_demo):
    """torch (float32) and neurosim (float64) score a trial alike wherever their spikes agree in
    every layer; Lava fixed_pt scores as neurosim's fixed point on every cross-checked trial; the
    per-trial torch scores sum to the trainer's evaluation of the kept epoch."""
    import torch

    from neurosim.cli.demo_accuracy import test_spikes
    from training.tasks import make_task

    _, res = conv_demo
    c = res.config
    task = make_task(c.task, seed=c.seed, n_train=c.n_train, n_test=c.n_test)
    torch_, float64, fixed, lava = res.accuracy
    assert torch_.accuracy() == pytest.approx(res.test_accuracy, abs=1e-12)
    assert np.array_equal(lava.correct, fixed.correct[:lava.n]) and lava.n == c.n_check
    assert fixed.n == c.n_fixed
    sim = ns.load_result(res.files["simulation"])
    from training.layered import from_network

    model = from_network(ns.load(res.files["model"]), dtype=torch.float32)  # the trained float32 weights, exactly
    with torch.no_grad():
        rec, _ = model.forward(torch.as_tensor(test_spikes(task), dtype=torch.float32), record=("z",))
    same = np.ones(len(task.test), bool)
    for p in ("l1", "l2"):
        same &= np.all(rec[p]["z"].numpy().astype(bool) == sim.spikes[p].dense(), axis=(0, 2))
    assert same.sum() >= len(task.test) // 2, same  # float32 and float64 rarely part on a threshold
    assert np.array_equal(torch_.correct[same], float64.correct[same])

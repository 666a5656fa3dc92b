"""The report's figures (issue 25, item 6), checked on matplotlib's own objects: legends outside
the data, LI readouts drawn as voltage lines, every overlay panel on one time axis, and the demo
report's configuration table with the trial counts actually used.

Each plotting function hands its Figure to ``write_png``; the tests capture it there (the PNG is
still written) and inspect the artists after a draw."""
from __future__ import annotations

import os

import numpy as np
import pytest

import neurosim as ns
from neurosim import plot

pytest.importorskip("matplotlib")


def _net() -> ns.Network:
    """20 LIF neurons driven by Poisson input, read out by 3 LI neurons (which never spike)."""
    rng = np.random.default_rng(0)
    return ns.Network(
        dt=1e-3,
        populations=[ns.Population("hidden", 20, ns.LIF(alpha=0.5, beta=0.9, theta=1.0)),
                     ns.Population("out", 3, ns.LI(alpha=0.0, beta=0.9))],
        projections=[ns.Projection("in_hidden", "in", "hidden", rng.uniform(0, 0.6, (10, 20))),
                     ns.Projection("hidden_out", "hidden", "out", rng.normal(0, 0.5, (20, 3)))],
        inputs=[ns.PoissonInput("in", 10, rate=200.0)],
    )


@pytest.fixture(scope="module")
def result() -> ns.SimulationResult:
    res = ns.simulate(_net(), {}, 100, seed=1, traces={"out": ["v"]})
    assert res.spikes["hidden"].step.size > 20  # the raster has spikes a legend could cover
    return res


def _capture(monkeypatch, module) -> list:
    figures: list = []
    real = module.write_png

    def keep(path, fig):
        figures.append(fig)
        real(path, fig)

    monkeypatch.setattr(module, "write_png", keep)
    return figures


def _drawn(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _legends(fig) -> list:
    return [leg for leg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if leg is not None]


def _assert_legends_outside(fig) -> None:
    """No legend's box meets any axes' data area (pixel boxes after drawing)."""
    renderer = _drawn(fig)
    legends = _legends(fig)
    assert legends, "the figure has no legend"
    for leg in legends:
        box = leg.get_window_extent(renderer)
        for ax in fig.axes:
            area = ax.get_window_extent(renderer)
            assert not box.overlaps(area), (f"legend {[t.get_text() for t in leg.get_texts()]} "
                                            f"at {box.bounds} overlaps axes at {area.bounds}")


def _lines_with_data(ax) -> list:
    return [ln for ln in ax.get_lines() if len(np.asarray(ln.get_xdata())) > 1]


def test_raster_draws_li_readout_as_voltage_and_legends_outside(result, tmp_path, monkeypatch):
    figures = _capture(monkeypatch, plot)
    plot.raster(result, tmp_path / "r.png")
    assert os.path.getsize(tmp_path / "r.png") > 0
    fig = figures[0]
    # the readout is not a raster band: its voltage traces are lines equal to the recorded v
    v = result.traces["out"]["v"]
    traced = [ln for ax in fig.axes for ln in _lines_with_data(ax) if ln.get_label().startswith("out[")]
    assert len(traced) == 3
    for j, ln in enumerate(sorted(traced, key=lambda ln: ln.get_label())):
        np.testing.assert_array_equal(np.asarray(ln.get_ydata()), v[:, 0, j])
    raster_ax = fig.axes[0]
    assert raster_ax.get_ylim()[1] == pytest.approx(20 - 0.5)  # only the 20 spiking neurons are stacked
    assert "out" not in [t.get_text() for t in raster_ax.texts]
    _assert_legends_outside(fig)
    # all panels on one time axis
    assert len({ax.get_xlim() for ax in fig.axes}) == 1


def test_raster_readout_without_trace_says_so(tmp_path, monkeypatch):
    res = ns.simulate(_net(), {}, 50, seed=1)  # no traces recorded
    assert res.meta["readouts"] == ["out"]
    figures = _capture(monkeypatch, plot)
    plot.raster(res, tmp_path / "r.png")
    texts = [t.get_text() for ax in figures[0].axes for t in ax.texts]
    assert any("v of out not recorded" in t for t in texts), texts


def test_overlay_shares_time_axis_and_labels_readouts(result, tmp_path, monkeypatch):
    agreement = pytest.importorskip("mapping.agreement")
    from mapping import agreement_plots

    figures = _capture(monkeypatch, agreement_plots)
    other = ns.simulate(_net(), {}, 100, seed=1, traces={"hidden": ["v"], "out": ["v"]})
    ref = ns.simulate(_net(), {}, 100, seed=1, traces={"hidden": ["v"], "out": ["v"]})
    agreement.plot_overlay(ref, other, str(tmp_path / "o.png"), title="t", readouts=["out"])
    fig = figures[0]
    axes = [ax for ax in fig.axes if ax.get_legend() is not None or ax.get_lines() or ax.collections]
    assert len(axes) == 3  # hidden raster, out readout, focus trace
    limits = {ax.get_xlim() for ax in axes}
    assert limits == {(0.0, 100 * 1e-3 * 1e3)}, limits
    # the readout panel has a legend naming each neuron and the line styles
    labels = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert labels == ["out[0]", "out[1]", "out[2]", "reference", "target"]
    assert len(_lines_with_data(axes[1])) == 6  # 3 neurons x (reference, target)
    _assert_legends_outside(fig)


def test_demo_rasters_readout_lines_and_legend_outside(result, tmp_path, monkeypatch):
    demo_report = pytest.importorskip("neurosim.cli.demo_report")
    figures = _capture(monkeypatch, demo_report)
    other = ns.simulate(_net(), {}, 100, seed=1, traces={"out": ["v"]})
    demo_report.plot_rasters({"neurosim": result, "again": other}, str(tmp_path / "d.png"), _net())
    fig = figures[0]
    assert len(fig.axes) == 4  # 2 simulators x (raster, readout)
    for ax in fig.axes[2:]:
        assert len(_lines_with_data(ax)) == 3
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["hidden spikes", "out[0] v", "out[1] v", "out[2] v"]
    _assert_legends_outside(fig)
    assert len({ax.get_xlim() for ax in fig.axes}) == 1


def test_demo_report_configuration_gives_trial_counts_used(tmp_path, monkeypatch):
    """Without --n-train the table showed 'n_train = None'; it now gives the count trained on."""
    pytest.importorskip("torch")
    pytest.importorskip("brian2")
    from neurosim.cli import demo

    monkeypatch.setattr(demo, "DEMO_N_TRAIN", {"store_recall": 40})  # the demo's own default, made small
    config = demo.DemoConfig(hidden=8, epochs=1, n_test=16, n_check=1, backend="numpy", targets=("fixed",))
    assert config.n_train is None
    res = demo.run_demo(config, str(tmp_path), progress=False, log=lambda *_: None)
    with open(res.files["report"]) as f:
        lines = f.read().splitlines()
    table = lines[lines.index("## Configuration") + 2:]
    assert "n_train = 40" in table and "n_test = 16" in table
    assert not any(line.startswith("n_train = None") for line in table)


# ------------------------------------------------------------------------ shaped populations


@pytest.fixture(scope="module")
def conv_run():
    """A random conv network (l1: (C, H, W) conv layer, l2: pooled, f: flat, out: LI) on Poisson-like input."""
    from conv_nets import random_conv_network

    net = random_conv_network(0)
    rng = np.random.default_rng(3)
    x = rng.random((30, 2, net.input("in").size)) < 0.3
    res = ns.simulate(net, {"in": x}, 30, traces={"out": ["v"]})
    assert res.spikes["l1"].step.size > 0
    return net, res


def test_activity_maps_one_image_per_channel_with_the_counts(conv_run, tmp_path, monkeypatch):
    net, res = conv_run
    shapes = {p.name: p.shape for p in net.populations if len(p.shape) > 1}
    figures = _capture(monkeypatch, plot)
    plot.activity_maps(res, tmp_path / "a.png", shapes, trial=1)
    assert (tmp_path / "a.png").stat().st_size > 0
    images = [ax.images[0] for ax in figures[0].axes if ax.images]
    assert len(images) == sum(s[0] for s in shapes.values())  # one image per channel of every shaped layer
    l1 = net.population("l1").shape
    counts = res.spikes["l1"].counts()[1].reshape(l1)  # counts of trial 1, (C, H, W) in C order
    for c in range(l1[0]):
        assert np.array_equal(np.asarray(images[c].get_array()), counts[c])
    diff_figs = _capture(monkeypatch, plot)
    plot.activity_maps(res, tmp_path / "d.png", shapes, reference=res)  # a result against itself: all zero
    assert all(not np.asarray(ax.images[0].get_array()).any() for ax in diff_figs[-1].axes if ax.images)
    with pytest.raises(ns.NetworkError, match="shapes"):
        plot.activity_maps(res, tmp_path / "x.png", {"f": (net.population("f").size,)})


def test_raster_bands_channels_of_shaped_populations(conv_run, tmp_path, monkeypatch):
    net, res = conv_run
    figures = _capture(monkeypatch, plot)
    plot.raster(res, tmp_path / "r.png", shapes={p.name: p.shape for p in net.populations})
    ax = figures[0].axes[0]
    spans = [p for p in ax.patches]  # axhspan: one per odd channel of every shaped population
    want = sum(p.shape[0] // 2 for p in net.populations if len(p.shape) > 1 and p.spiking)
    assert len(spans) == want and want > 0
    labels = [t.get_text() for t in ax.texts]
    assert "c0" in labels and "c1" in labels


def test_demo_rasters_and_overlay_band_shaped_layers(conv_run, tmp_path, monkeypatch):
    from mapping import agreement_plots

    from neurosim.cli import demo_report

    net, res = conv_run
    figures = _capture(monkeypatch, demo_report)
    demo_report.plot_rasters({"neurosim": res, "again": res}, str(tmp_path / "r.png"), net)
    assert any(ax.patches for ax in figures[0].axes)
    overlays = _capture(monkeypatch, agreement_plots)
    shapes = {p.name: p.shape for p in net.populations}
    agreement_plots.plot_overlay(res, res, str(tmp_path / "o.png"), readouts=["out"], shapes=shapes)
    l1 = overlays[0].axes[0]
    # every neuron of the shaped layer is shown (not the first 200 of a flat one), banded per channel
    assert l1.get_ylim() == (-0.5, net.population("l1").size - 0.5) and l1.patches
    demo_report.plot_activity(res, str(tmp_path / "a.png"), net)
    assert (tmp_path / "a.png").stat().st_size > 0

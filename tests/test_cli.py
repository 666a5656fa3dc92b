"""The command line: every subcommand in-process through ``main(argv)``, plus one real
``python -m neurosim`` subprocess. User errors must give exit code 2 and one line on stderr."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

import neurosim as ns
from neurosim import plot, storage
from neurosim.cli import build_parser, main

from cli_support import (STEPS, ROOT, leftovers, model, npz, one_error_line, result_file,  # noqa: F401 (fixtures)
                         small_network, spikes_in)


# ------------------------------------------------------------------------------------ simulate


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_simulate_matches_the_python_api(tmp_path, model, npz, capsys, backend):
    out = str(tmp_path / "out.h5")
    assert main(["simulate", model, "--steps", str(STEPS), "--input", npz, "--seed", "3",
                 "--backend", backend, "--no-progress", "--out", out]) == 0
    stdout = capsys.readouterr().out
    assert out in stdout and "Hz" in stdout and backend in stdout
    got = storage.load_result(out)
    ref = ns.simulate(small_network(), {"in": spikes_in()}, STEPS, seed=3)
    assert got.backend == backend and got.seed == 3 and got.steps == STEPS
    assert set(got.spikes) == {"a", "b", "in", "poi"}
    assert sum(len(ref.spikes[p]) for p in ("a", "b")) > 0
    for name, trains in ref.spikes.items():
        np.testing.assert_array_equal(got.spikes[name].counts(), trains.counts(), err_msg=name)
        np.testing.assert_array_equal(got.spikes[name].step, trains.step, err_msg=name)
        np.testing.assert_array_equal(got.spikes[name].index, trains.index, err_msg=name)


def test_simulate_batched_input_traces_and_float32(tmp_path, model, capsys):
    path, out = str(tmp_path / "batch.npz"), str(tmp_path / "out.h5")
    x = spikes_in(STEPS + 50, batch=3).astype(bool)  # longer than --steps is fine
    np.savez(path, **{"in": x})
    assert main(["simulate", model, "--steps", str(STEPS), "--input", path, "--dtype", "float32", "--seed", "5",
                 "--trace", "b:v", "--trace", "a:i", "--no-progress", "--out", out]) == 0
    got = storage.load_result(out)
    ref = ns.simulate(small_network(), {"in": x}, STEPS, seed=5, dtype="float32", traces=["b:v", "a:i"])
    assert got.batch == 3 and got.dtype == "float32"
    for name, trains in ref.spikes.items():
        np.testing.assert_array_equal(got.spikes[name].counts(), trains.counts(), err_msg=name)
    np.testing.assert_array_equal(got.traces["b"]["v"], ref.traces["b"]["v"])
    assert got.traces["a"]["i"].shape == (STEPS, 3, 20)


def test_simulate_auto_prints_the_backend_and_progress_goes_to_stderr(tmp_path, model, npz, capsys):
    out = str(tmp_path / "out.h5")
    assert main(["simulate", model, "--steps", str(STEPS), "--input", npz, "--backend", "auto", "--out", out]) == 0
    captured = capsys.readouterr()
    chosen = ns.backends.resolve("auto")
    assert f"backend: auto -> {chosen}" in captured.out
    assert "step" in captured.err and "step/s" not in captured.out  # the tqdm bar is on stderr
    assert storage.load_result(out).backend == chosen


def test_simulate_without_spike_inputs_needs_no_npz(tmp_path, capsys):
    net = ns.Network(1e-3, populations=[ns.Population("p", 5, ns.LIF())],
                     projections=[ns.Projection("q_p", "q", "p", np.full((3, 5), 0.6))],
                     inputs=[ns.PoissonInput("q", 3, rate=200.0)])
    model, out = str(tmp_path / "m.h5"), str(tmp_path / "r.h5")
    storage.save(net, model)
    assert main(["simulate", model, "--steps", "300", "--batch", "2", "--no-progress", "--out", out]) == 0
    got = storage.load_result(out)
    ref = ns.simulate(net, steps=300, batch=2)
    np.testing.assert_array_equal(got.spikes["p"].counts(), ref.spikes["p"].counts())
    assert got.spikes["p"].counts().sum() > 0


# ---------------------------------------------------------------------------------- info, raster


def test_info_on_a_model(model, capsys):
    assert main(["info", model]) == 0
    out = capsys.readouterr().out
    assert "neurosim network" in out and "network 'small'" in out
    for word in ("population a", "population b", "input      in", "projection b_a", "dt: 0.001 s",
                 "2 populations, 2 inputs, 4 projections, 30 neurons", "max delay 3 steps"):
        assert word in out, word


def test_info_on_a_result(result_file, capsys):
    assert main(["info", result_file]) == 0
    out = capsys.readouterr().out
    res = storage.load_result(result_file)
    assert "neurosim result" in out and res.summary() in out
    assert "traces: a:v, a:i" in out and "seed 0" in out


def test_info_rejects_an_hdf5_file_of_another_kind(tmp_path, capsys):
    path = str(tmp_path / "other.h5")
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "something.else"
    assert main(["info", path]) == 2
    line = one_error_line(capsys)
    assert "other.h5" in line and "format" in line and "something.else" in line


def test_raster_writes_a_png(tmp_path, result_file, capsys):
    import matplotlib.image

    png = str(tmp_path / "raster.png")
    assert main(["raster", result_file, "--png", png]) == 0
    assert png in capsys.readouterr().out
    img = matplotlib.image.imread(png)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 500
    assert img[..., :3].std() > 0.01  # not a blank canvas
    png2 = str(tmp_path / "raster_b.png")
    assert main(["raster", result_file, "--png", png2, "--populations", "b,in", "--trial", "0",
                 "--max-points", "50"]) == 0
    assert matplotlib.image.imread(png2).shape[0] > 300
    assert leftovers(tmp_path) == []  # no temporary files left behind


@pytest.mark.parametrize("args, needle", [
    (["--populations", "a,nope"], "nope"),
    (["--trial", "4"], "--trial 4"),
])
def test_raster_bad_selection(tmp_path, result_file, capsys, args, needle):
    png = tmp_path / "r.png"
    assert main(["raster", result_file, "--png", str(png), *args]) == 2
    line = one_error_line(capsys)
    assert needle in line and "out.h5" in line
    assert not png.exists()


def test_raster_subsamples_evenly_and_says_so(monkeypatch):
    res = ns.simulate(small_network(), {"in": spikes_in()}, STEPS)
    n_spikes = len(res.spikes["a"]) + len(res.spikes["b"])
    assert n_spikes > 40
    figures = []
    monkeypatch.setattr(plot, "_save_atomic", lambda fig, path: figures.append(fig))
    plot.raster(res, "unused.png", max_points=20, title="T")
    plot.raster(res, "unused.png")
    top = figures[0].axes[0]
    assert f"showing 20 of {n_spikes} spikes" in top.get_title() and top.get_title().startswith("T")
    assert sum(len(c.get_offsets()) for c in top.collections) == 20
    assert f"{n_spikes} spikes" in figures[1].axes[0].get_title() and "showing" not in figures[1].axes[0].get_title()
    assert sum(len(c.get_offsets()) for c in figures[1].axes[0].collections) == n_spikes


def test_plot_functions_directly(tmp_path):
    import matplotlib.image

    net = small_network()
    res = ns.simulate(net, {"in": spikes_in(batch=2)}, STEPS, traces={"a": ["v", "threshold"]})
    plot.raster(res, tmp_path / "all.png", max_points=20, title="subsampled")
    plot.raster(res.spikes, tmp_path / "map.png", trial=1, dt=net.dt)
    plot.raster(res.spikes["a"], tmp_path / "one.png")  # no dt: axis in steps
    plot.traces(res, tmp_path / "v.png", "a", "v", neurons=(0, 5), trial=1)
    for name in ("all.png", "map.png", "one.png", "v.png"):
        assert matplotlib.image.imread(tmp_path / name).shape[0] > 200, name
    with pytest.raises(ns.NetworkError, match="traces.b"):
        plot.traces(res, tmp_path / "x.png", "b")
    with pytest.raises(ns.NetworkError, match="neurons"):
        plot.traces(res, tmp_path / "x.png", "a", neurons=(25,))
    with pytest.raises(ns.NetworkError, match="trial"):
        plot.raster(res, tmp_path / "x.png", trial=2)
    assert not (tmp_path / "x.png").exists() and leftovers(tmp_path) == []


# ------------------------------------------------------------------------------- bad input → 2


def _truncate(path: str) -> None:
    with open(path, "rb") as fh:
        data = fh.read()
    with open(path, "wb") as fh:
        fh.write(data[: len(data) // 2])


def _edit(path: str, edit) -> None:
    with h5py.File(path, "r+") as f:
        edit(f)


def _nan_weight(f):
    f["projections/in_a/weights"][0, 0] = np.nan


def _string_weights(f):
    w = f["projections/in_a/weights"]
    shape = w.shape
    del f["projections/in_a/weights"]
    f["projections/in_a/weights"] = np.full(shape, b"0.5")


def _negative_delay(f):
    f["projections/a_b/delay"][()] = -1


def _missing_group(f):
    del f["projections"]


@pytest.mark.parametrize("case, needles", [
    ("missing", ["nothere.h5"]),
    ("truncated", ["model.h5"]),
    ("nan", ["model.h5", "projections/in_a/weights", "NaN"]),
    ("dtype", ["model.h5", "projections/in_a/weights"]),
    ("delay", ["model.h5", "projections/a_b/delay", ">= 1"]),
    ("group", ["model.h5", "projections", "missing"]),
])
def test_bad_model_files(tmp_path, model, npz, capsys, case, needles):
    if case == "missing":
        model = str(tmp_path / "nothere.h5")
    elif case == "truncated":
        _truncate(model)
    else:
        _edit(model, {"nan": _nan_weight, "dtype": _string_weights, "delay": _negative_delay,
                      "group": _missing_group}[case])
    out = tmp_path / "out.h5"
    assert main(["simulate", model, "--steps", "10", "--input", npz, "--no-progress", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    for needle in needles:
        assert needle in line, (needle, line)
    assert not out.exists()
    assert main(["info", model]) == 2
    assert needles[0] in one_error_line(capsys)


@pytest.mark.parametrize("case, needles", [
    ("unknown key", ["in.npz", "bogus"]),
    ("poisson key", ["in.npz", "poi", "PoissonInput"]),
    ("missing key", ["'in'", "--input"]),
    ("wrong size", ["in.npz", "in", "(200, 5)"]),
    ("too short", ["in.npz", "in", "T >= 200"]),
    ("4-D", ["in.npz", "in", "shape"]),
    ("not 0/1", ["in.npz", "in", "whole numbers", "0.5"]),
    ("strings", ["in.npz", "in", "event counts", "dtype"]),
    ("batch mismatch", ["in.npz", "in", "--batch"]),
    ("not an npz", ["in.npz", ".npz"]),
    ("no file", ["in.npz"]),
])
def test_bad_inputs(tmp_path, model, capsys, case, needles):
    path, out = tmp_path / "in.npz", tmp_path / "out.h5"
    good = spikes_in()
    arrays = {
        "unknown key": {"in": good, "bogus": good},
        "poisson key": {"in": good, "poi": np.zeros((STEPS, 4))},
        "missing key": {},
        "wrong size": {"in": np.zeros((STEPS, 5))},
        "too short": {"in": good[:100]},
        "4-D": {"in": np.zeros((STEPS, 1, 1, 6))},
        "not 0/1": {"in": np.where(good > 0, 0.5, 0)},  # counts (whole numbers) are accepted, fractions not
        "strings": {"in": np.full((STEPS, 6), "1")},
        "batch mismatch": {"in": spikes_in(batch=3)},
    }.get(case)
    if arrays is not None:
        np.savez(path, **arrays)
    elif case == "not an npz":
        path.write_text("this is not an archive\n")
    extra = ["--batch", "2"] if case == "batch mismatch" else []
    args = [] if case == "missing key" else ["--input", str(path)]
    assert main(["simulate", model, "--steps", str(STEPS), *args, *extra, "--no-progress", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    for needle in needles:
        assert needle in line, (needle, line)
    assert not out.exists()


def test_unknown_backend_is_a_usage_error(tmp_path, model, npz, capsys):
    assert main(["simulate", model, "--steps", "10", "--input", npz, "--backend", "gpu",
                 "--out", str(tmp_path / "o.h5")]) == 2
    line = one_error_line(capsys)
    assert "--backend" in line and "'gpu'" in line


def test_cupy_without_a_gpu_is_a_clean_error(tmp_path, model, npz, capsys):
    if ns.backends.available()["cupy"] == "":
        pytest.skip("a CUDA device is usable here: --backend cupy would run")
    out = tmp_path / "o.h5"
    assert main(["simulate", model, "--steps", "10", "--input", npz, "--backend", "cupy", "--no-progress",
                 "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert "cupy" in line
    assert not out.exists()


@pytest.mark.parametrize("case", ["no such dir", "parent is a file", "out is a dir", "read-only dir"])
def test_unwritable_out(tmp_path, model, npz, capsys, case):
    if case == "no such dir":
        out = tmp_path / "no" / "such" / "out.h5"
    elif case == "parent is a file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "out.h5"
    elif case == "out is a dir":
        out = tmp_path / "adir"
        out.mkdir()
    else:
        if os.geteuid() == 0:
            pytest.skip("root can write into a read-only directory")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        out = ro / "out.h5"
    assert main(["simulate", model, "--steps", "10", "--input", npz, "--no-progress", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert "--out" in line and str(out) in line
    assert case == "out is a dir" or not out.exists()


def test_keyboard_interrupt_exits_130_without_partial_files(tmp_path, model, npz, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules["neurosim.simulate"], "simulate", interrupted)
    out = tmp_path / "out.h5"
    assert main(["simulate", model, "--steps", "10", "--input", npz, "--no-progress", "--out", str(out)]) == 130
    assert "interrupted" in one_error_line(capsys)
    assert not out.exists() and leftovers(tmp_path) == []


def test_usage_errors_are_one_line(capsys):
    assert main([]) == 2
    assert "COMMAND" in one_error_line(capsys)
    assert main(["simulate", "m.h5", "--out", "o.h5"]) == 2  # --steps is required
    assert "--steps" in one_error_line(capsys)
    assert main(["simulate", "m.h5", "--steps", "0", "--out", "o.h5"]) == 2
    assert "--steps" in one_error_line(capsys)
    assert main(["simulate", "m.h5", "--steps", "5", "--trace", "a", "--out", "o.h5"]) == 2
    assert "POPULATION:VARIABLE" in one_error_line(capsys)


def test_trace_of_an_unknown_population(tmp_path, model, npz, capsys):
    assert main(["simulate", model, "--steps", "10", "--input", npz, "--trace", "zz:v", "--no-progress",
                 "--out", str(tmp_path / "o.h5")]) == 2
    line = one_error_line(capsys)
    assert "--trace zz:v" in line and "'zz'" in line


# ------------------------------------------------------------------------ help, version, backends


def test_every_option_has_help(capsys):
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == {"simulate", "info", "raster", "example", "backends", "cuba", "demo", "train",
                                       "export", "import", "crosscheck", "plot-traces", "map"}
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, (name, action.dest)
        assert main([name, "--help"]) == 0
        assert "usage: neurosim " + name in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"neurosim {ns.__version__}"


def test_backends_lists_all(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "numpy  usable" in out and "cupy" in out and f"auto -> {ns.backends.resolve('auto')}" in out
    torch = pytest.importorskip("torch")
    line = out.strip().splitlines()[-1]
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert line.startswith(f"training: --device auto -> {want} (") and torch.__version__ in line


def test_python_dash_m_entry_point():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "neurosim", "--help"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: neurosim" in proc.stdout and "simulate" in proc.stdout and "demo" in proc.stdout

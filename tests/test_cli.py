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

STEPS = 200
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_network() -> ns.Network:
    """A SpikeInput 'in' (6), a PoissonInput 'poi' (4), LIF 'a' (20) and 'b' (10); dense and CSR
    projections, a delay of 2 steps on 'a_b' (scalar) and per-synapse delays on 'b_a'."""
    r = np.random.default_rng(7)
    csr = ns.CSR.from_dense(r.normal(0.0, 0.6, (10, 20)) * (r.random((10, 20)) < 0.3))
    return ns.Network(
        dt=1e-3,
        populations=[ns.Population("a", 20, ns.LIF(beta=0.9, alpha=0.5, theta=1.0), v0=r.uniform(0, 1, 20)),
                     ns.Population("b", 10, ns.LIF(beta=0.8, theta=0.8, reset="zero", refractory=2))],
        projections=[ns.Projection("in_a", "in", "a", r.normal(0.5, 0.3, (6, 20))),
                     ns.Projection("poi_a", "poi", "a", r.normal(0.3, 0.2, (4, 20))),
                     ns.Projection("a_b", "a", "b", r.normal(0.3, 0.3, (20, 10)), delay=2),
                     ns.Projection("b_a", "b", "a", csr, delay=r.integers(1, 4, csr.nnz))],
        inputs=[ns.SpikeInput("in", 6), ns.PoissonInput("poi", 4, rate=80.0)],
        name="small",
    )


def spikes_in(steps: int = STEPS, batch: int | None = None, seed: int = 1) -> np.ndarray:
    shape = (steps, 6) if batch is None else (steps, batch, 6)
    return (np.random.default_rng(seed).random(shape) < 0.2).astype(np.int8)


@pytest.fixture
def model(tmp_path) -> str:
    path = str(tmp_path / "model.h5")
    storage.save(small_network(), path)
    return path


@pytest.fixture
def npz(tmp_path) -> str:
    path = str(tmp_path / "in.npz")
    np.savez(path, **{"in": spikes_in()})
    return path


@pytest.fixture
def result_file(tmp_path, model, npz, capsys) -> str:
    out = str(tmp_path / "out.h5")
    assert main(["simulate", model, "--steps", str(STEPS), "--input", npz, "--batch", "1",
                 "--trace", "a:v", "a:i", "--no-progress", "--out", out]) == 0
    capsys.readouterr()
    return out


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    assert lines[0].startswith("neurosim: error: "), err
    assert "Traceback" not in err
    return lines[0]


def leftovers(directory) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.startswith("."))


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


def test_python_dash_m_entry_point():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "neurosim", "--help"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage: neurosim" in proc.stdout and "simulate" in proc.stdout and "demo" in proc.stdout


# --------------------------------------------------------------------------------- example, demo


def test_example_cuba(tmp_path, capsys):
    pytest.importorskip("assets.cuba", reason="assets/cuba.py is not in this checkout")
    out = str(tmp_path / "cuba.h5")
    assert main(["example", "cuba", "--n", "400", "--seed", "2", "--out", out]) == 0
    assert out in capsys.readouterr().out
    net = storage.load(out)
    assert net.n_neurons == 400 and [p.name for p in net.populations] == ["exc", "inh"]
    assert net.dt == pytest.approx(1e-4) and net.n_synapses > 0
    from assets.cuba import cuba_network

    assert net.n_synapses == cuba_network(400, seed=2).n_synapses


def test_example_small_lif(tmp_path, capsys):
    if not os.path.exists(os.path.join(ROOT, "assets", "small_lif.h5")):
        pytest.skip("assets/small_lif.h5 is not in this checkout")
    out = str(tmp_path / "small.h5")
    assert main(["example", "small_lif", "--out", out]) == 0
    assert storage.load(out).n_neurons == storage.load(os.path.join(ROOT, "assets", "small_lif.h5")).n_neurons


def test_example_small_lif_code_path(tmp_path, model, capsys, monkeypatch):
    """Without relying on the bundled file: a model found in the assets folder is copied through
    load and save; a missing one is a one-line error."""
    assets = pytest.importorskip("assets")
    fake = tmp_path / "pkg"
    fake.mkdir()
    monkeypatch.setattr(assets, "__file__", str(fake / "__init__.py"))
    out = tmp_path / "copy.h5"
    assert main(["example", "small_lif", "--out", str(out)]) == 2
    assert "small_lif.h5" in one_error_line(capsys) and not out.exists()
    os.replace(model, fake / "small_lif.h5")
    assert main(["example", "small_lif", "--out", str(out)]) == 0
    assert storage.load(str(out)).summary() == small_network().summary()


def test_demo_small(tmp_path, capsys):
    pytest.importorskip("assets.cuba", reason="assets/cuba.py is not in this checkout")
    out = tmp_path / "demo"
    assert main(["cuba", "--out", str(out), "--n", "400", "--steps", "500", "--backend", "numpy",
                 "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    for name in ("model.h5", "result.h5", "raster.png", "summary.md"):
        assert (out / name).is_file(), name
        assert str(out / name) in stdout
    net, res = storage.load(str(out / "model.h5")), storage.load_result(str(out / "result.h5"))
    assert net.n_neurons == 400 and res.steps == 500 and res.backend == "numpy"
    summary = (out / "summary.md").read_text()
    for name, rate in res.rates_hz().items():
        assert f"| {name} | {res.spikes[name].size} | {len(res.spikes[name])} | {rate:.2f} |" in summary
    events = 0
    for proj in net.projections:  # spikes of the sender times its synapses in this projection
        csr, _ = proj.to_csr()
        events += int(res.spikes[proj.pre].counts().sum(axis=0) @ np.diff(csr.indptr))
    assert f"synaptic events: {events} " in summary and events > 0
    assert summary.startswith("# neurosim cuba: CUBA network, 400 neurons, 0.05 s\n")
    for word in ("rate (Hz)", "numpy", "Python", "run", "total", "backend **numpy**"):
        assert word in summary, word
    assert leftovers(out) == []


# ------------------------------------------------------------------- an output never an input


@pytest.mark.parametrize("case", ["simulate --out MODEL", "simulate --out ./MODEL", "simulate --out link",
                                  "simulate --out --input", "raster --png OUT"])
def test_an_output_that_is_an_input_is_refused(tmp_path, model, npz, capsys, case):
    if case == "raster --png OUT":
        res = str(tmp_path / "res.png")  # a result file that happens to be named .png
        assert main(["simulate", model, "--steps", "20", "--input", npz, "--no-progress", "--out", res]) == 0
        capsys.readouterr()
        victim, argv = res, ["raster", res, "--png", res]
        expected = f"--png {res}: is the same file as the input OUT.h5 {res}"
    else:
        out = {"simulate --out MODEL": model, "simulate --out ./MODEL": os.path.join(str(tmp_path), ".", "model.h5"),
               "simulate --out link": str(tmp_path / "link.h5"), "simulate --out --input": npz}[case]
        if case == "simulate --out link":
            os.symlink(model, out)
        victim = npz if case == "simulate --out --input" else model
        argv = ["simulate", model, "--steps", "20", "--input", npz, "--no-progress", "--out", out]
        expected = f"--out {out}: is the same file as the input " + (
            f"--input {npz}" if victim == npz else f"MODEL.h5 {model}")
    before = open(victim, "rb").read()
    assert main(argv) == 2
    assert one_error_line(capsys) == (f"neurosim: error: {expected}; writing it would destroy the input, "
                                      f"choose another {argv[-2]}")
    assert open(victim, "rb").read() == before and leftovers(tmp_path) == []


def test_same_file_compares_resolved_paths_when_the_output_does_not_exist(tmp_path):
    from neurosim.paths import same_file

    (tmp_path / "a.h5").write_text("x")
    (tmp_path / "d").mkdir()
    assert same_file(str(tmp_path / "d" / ".." / "a.h5"), str(tmp_path / "a.h5"))
    assert not same_file(str(tmp_path / "new.h5"), str(tmp_path / "a.h5"))
    assert same_file(str(tmp_path / "d" / ".." / "new.h5"), str(tmp_path / "new.h5"))


# ------------------------------------------------------------------------ seeds, sizes, memory

SEED_ERROR = "argument --seed: expected a whole number >= 0 and < 2**63, got "


@pytest.mark.parametrize("seed", ["-1", str(2**63), "99999999999999999999999", "1.5", "x"])
@pytest.mark.parametrize("command", ["simulate", "cuba", "example", "crosscheck", "demo", "train"])
def test_every_seed_option_is_checked_in_one_place(tmp_path, model, npz, capsys, seed, command):
    out = tmp_path / "out"
    argv = {"simulate": ["simulate", model, "--steps", "5", "--input", npz, "--out", str(out)],
            "cuba": ["cuba", "--steps", "5", "--out", str(out)],
            "example": ["example", "cuba", "--out", str(out)],
            "crosscheck": ["crosscheck", model, "--steps", "5", "--input", npz, "--report", str(out)],
            "demo": ["demo", "--out", str(out)],
            "train": ["train", "--task", "digits", "--out", str(out)]}[command]
    assert main([*argv, "--seed", seed]) == 2
    assert one_error_line(capsys) == (f"neurosim: error: {command}: {SEED_ERROR}{seed!r} "
                                      f"(see 'neurosim {command} --help')")
    assert not out.exists()


def test_the_largest_seed_runs_and_is_stored(tmp_path, model, npz, capsys):
    out = str(tmp_path / "out.h5")
    assert main(["simulate", model, "--steps", "20", "--input", npz, "--seed", str(2**63 - 1), "--no-progress",
                 "--out", out]) == 0
    assert storage.load_result(out).seed == 2**63 - 1
    for bad in (-1, 2**63, 1.0, True):
        with pytest.raises(ns.NetworkError, match=r"^seed: expected a whole number >= 0 and < 2\*\*63, got "):
            ns.simulate(small_network(), {"in": spikes_in()}, 10, seed=bad)


def _memory_error() -> MemoryError:
    """numpy's own MemoryError subclass, as a failed allocation raises it."""
    try:
        from numpy._core._exceptions import _ArrayMemoryError
    except ImportError:
        from numpy.core._exceptions import _ArrayMemoryError
    return _ArrayMemoryError((10**11,), np.dtype(np.float64))


OOM_LINE = ("neurosim: error: out of memory: Unable to allocate 745. GiB for an array with shape (100000000000,) "
            "and data type float64; use smaller sizes")


def test_a_size_beyond_memory_is_one_line(tmp_path, model, npz, capsys):
    out = tmp_path / "o.h5"  # (trials, neurons) float64 state of 10**13 trials: beyond any address space
    assert main(["simulate", model, "--steps", "10", "--input", npz, "--batch", str(10**13), "--no-progress",
                 "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert line.startswith("neurosim: error: out of memory: Unable to allocate ") and line.endswith(
        "for an array with shape (10000000000000, 30) and data type float64; use smaller sizes")
    assert not out.exists() and leftovers(tmp_path) == []


def test_out_of_memory_in_example_and_train_is_one_line(tmp_path, capsys, monkeypatch):
    import neurosim.cli.examples as examples

    def too_big(*args, **kwargs):
        raise _memory_error()

    monkeypatch.setattr(examples, "build_cuba", too_big)
    out = tmp_path / "e.h5"
    assert main(["example", "cuba", "--n", str(10**11), "--out", str(out)]) == 2
    assert one_error_line(capsys) == OOM_LINE
    assert not out.exists()
    pytest.importorskip("torch")
    import training.trainer

    monkeypatch.setattr(training.trainer, "train", too_big)  # neurosim train runs through the same main
    assert main(["train", "--task", "digits", "--no-progress", "--out", str(tmp_path / "run")]) == 2
    assert one_error_line(capsys) == OOM_LINE


# ------------------------------------------------------------- failed runs leave nothing behind


def test_cuba_that_fails_leaves_no_directory_and_no_partial_files(tmp_path, capsys, monkeypatch):
    pytest.importorskip("assets.cuba", reason="assets/cuba.py is not in this checkout")
    import neurosim.cli.examples as examples

    def plot_fails(*args, **kwargs):  # after model.h5 and result.h5 were written
        raise _memory_error()

    monkeypatch.setattr(plot, "raster", plot_fails)
    fresh = tmp_path / "a" / "b"
    argv = ["cuba", "--n", "100", "--steps", "20", "--backend", "numpy", "--no-progress", "--out"]
    assert main([*argv, str(fresh)]) == 2
    assert one_error_line(capsys) == OOM_LINE
    assert os.listdir(tmp_path) == []  # both directories it made are gone
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    (kept / "sub").mkdir()
    assert main([*argv, str(kept)]) == 2
    capsys.readouterr()
    assert sorted(os.listdir(kept)) == ["notes.txt", "sub"] and (kept / "notes.txt").read_text() == "mine"
    monkeypatch.setattr(examples, "build_cuba", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert main([*argv, str(fresh)]) == 130
    assert "interrupted" in one_error_line(capsys) and not (tmp_path / "a").exists()


def test_cuba_checks_the_backend_before_making_the_directory(tmp_path, capsys):
    if ns.backends.available()["cupy"] == "":
        pytest.skip("a CUDA device is usable here: --backend cupy would run")
    out = tmp_path / "c2"
    assert main(["cuba", "--backend", "cupy", "--n", "100", "--steps", "5", "--no-progress", "--out", str(out)]) == 2
    assert "cupy" in one_error_line(capsys) and not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--task", "foo"], "--task foo: expected one of adding, copy, delayed_copy, delayed_xor, digits, evidence, "
                        "nmnist_digits, store_recall"),
    (["--rule", "tbptt"], "--rule tbptt: the demo trains with one of bptt, ottt, eprop, ratebp (for other rules "
                          "use 'neurosim train')"),
    (["--against", "brian2,brian2"], "--against: target 'brian2' is named twice; name each target once"),
])
def test_demo_checks_its_options_before_making_the_directory(tmp_path, capsys, args, message):
    pytest.importorskip("torch")
    out = tmp_path / "d1"
    assert main(["demo", *args, "--backend", "numpy", "--no-progress", "--out", str(out)]) == 2
    assert one_error_line(capsys) == f"neurosim: error: {message}"
    assert not out.exists()


def test_demo_that_fails_removes_its_directory_unless_a_checkpoint_was_saved(tmp_path, capsys, monkeypatch):
    pytest.importorskip("torch")
    import mapping.agreement
    import training.trainer

    def fails(*args, **kwargs):
        raise ns.NeurosimError("injected failure")

    small = ["demo", "--hidden", "8", "--epochs", "1", "--n-train", "16", "--n-test", "8", "--n-check", "1",
             "--backend", "numpy", "--no-progress", "--out"]
    monkeypatch.setattr(training.trainer, "train", fails)  # before anything resumable exists
    assert main([*small, str(tmp_path / "d1")]) == 2
    assert one_error_line(capsys) == "neurosim: error: injected failure"
    assert os.listdir(tmp_path) == []
    monkeypatch.undo()
    monkeypatch.setattr(mapping.agreement, "crosscheck", fails)  # after training saved its checkpoint
    assert main([*small, str(tmp_path / "d2")]) == 2
    capsys.readouterr()
    assert (tmp_path / "d2" / "train" / "checkpoint.pt").is_file()


# ---------------------------------------------------------------------------- clear messages


def test_paths_that_are_files_or_directories_are_named_as_such(tmp_path, result_file, capsys):
    (tmp_path / "text.txt").write_text("x")
    (tmp_path / "adir").mkdir()
    text, adir = str(tmp_path / "text.txt"), str(tmp_path / "adir")
    assert main(["raster", result_file, "--png", os.path.join(text, "x.png")]) == 2
    assert one_error_line(capsys) == f"neurosim: error: --png {text}/x.png: {text} is not a directory"
    assert main(["simulate", adir, "--steps", "5", "--out", str(tmp_path / "o.h5")]) == 2
    assert one_error_line(capsys) == (f"neurosim: error: {adir}: is a directory; expected an HDF5 file written "
                                      "by neurosim")
    assert main(["info", adir]) == 2
    assert one_error_line(capsys) == f"neurosim: error: {adir}: is a directory"
    assert main(["cuba", "--out", text]) == 2
    assert one_error_line(capsys) == f"neurosim: error: --out {text}: exists and is not a directory"
    assert main(["cuba", "--out", os.path.join(text, "sub")]) == 2
    assert one_error_line(capsys) == f"neurosim: error: --out {text}/sub: {text} is not a directory"
    pytest.importorskip("nir")
    assert main(["import", adir, "--from", "nir", "--dt", "1e-3", "--out", str(tmp_path / "o.h5")]) == 2
    assert one_error_line(capsys) == f"neurosim: error: {adir}: is a directory; expected a NIR HDF5 file"
    pytest.importorskip("torch")
    assert main(["demo", "--backend", "numpy", "--out", text]) == 2
    assert one_error_line(capsys) == f"neurosim: error: --out {text}: exists and is not a directory"
    assert sorted(os.listdir(tmp_path)) == ["adir", "in.npz", "model.h5", "out.h5", "text.txt"]


@pytest.mark.parametrize("name", ["x.txt", "x.jpg", "x"])
def test_raster_writes_only_png_names(tmp_path, result_file, capsys, name):
    assert main(["raster", result_file, "--png", str(tmp_path / name)]) == 2
    assert one_error_line(capsys) == (f"neurosim: error: --png {tmp_path / name}: expected a file name ending in "
                                      ".png (the image is written as PNG)")
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("args, message", [
    (["cuba", "--n", "100", "--syn-per-neuron", "1000"],
     "--syn-per-neuron 1000: more than --n 100, the number of neurons each neuron can connect to; expected at most 100"),
    (["small_lif", "--n", "100"],
     "--n: example small_lif takes no options but --out and --seed (--n and --syn-per-neuron are for cuba)"),
])
def test_example_refuses_what_it_would_ignore_or_clip(tmp_path, capsys, args, message):
    out = tmp_path / "e.h5"
    assert main(["example", *args, "--out", str(out)]) == 2
    assert one_error_line(capsys) == f"neurosim: error: {message}"
    assert not out.exists()


def test_cuba_needs_enough_neurons_for_its_synapses(tmp_path, capsys):
    assert main(["cuba", "--n", "50", "--out", str(tmp_path / "c")]) == 2
    assert one_error_line(capsys) == ("neurosim: error: cuba: argument --n: expected a whole number >= 80, got '50' "
                                      "(see 'neurosim cuba --help')")
    assert not (tmp_path / "c").exists()


def test_cuba_network_refuses_more_synapses_per_neuron_than_neurons():
    from assets.cuba import cuba_network
    from neurosim.errors import NetworkError

    with pytest.raises(NetworkError, match="syn_per_neuron: expected 1 to n = 100 synapses per neuron, got 1000"):
        cuba_network(n=100, syn_per_neuron=1000)
    net = cuba_network(n=100, syn_per_neuron=100)  # every pair possible: each neuron sends 100 synapses
    assert sum(p.weights.nnz for p in net.projections) == 100 * 100


@pytest.mark.parametrize("argv, message", [
    (["raster", "r.h5", "--png", "r.png", "--trial", "x"], "raster: argument --trial: expected a whole number >= 0, got 'x'"),
    (["raster", "r.h5", "--png", "r.png", "--max-points", "0"],
     "raster: argument --max-points: expected a whole number >= 1, got '0'"),
    (["simulate", "m.h5", "--steps", "2.5", "--out", "o.h5"],
     "simulate: argument --steps: expected a whole number >= 1, got '2.5'"),
    (["crosscheck", "m.h5", "--steps", "-3", "--report", "r"],
     "crosscheck: argument --steps: expected a whole number >= 1, got '-3'"),
    (["train", "--task", "digits", "--epochs", "many", "--out", "r"],
     "train: argument --epochs: expected a whole number >= 1, got 'many'"),
])
def test_whole_number_options_say_what_they_expect(capsys, argv, message):
    assert main(argv) == 2
    assert one_error_line(capsys) == f"neurosim: error: {message} (see 'neurosim {argv[0]} --help')"

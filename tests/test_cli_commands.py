"""The command line, continued: example, demo, outputs that are inputs, seeds, memory, cuba and
whole-number options (shared fixtures: tests/cli_support.py)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import neurosim as ns
from neurosim import plot, storage
from neurosim.cli import main

from cli_support import (STEPS, ROOT, leftovers, model, npz, one_error_line, result_file,  # noqa: F401 (fixtures)
                         small_network, spikes_in)


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

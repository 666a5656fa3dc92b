"""The small CLI defects a newcomer hit (issue 25, item 4), each checked against the old
behaviour: cuba with few neurons, info on NIR and NetX files, --from on the wrong kind of
file, raster on a network file, simulate's default backend, the examples' default input and
the Brian2 export of a PoissonInput."""
from __future__ import annotations

import os

import numpy as np
import pytest

import neurosim as ns
from neurosim import storage
from neurosim.cli import main


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


def test_example_cuba_takes_the_smallest_n_its_help_allows(tmp_path, capsys):
    out = tmp_path / "c.h5"
    assert main(["example", "cuba", "--n", "10", "--out", str(out)]) == 0  # was: --syn-per-neuron 80 > --n 10
    net = storage.load(out)
    assert net.n_neurons == 10
    assert main(["example", "cuba", "--n", "50", "--syn-per-neuron", "60", "--out", str(out)]) == 2
    assert "--syn-per-neuron 60: more than --n 50" in _err(capsys)


def test_example_small_lif_comes_with_a_default_input_that_simulate_runs(tmp_path, capsys):
    model = tmp_path / "m.h5"
    assert main(["example", "small_lif", "--out", str(model)]) == 0
    out = capsys.readouterr().out
    npz = tmp_path / "m_input.npz"
    assert f"--input {npz}" in out and npz.exists()
    with np.load(npz) as data:
        assert set(data) == {"stim"} and data["stim"].shape == (1000, 10) and data["stim"].dtype == bool
        rate = data["stim"].mean() / 1e-3
    assert 40 < rate < 60  # 50 Hz at dt 1 ms: 10000 draws, p = 0.05, std of the rate 2.2 Hz
    res = tmp_path / "r.h5"
    assert main(["simulate", str(model), "--steps", "1000", "--input", str(npz), "--no-progress",
                 "--out", str(res)]) == 0
    assert storage.load_result(res).spikes["stim"].dense()[:, 0].sum() == data_sum(npz)
    assert main(["example", "small_lif", "--seed", "1", "--out", str(model)]) == 0
    with np.load(npz) as data:
        assert data["stim"].sum() != data_sum_of(res)  # another seed, other spikes


def data_sum(npz) -> int:
    with np.load(npz) as data:
        return int(data["stim"].sum())


def data_sum_of(res) -> int:
    return int(storage.load_result(res).spikes["stim"].dense().sum())


def test_simulate_defaults_to_auto_and_says_what_it_picked(tmp_path, capsys):
    from neurosim import backends

    model = tmp_path / "c.h5"
    assert main(["example", "cuba", "--n", "20", "--out", str(model)]) == 0
    capsys.readouterr()
    assert main(["simulate", str(model), "--steps", "20", "--no-progress", "--out", str(tmp_path / "r.h5")]) == 0
    picked = backends.resolve("auto")
    assert f"backend: auto -> {picked}" in capsys.readouterr().out
    assert storage.load_result(tmp_path / "r.h5").backend == picked


def test_raster_on_a_network_file_says_what_to_run(tmp_path, capsys):
    model = tmp_path / "c.h5"
    assert main(["example", "cuba", "--n", "20", "--out", str(model)]) == 0
    assert main(["raster", str(model), "--png", str(tmp_path / "r.png")]) == 2
    err = _err(capsys)
    assert "a neurosim network file, not a result" in err
    assert f"neurosim simulate {model} --steps T --out OUT.h5" in err and "neurosim raster OUT.h5" in err
    assert "neurosim.load" not in err and "(" not in err.split("simulate it with")[1].split("'")[0]


@pytest.fixture
def nir_and_netx(tmp_path):
    pytest.importorskip("nir")
    net = ns.Network(dt=1e-3, populations=[ns.Population("h", 4, ns.LIF(alpha=0.5, beta=0.9, theta=1.0, reset="zero"))],
                     projections=[ns.Projection("in_h", "in", "h", np.full((3, 4), 0.5))],
                     inputs=[ns.SpikeInput("in", 3)])
    model = tmp_path / "m.h5"
    storage.save(net, model)
    nir_file, netx_file = tmp_path / "m.nir", tmp_path / "m.net"
    assert main(["export", str(model), "--to", "nir", "--out", str(nir_file)]) == 0
    assert main(["export", str(model), "--to", "netx", "--out", str(netx_file)]) == 0
    return nir_file, netx_file


def test_info_describes_nir_and_netx_files(nir_and_netx, capsys):
    nir_file, netx_file = nir_and_netx
    capsys.readouterr()
    assert main(["info", str(nir_file)]) == 0  # was: refused (no 'format' attribute)
    out = capsys.readouterr().out
    assert f"{nir_file}: NIR graph" in out and "--from nir" in out and " -> " in out
    assert main(["info", str(netx_file)]) == 0
    out = capsys.readouterr().out
    assert f"{netx_file}: lava-dl NetX file" in out and "layer 0" in out


def test_import_from_the_wrong_format_names_the_files_kind(nir_and_netx, tmp_path, capsys):
    nir_file, netx_file = nir_and_netx
    capsys.readouterr()
    out = str(tmp_path / "o.h5")
    assert main(["import", str(nir_file), "--from", "netx", "--dt", "1e-3", "--out", out]) == 2
    err = _err(capsys)
    assert "this is a NIR graph" in err and "use --from nir" in err and "/layer: missing" not in err
    assert main(["import", str(netx_file), "--from", "nir", "--dt", "1e-3", "--out", out]) == 2
    err = _err(capsys)
    assert "this is a lava-dl NetX file" in err and "use --from netx" in err
    assert not os.path.exists(out)


def test_a_network_with_a_poisson_input_exports_to_brian2(tmp_path, capsys):
    pytest.importorskip("brian2")
    model = tmp_path / "m.h5"
    assert main(["example", "small_lif", "--out", str(model)]) == 0  # has PoissonInput 'noise'
    script = tmp_path / "m.py"
    assert main(["export", str(model), "--to", "brian2", "--out", str(script)]) == 0  # was: refused
    assert "exported EXACTLY" in script.read_text()
    assert main(["export", str(model), "--to", "brian2", "--poisson", "statistical", "--out", str(script)]) == 0
    assert "exported STATISTICALLY" in script.read_text()
    assert main(["export", str(model), "--to", "nir", "--poisson", "statistical", "--out", str(tmp_path / "x")]) == 2
    assert "--poisson statistical: only the brian2 export" in _err(capsys)

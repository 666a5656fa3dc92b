"""What the command-line tests share: a small network with every kind of projection and input,
its input spikes, model/input/result files as fixtures, and the one-error-line check."""
from __future__ import annotations

import os

import numpy as np
import pytest

import neurosim as ns
from neurosim import storage
from neurosim.cli import main

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

"""A small saved example model, `assets/small_lif.h5`: Poisson input -> recurrent LIF -> LI readout.

Regenerate with ``python -m assets.small``; the file is part of the package data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from neurosim import LI, LIF, Network, PoissonInput, Population, Projection, SpikeInput

PATH = Path(__file__).with_name("small_lif.h5")


def small_network(seed: int = 0) -> Network:
    """dt 1 ms; 20 Poisson (20 Hz) + 10 spike-array inputs -> 64 LIF (recurrent, delays 1-3) -> 4 LI."""
    rng = np.random.default_rng(seed)
    dt = 1e-3
    hidden = LIF.from_tau(dt, tau_mem=20e-3, tau_syn=5e-3, refractory_s=2e-3, theta=1.0)
    rec = rng.normal(0.0, 0.05, (64, 64)) * (rng.random((64, 64)) < 0.1)
    np.fill_diagonal(rec, 0.0)
    return Network(
        dt=dt, name="small_lif",
        inputs=[PoissonInput("noise", 20, rate=20.0), SpikeInput("stim", 10)],
        populations=[Population("hidden", 64, hidden), Population("readout", 4, LI.from_tau(dt, tau_mem=10e-3))],
        projections=[
            Projection("noise_hidden", "noise", "hidden", rng.normal(0.012, 0.006, (20, 64))),
            Projection("stim_hidden", "stim", "hidden", rng.normal(0.05, 0.02, (10, 64)), delay=2),
            Projection("hidden_hidden", "hidden", "hidden", rec, delay=rng.integers(1, 4, (64, 64))),
            Projection("hidden_readout", "hidden", "readout", rng.normal(0.0, 0.3, (64, 4))),
        ],
    )


if __name__ == "__main__":
    from neurosim.storage import save

    save(small_network(), PATH)
    print(f"wrote {PATH}")

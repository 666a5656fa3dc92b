"""Standard trainable network: input -> recurrent LIF/ALIF hidden layer -> LI readout (layered and
convolutional models: training.layered)."""
from __future__ import annotations

from typing import Literal

import numpy as np

from neurosim import ALIF, LI, LIF, Network, Population, Projection, SpikeInput
from neurosim.errors import NetworkError


def recurrent_network(n_in: int, n_hidden: int, n_out: int, *, model: Literal["lif", "alif"] = "alif",
                      dt: float = 1e-3, tau_mem: float = 20e-3, tau_adapt: float = 200e-3,
                      adapt: float = 1.8, alif_fraction: float = 0.5, recurrent: bool = True,
                      delay: int = 1, seed: int = 0) -> Network:
    """'in' (SpikeInput) -> 'hidden' (LIF, or ALIF as in LSNN: a fraction `alif_fraction` adaptive)
    -> 'out' (LI readout, tau_mem); weights ~ N(0, 1/fan_in) (times theta = 1), no self-loops."""
    if model not in ("lif", "alif"):
        raise NetworkError("model", f"expected 'lif' or 'alif', got {model!r}")
    rng = np.random.default_rng(seed)
    if model == "alif":
        n_adapt = int(round(alif_fraction * n_hidden))
        b = np.where(np.arange(n_hidden) < n_adapt, adapt, 0.0)
        hidden = ALIF.from_tau(dt, tau_mem=tau_mem, tau_adapt=tau_adapt, adapt=b, theta=1.0)
    else:
        hidden = LIF.from_tau(dt, tau_mem=tau_mem, theta=1.0)
    rec = rng.normal(0.0, 1.0 / np.sqrt(n_hidden), (n_hidden, n_hidden))
    np.fill_diagonal(rec, 0.0)
    projs = [Projection("in_hidden", "in", "hidden", rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_in, n_hidden))),
             Projection("hidden_out", "hidden", "out", rng.normal(0.0, 1.0 / np.sqrt(n_hidden), (n_hidden, n_out)))]
    if recurrent:
        projs.insert(1, Projection("hidden_hidden", "hidden", "hidden", rec, delay=delay))
    return Network(dt=dt, name=f"{model}_{n_in}x{n_hidden}x{n_out}", inputs=[SpikeInput("in", n_in)],
                   populations=[Population("hidden", n_hidden, hidden),
                                Population("out", n_out, LI.from_tau(dt, tau_mem=tau_mem))],
                   projections=projs)

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
                      delay: int = 1, seed: int = 0, reset: Literal["subtract", "zero"] = "subtract",
                      readout: Literal["li", "lif"] = "li") -> Network:
    """'in' (SpikeInput) -> 'hidden' (LIF, or ALIF as in LSNN: a fraction `alif_fraction` adaptive)
    -> 'out' (readout, tau_mem: LI, non-spiking, or LIF with theta = 1); weights ~ N(0, 1/fan_in)
    (times theta = 1), no self-loops. `reset` ('subtract' or 'zero') is the reset of the hidden
    neurons and of a LIF readout. model 'lif', reset 'zero' and either readout is what Lava's LIF
    and lava-dl NetX run (mapping.netx)."""
    if model not in ("lif", "alif"):
        raise NetworkError("model", f"expected 'lif' or 'alif', got {model!r}")
    if reset not in ("subtract", "zero"):
        raise NetworkError("reset", f"expected 'subtract' or 'zero', got {reset!r}")
    if readout not in ("li", "lif"):
        raise NetworkError("readout", f"expected 'li' or 'lif', got {readout!r}")
    rng = np.random.default_rng(seed)
    if model == "alif":
        n_adapt = int(round(alif_fraction * n_hidden))
        b = np.where(np.arange(n_hidden) < n_adapt, adapt, 0.0)
        hidden = ALIF.from_tau(dt, tau_mem=tau_mem, tau_adapt=tau_adapt, adapt=b, theta=1.0, reset=reset)
    else:
        hidden = LIF.from_tau(dt, tau_mem=tau_mem, theta=1.0, reset=reset)
    out = (LIF.from_tau(dt, tau_mem=tau_mem, theta=1.0, reset=reset) if readout == "lif"
           else LI.from_tau(dt, tau_mem=tau_mem))
    rec = rng.normal(0.0, 1.0 / np.sqrt(n_hidden), (n_hidden, n_hidden))
    np.fill_diagonal(rec, 0.0)
    projs = [Projection("in_hidden", "in", "hidden", rng.normal(0.0, 1.0 / np.sqrt(n_in), (n_in, n_hidden))),
             Projection("hidden_out", "hidden", "out", rng.normal(0.0, 1.0 / np.sqrt(n_hidden), (n_hidden, n_out)))]
    if recurrent:
        projs.insert(1, Projection("hidden_hidden", "hidden", "hidden", rec, delay=delay))
    return Network(dt=dt, name=f"{model}_{n_in}x{n_hidden}x{n_out}", inputs=[SpikeInput("in", n_in)],
                   populations=[Population("hidden", n_hidden, hidden),
                                Population("out", n_out, out)],
                   projections=projs)

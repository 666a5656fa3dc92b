"""Shared builders for tests: random networks that exercise every feature."""
from __future__ import annotations

import numpy as np

import neurosim as ns


def random_network(seed: int, dt: float = 1e-3) -> ns.Network:
    """ALIF, LIF, IF and LI populations, recurrent CSR and dense projections, per-synapse delays,
    refractoriness, both resets, a SpikeInput ('in', 12 channels) and a PoissonInput."""
    r = np.random.default_rng(seed)
    na, nb, nc, no = r.integers(5, 40), r.integers(5, 30), r.integers(3, 15), r.integers(2, 6)
    pops = [
        ns.Population("alif", na, ns.ALIF(beta=r.uniform(0.7, 1.0, na), rho=r.uniform(0.8, 0.99),
                                         adapt=r.uniform(0, 1), alpha=r.uniform(0, 0.6, na),
                                         refractory=r.integers(0, 4, na), adapt_gain=r.uniform(0.05, 1)),
                      v0=r.uniform(0, 1, na)),
        ns.Population("lif", nb, ns.LIF(beta=r.uniform(0.5, 1.0), alpha=r.uniform(0, 0.8), reset="zero",
                                       refractory=int(r.integers(0, 3)), theta=r.uniform(0.5, 1.5, nb),
                                       bias=r.normal(0, 0.05, nb)), i0=r.normal(0, 0.1, nb)),
        ns.Population("if", nc, ns.IF(theta=1.0, gain=r.uniform(0.5, 1.5, nc))),
        ns.Population("out", no, ns.LI(beta=r.uniform(0.8, 1.0), alpha=r.uniform(0, 0.5))),
    ]
    sizes = {"in": 12, "poi": 7, "alif": na, "lif": nb, "if": nc, "out": no}

    def w(pre: str, post: str, density: float, mean: float, sd: float) -> np.ndarray:
        m = r.random((sizes[pre], sizes[post])) < density
        return r.normal(mean, sd, m.shape) * m

    projs = [
        ns.Projection("in_alif", "in", "alif", w("in", "alif", 0.5, 0.6, 0.4),
                      delay=r.integers(1, 5, (12, na))),
        ns.Projection("alif_alif", "alif", "alif", ns.CSR.from_dense(w("alif", "alif", 0.2, 0.0, 0.7)), delay=2),
        ns.Projection("alif_lif", "alif", "lif", w("alif", "lif", 0.4, 0.2, 0.5)),
        ns.Projection("poi_lif", "poi", "lif", w("poi", "lif", 0.6, 0.4, 0.2), delay=3),
        ns.Projection("lif_if", "lif", "if", w("lif", "if", 0.5, 0.3, 0.4)),
        ns.Projection("if_alif", "if", "alif", w("if", "alif", 0.3, -0.2, 0.4), delay=int(r.integers(1, 7))),
        ns.Projection("lif_out", "lif", "out", w("lif", "out", 0.8, 0.0, 1.0)),
    ]
    csr = ns.CSR.from_dense(w("if", "lif", 0.5, 0.1, 0.5))
    projs.append(ns.Projection("if_lif", "if", "lif", csr, delay=r.integers(1, 4, csr.nnz)))
    return ns.Network(dt=dt, populations=pops, projections=projs,
                      inputs=[ns.SpikeInput("in", 12), ns.PoissonInput("poi", 7, rate=r.uniform(20, 200, 7))])


def random_inputs(seed: int, steps: int, batch: int, p: float = 0.1) -> dict[str, np.ndarray]:
    return {"in": np.random.default_rng(seed + 1000).random((steps, batch, 12)) < p}


def assert_bitwise(ref: ns.SimulationResult, got: ns.SimulationResult, what: str) -> None:
    """Identical spike events (step, batch, index) of every node and bitwise-equal traces."""
    for name, sp in ref.spikes.items():
        for f in ("step", "batch", "index"):
            np.testing.assert_array_equal(getattr(got.spikes[name], f), getattr(sp, f), err_msg=f"{what} {name}.{f}")
    for pop, vs in ref.traces.items():
        for var, arr in vs.items():
            np.testing.assert_array_equal(got.traces[pop][var], arr, err_msg=f"{what} {pop}.{var}")

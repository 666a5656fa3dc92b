"""Issue 4's bar through the cross-check: random recurrent LIF/ALIF networks with delays, 1000 steps.

- Brian2 (float64) against the NumPy backend: identical spike trains;
- Lava fixed_pt against neurosim's fixed-point mode: identical spike trains (bit exact);
- Lava floating_pt against the NumPy backend: at least 99.9% identical (step, neuron) bins.

CI runs 3 networks; ``NEUROSIM_BAR_NETWORKS=20 pytest tests/test_mapping_bar.py`` runs the
bar's 20 (the figures are in bench/RESULTS.md).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import neurosim as ns
from mapping import crosscheck

N_NETWORKS = int(os.environ.get("NEUROSIM_BAR_NETWORKS", "3"))
STEPS = 1000


def bar_network(seed: int) -> ns.Network:
    """Input -> recurrent ALIF (subtract reset) <-> recurrent LIF (zero reset) -> LI readout,
    delays 1..4 (scalar and per synapse), per-population decays, per-neuron thresholds."""
    r = np.random.default_rng(seed)
    na, nl, no = int(r.integers(10, 40)), int(r.integers(10, 30)), int(r.integers(2, 5))
    alif = ns.ALIF(beta=r.uniform(0.8, 0.97), rho=r.uniform(0.9, 0.99), adapt=r.uniform(0.2, 1.5),
                   alpha=r.uniform(0.0, 0.5), adapt_gain=r.uniform(0.05, 0.5), theta=r.uniform(0.8, 1.2, na))
    lif = ns.LIF(beta=r.uniform(0.7, 0.95), alpha=r.uniform(0.0, 0.6), reset="zero", theta=r.uniform(0.8, 1.2, nl))
    pops = [ns.Population("alif", na, alif), ns.Population("lif", nl, lif),
            ns.Population("out", no, ns.LI(beta=r.uniform(0.8, 0.95)))]

    def w(n_pre: int, n_post: int, density: float, mean: float, sd: float) -> np.ndarray:
        return r.normal(mean, sd, (n_pre, n_post)) * (r.random((n_pre, n_post)) < density)

    projs = [
        ns.Projection("in_alif", "in", "alif", w(10, na, 0.6, 0.5, 0.3), delay=int(r.integers(1, 3))),
        ns.Projection("alif_alif", "alif", "alif", w(na, na, 0.2, 0.0, 0.4), delay=r.integers(1, 5, (na, na))),
        ns.Projection("alif_lif", "alif", "lif", w(na, nl, 0.3, 0.2, 0.3), delay=int(r.integers(1, 5))),
        ns.Projection("lif_lif", "lif", "lif", w(nl, nl, 0.2, 0.0, 0.4), delay=1),
        ns.Projection("lif_alif", "lif", "alif", w(nl, na, 0.2, -0.1, 0.3), delay=int(r.integers(1, 5))),
        ns.Projection("alif_out", "alif", "out", w(na, no, 0.8, 0.0, 0.5), delay=1),
    ]
    return ns.Network(dt=1e-3, name=f"bar_{seed}", populations=pops, projections=projs,
                      inputs=[ns.SpikeInput("in", 10)])


@pytest.mark.parametrize("seed", range(N_NETWORKS))
def test_brian2_and_lava_agree(seed: int) -> None:
    pytest.importorskip("brian2")
    pytest.importorskip("lava")
    net = bar_network(seed)
    spikes = np.random.default_rng(seed + 100).random((STEPS, 10)) < 0.05
    check = crosscheck(net, {"in": spikes}, STEPS, ["brian2", "lava-float", "lava-fixed"])
    assert not check.skipped, check.skipped
    rows = {(r.target, r.reference, r.population): r for r in check.rows}
    assert sum(rows[("brian2", "neurosim", p)].reference_spikes for p in ("alif", "lif")) > 200
    for pop in ("alif", "lif", "out"):
        assert rows[("brian2", "neurosim", pop)].bins == 1.0, rows[("brian2", "neurosim", pop)]
        assert rows[("lava-fixed", "fixed", pop)].bins == 1.0, rows[("lava-fixed", "fixed", pop)]
        assert rows[("lava-float", "neurosim", pop)].bins >= 0.999, rows[("lava-float", "neurosim", pop)]
    assert rows[("brian2", "neurosim", "out")].max_abs_dv < 1e-9
    assert rows[("lava-fixed", "fixed", "out")].max_abs_dv == 0.0

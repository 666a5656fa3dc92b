"""Backend parity: every installed fast backend equals the NumPy reference bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import random_inputs, random_network

import neurosim as ns
from neurosim import backends

# Bitwise parity: numba event-driven (its dense switch sums in BLAS's order: tests/test_fast_sim.py);
# cupy in its exact 'gather' mode (its default 'event' mode adds simultaneous inputs in another
# order: tests/test_cupy_backend.py checks it up to counted ties).
FAST = {"numba": {"dense": "never"}, "cupy": {"propagation": "gather"}}


def _skip_unless_usable(name):
    reason = backends.available()[name]
    if reason:
        pytest.skip(f"{name} backend not usable here: {reason}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", FAST)
def test_fast_backend_equals_reference_on_20_random_networks(backend, dtype):
    _skip_unless_usable(backend)
    total_spikes = 0
    for seed in range(20):
        net = random_network(seed)
        batch = 1 + seed % 3
        inp = random_inputs(seed, 120, batch)
        tr = {p.name: ["v", "i", "a", "threshold"] for p in net.populations}
        ref = ns.simulate(net, inp, 120, seed=seed, dtype=dtype, traces=tr)
        got = ns.simulate(net, inp, 120, seed=seed, dtype=dtype, traces=tr, backend=backend, chunk=50,
                          backend_options=FAST[backend])
        assert got.backend == backend
        for name, sp in ref.spikes.items():
            g = got.spikes[name]
            for f in ("step", "batch", "index"):
                np.testing.assert_array_equal(getattr(g, f), getattr(sp, f), err_msg=f"seed {seed} {name}.{f}")
            total_spikes += len(sp)
        for pop, vs in ref.traces.items():
            for var, arr in vs.items():
                np.testing.assert_array_equal(got.traces[pop][var], arr, err_msg=f"seed {seed} {pop}.{var}")
    assert total_spikes > 10000


def test_numba_fast_path_really_compiled():
    _skip_unless_usable("numba")
    from neurosim.backends import numba_backend

    net = random_network(1)
    ns.simulate(net, random_inputs(1, 20, 1), 20, backend="numba")
    assert numba_backend._KERNEL is not None and len(numba_backend._KERNEL.signatures) >= 1


def test_auto_picks_a_usable_backend_and_names_it():
    res = ns.simulate(random_network(2), random_inputs(2, 10, 1), 10, backend="auto")
    assert res.backend in ("cupy", "numba", "numpy")
    assert not backends.available()[res.backend]


def test_cupy_without_device_is_a_clear_error():
    reason = backends.available()["cupy"]
    if not reason:
        pytest.skip("a CUDA device is present: nothing to refuse")
    with pytest.raises(ns.BackendUnavailable) as exc:
        ns.simulate(random_network(0), random_inputs(0, 10, 1), 10, backend="cupy")
    assert "cupy" in str(exc.value)

"""Event-driven convolution on the CuPy backend: its propagate_conv kernel run by the host
emulator (tests/cuda_emulator.py) here, on the device where one is lent (marker gpu).

'event' mode sums a target's simultaneous inputs in atomic order, so float64 traces agree with
the NumPy reference to 1e-12 relative and spikes exactly (random weights: no threshold ties);
'gather' runs the lowering (Plan.lowered()) and is bitwise NumPy's.
"""
from __future__ import annotations

import numpy as np
import pytest
from conv_nets import conv_inputs, random_conv_network

import cuda_emulator
import neurosim as ns
from neurosim import backends

GPU_REASON = backends.available()["cupy"]
needs_gpu = pytest.mark.skipif(bool(GPU_REASON), reason=f"no usable CUDA device through CuPy: {GPU_REASON}")
STEPS = 25
TOL = 1e-12


@pytest.fixture
def emulated():
    """backend='cupy' with its kernels executed on the host by the emulator (cuda_emulator.installed:
    2 blocks of 64 threads, so grid-stride loops wrap and spike lists leave presynaptic order)."""
    if cuda_emulator.available():
        pytest.skip(cuda_emulator.available())
    with cuda_emulator.installed():
        yield


def _compare(seeds, options) -> int:
    spikes = 0
    for seed in seeds:
        net = random_conv_network(seed)
        inp = conv_inputs(net, seed, STEPS, 2)
        tr = {p.name: ["v", "i"] for p in net.populations}
        ref = ns.simulate(net, inp, STEPS, traces=tr)
        got = ns.simulate(net, inp, STEPS, traces=tr, backend="cupy", backend_options=options)
        assert got.backend == "cupy"
        for name, sp in ref.spikes.items():
            np.testing.assert_array_equal(got.spikes[name].dense(), sp.dense(), err_msg=f"seed {seed} {name}")
            spikes += len(sp)
        for pop, vs in ref.traces.items():
            for var, want in vs.items():
                have = got.traces[pop][var]
                if options.get("propagation") == "gather":
                    np.testing.assert_array_equal(have, want, err_msg=f"seed {seed} {pop}.{var}")
                else:
                    err = np.abs(have - want) / np.maximum(1.0, np.abs(want))
                    assert err.max() <= TOL, f"seed {seed} {pop}.{var}: {err.max():.3g}"
    return spikes


def test_emulated_event_conv_equals_numpy(emulated):
    assert _compare(range(6), {"propagation": "event", "graph_steps": 4}) > 500


def test_emulated_gather_runs_the_lowering_bitwise(emulated):
    assert _compare(range(2), {"propagation": "gather"}) > 100


@pytest.mark.gpu
@needs_gpu
def test_gpu_event_conv_equals_numpy_and_ran_there():
    assert _compare(range(12), {"propagation": "event"}) > 1000
    assert _compare(range(3), {"propagation": "gather"}) > 100
    net = random_conv_network(0)
    res = ns.simulate(net, conv_inputs(net, 0, 200, 2), 200, backend="cupy")
    assert res.meta["backend_stats"]["graph_replays"] >= 2 and "graph_error" not in res.meta["backend_stats"]

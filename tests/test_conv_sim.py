"""Event-driven convolution in the simulators (neurosim.conv_plan): identical spikes (float64) to
the dense-lowered reference and to torch's conv2d / conv1d / avg_pool2d on 36 random conv networks
(stride 1-2, padding 0-2, dilation 1-2, groups 1-2, scalar and per-tap delays), numpy and numba."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from conv_nets import conv_inputs, random_conv_network, torch_simulate
from neurosim.plan import lower

STEPS, BATCH = 30, 2
SEEDS = range(36)



def _run(net, inp, backend, convolution):
    tr = {p.name: ["v", "i"] for p in net.populations}
    return ns.simulate(net, inp, STEPS, backend=backend, convolution=convolution, traces=tr)


def _same(a: ns.SimulationResult, b: ns.SimulationResult, what: str, traces: bool = True) -> None:
    for name, sp in a.spikes.items():
        np.testing.assert_array_equal(b.spikes[name].dense(), sp.dense(), err_msg=f"{what}: spikes of {name}")
    if traces:
        for pop, vs in a.traces.items():
            for var, arr in vs.items():
                np.testing.assert_array_equal(b.traces[pop][var], arr, err_msg=f"{what}: {pop}.{var}")


@pytest.mark.parametrize("group", range(6))
def test_event_conv_equals_lowered_and_torch_on_36_networks(group):
    """Per network: numpy and numba event-driven give the lowered reference's spikes and states
    bit for bit (same summation order), Network.lowered() its spikes, and torch's ops the spikes."""
    pytest.importorskip("numba")
    kinds, active = set(), 0
    for seed in SEEDS[6 * group:6 * group + 6]:
        net = random_conv_network(seed)
        inp = conv_inputs(net, seed, STEPS, BATCH)
        ref = _run(net, inp, "numpy", "lowered")
        for backend in ("numpy", "numba"):
            _same(ref, _run(net, inp, backend, "events"), f"seed {seed} {backend} events")
        _same(ref, ns.simulate(net.lowered(), inp, STEPS), f"seed {seed} Network.lowered()", traces=False)
        want = torch_simulate(net, inp, STEPS)
        for p in net.populations:
            np.testing.assert_array_equal(ref.spikes[p.name].dense(), want[p.name], err_msg=f"seed {seed} torch {p.name}")
        active += int(ref.spikes["l1"].dense().sum() > 0 and ref.spikes["f"].dense().sum() > 0)
        kinds |= {type(j).__name__ for j in net.projections}
    assert active >= 4, "most networks must carry spikes through every layer"
    assert {"Conv2d", "Conv1d", "Flatten"} <= kinds


def test_plan_keeps_kernels_not_synapses():
    net = random_conv_network(0)
    ev, low = lower(net, "float64", "events"), lower(net, "float64", "lowered")
    shaped = [j for j in net.shaped if j.geometry() is not None]
    assert ev.conv is not None and len(ev.conv.ops) == len(shaped)
    assert ev.conv.n_weights == sum(j.geometry().kernel.size for j in shaped)
    assert len(low.indices) == len(ev.indices) + sum(j.n_synapses for j in shaped)
    back = ev.lowered()
    for f in ("indptr", "indices", "weights", "delays"):
        np.testing.assert_array_equal(getattr(back, f), getattr(low, f))
    assert back.ring == low.ring == ev.ring


def test_partitions_run_the_lowering_and_bad_mode_is_refused():
    net = random_conv_network(4)
    inp = conv_inputs(net, 4, STEPS, 1)
    _same(_run(net, inp, "numpy", "events"), ns.simulate(net, inp, STEPS, partitions=2,
                                                         traces={p.name: ["v", "i"] for p in net.populations}), "parts")
    with pytest.raises(ns.NetworkError, match=r"convolution: expected one of \('events', 'lowered'\)"):
        ns.simulate(net, inp, STEPS, convolution="dense")

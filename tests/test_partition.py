"""Partitioned simulation (neurosim.partition): parts that exchange spike lists give exactly the
spikes and traces of the unpartitioned NumPy backend, on random networks with delays."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import random_inputs, random_network

import neurosim as ns
from neurosim import simulate
from neurosim.errors import NetworkError
from neurosim.partition import PartitionedRunner, assign
from neurosim.plan import lower

TRACES = {"alif": ["v", "a", "threshold"], "lif": ["i"], "out": ["v"]}


def _delayed(net: ns.Network, extra: int) -> ns.Network:
    """`net` with every delay longer by `extra` steps (minimum delay 1 + extra)."""
    projs = [ns.Projection(p.name, p.pre, p.post, p.weights, np.asarray(p.delay) + extra) for p in net.projections]
    return ns.Network(dt=net.dt, populations=net.populations, projections=projs, inputs=net.inputs)


def _same(a: ns.SimulationResult, b: ns.SimulationResult) -> None:
    for name in a.spikes:
        x, y = a.spikes[name], b.spikes[name]
        assert np.array_equal(x.step, y.step) and np.array_equal(x.batch, y.batch) and np.array_equal(x.index, y.index)
    for pop in a.traces:
        for var in a.traces[pop]:
            assert np.array_equal(a.traces[pop][var], b.traces[pop][var]), (pop, var)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_two_parts_give_the_unpartitioned_spikes_exactly(seed, dtype):
    net = random_network(seed)
    inputs = random_inputs(seed, 120, 3, p=0.15)
    ref = simulate(net, inputs, 120, dtype=dtype, seed=seed, traces=TRACES)
    assert sum(len(s) for s in ref.spikes.values()) > 100  # a network that is active
    got = simulate(net, inputs, 120, dtype=dtype, seed=seed, traces=TRACES, partitions=2, chunk=7)
    _same(ref, got)


@pytest.mark.parametrize("seed", range(4))
def test_any_assignment_and_exchange_interval_up_to_the_minimum_delay(seed):
    """Random (non-contiguous) assignments to 2 or 3 parts; minimum delay 3, exchanges every 1,
    2 or 3 steps; chunks that end inside exchange windows."""
    net = _delayed(random_network(seed + 10), 2)
    inputs = random_inputs(seed, 90, 2, p=0.2)
    ref = simulate(net, inputs, 90, seed=seed, traces=TRACES)
    plan = lower(net)
    rng = np.random.default_rng(seed)
    for parts, interval in ((2, 3), (3, 2), (2, 1)):
        part_of = rng.integers(0, parts, plan.n_neurons)
        runner = PartitionedRunner(plan, 2, np.zeros(0, np.int64), [], part_of=part_of, interval=interval)
        src = np.concatenate([inputs["in"], np.zeros((90, 2, 7), bool)], axis=2)  # Poisson off
        ref_runner = ns.backends.load("numpy").Runner(plan, 2, np.zeros(0, np.int64), [])
        a, b = [], []
        for t0, t1 in ((0, 13), (13, 50), (50, 90)):
            a.append(ref_runner.run(t0, src[t0:t1])[:3])
            b.append(runner.run(t0, src[t0:t1])[:3])
        for x, y in zip(a, b):
            order = np.lexsort((x[2], x[1], x[0]))
            assert all(np.array_equal(u[order], v) for u, v in zip(x, y))
        assert runner.stats.rounds == 90 // interval
        assert sum(runner.stats.events) > 0
    _same(ref, simulate(net, inputs, 90, seed=seed, traces=TRACES, partitions=3))


def test_assign_balances_work_and_leaves_no_part_empty():
    plan = lower(random_network(2))
    part = assign(plan, 2)
    assert set(part) == {0, 1} and np.all(np.diff(part) >= 0)
    work = 1 + np.bincount(plan.indices, minlength=plan.n_neurons)[:plan.n_neurons]
    w0, w1 = work[part == 0].sum(), work[part == 1].sum()
    assert abs(w0 - w1) <= work.max()
    assert sorted(set(assign(plan, plan.n_neurons))) == list(range(plan.n_neurons))


def test_bad_partitions_are_refused():
    net = random_network(0)
    with pytest.raises(NetworkError, match="partitions"):
        simulate(net, random_inputs(0, 5, 1), 5, partitions=0)
    with pytest.raises(NetworkError, match="interval"):
        PartitionedRunner(lower(net), 1, np.zeros(0, np.int64), [], interval=2)  # minimum delay is 1

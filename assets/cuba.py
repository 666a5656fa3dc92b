"""The CUBA benchmark network (Vogels and Abbott 2005), with one synaptic time constant.

Continuous model (voltages relative to the reset potential, so reset is 0)::

    tau_m dv/dt = g - (v - v_rest),   tau_syn dg/dt = -g,   spike: v > theta, reset v = 0,
    refractory 5 ms, on a spike: g += w

The original has separate excitatory (5 ms) and inhibitory (10 ms) synapses; here both use
5 ms and the inhibitory weight is doubled, which keeps the charge of each inhibitory event.
Lowering onto neurosim's LIF is exact between spikes: ``beta = exp(-dt/tau_m)``,
``alpha = exp(-dt/tau_syn)``, and a jump w in g adds ``K*w`` to i with
``K = tau_syn/(tau_syn - tau_m) * (alpha - beta)`` (the exact response of v over one step);
the leak towards v_rest is a bias ``(1-alpha)*(1-beta)*v_rest`` whose current starts at its
fixed point ``i0 = (1-beta)*v_rest``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from neurosim import CSR, LIF, Network, NetworkError, NeuronParams, Population, Projection
from neurosim.plan import Plan


@dataclass(frozen=True)
class CubaParams:
    """Physical parameters in SI units (s, V)."""

    tau_m: float = 20e-3
    tau_syn: float = 5e-3
    theta: float = 10e-3  # Vt - Vr
    v_rest: float = 11e-3  # El - Vr
    refractory: float = 5e-3
    w_exc: float = 60 * 0.27 / 10 * 1e-3  # 1.62 mV
    w_inh: float = -20 * 4.5 / 10 * 1e-3 * 2  # -18 mV: -9 mV at 10 ms, charge kept at 5 ms
    exc_fraction: float = 0.8


def jump_gain(dt: float, tau_m: float, tau_syn: float) -> float:
    """K: the contribution to v over one step of a unit jump of g at the step's start."""
    beta, alpha = math.exp(-dt / tau_m), math.exp(-dt / tau_syn)
    if math.isclose(tau_m, tau_syn):
        return dt / tau_m * beta
    return tau_syn / (tau_syn - tau_m) * (alpha - beta)


def connectivity(n: int, syn_per_neuron: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random (pre, post) pairs: each neuron sends Binomial(n, k/n) synapses to uniform targets."""
    counts, post = _targets(n, syn_per_neuron, rng)
    return np.repeat(np.arange(n, dtype=np.int64), counts), post


def _targets(n: int, syn_per_neuron: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(synapses sent by each neuron, all targets in sender order): the draws of connectivity()."""
    counts = rng.binomial(n, min(1.0, syn_per_neuron / n), size=n)
    return counts, rng.integers(0, n, size=int(counts.sum()), dtype=np.int64)


def cuba_network(n: int = 4000, syn_per_neuron: int = 80, seed: int = 0, dt: float = 1e-4,
                 params: CubaParams = CubaParams()) -> Network:
    """CUBA with `n` neurons (80% excitatory), `syn_per_neuron` outgoing synapses on average.

    Weights are scaled by 80/syn_per_neuron so that the mean input stays that of the original.
    Populations 'exc' and 'inh'; projections 'ee', 'ei', 'ie', 'ii' (CSR, delay 1 step).
    """
    model, i0, w_of = _lif(n, syn_per_neuron, dt, params)
    rng = np.random.default_rng(seed)
    n_exc = int(round(params.exc_fraction * n))
    v0 = rng.uniform(0.0, params.theta, size=n)
    pre, post = connectivity(n, syn_per_neuron, rng)
    groups = {"exc": (0, n_exc), "inh": (n_exc, n)}
    pops = [Population(name, hi - lo, model, v0=v0[lo:hi], i0=i0) for name, (lo, hi) in groups.items()]
    projs = []
    for src, (slo, shi) in groups.items():
        w = w_of[src]
        for dst, (dlo, dhi) in groups.items():
            m = (pre >= slo) & (pre < shi) & (post >= dlo) & (post < dhi)
            csr = CSR.from_coo(pre[m] - slo, post[m] - dlo, np.full(int(m.sum()), w), (shi - slo, dhi - dlo))
            projs.append(Projection(f"{src[0]}{dst[0]}", src, dst, csr, delay=1))
    return Network(dt=dt, populations=pops, projections=projs, name=f"cuba{n}")


def _lif(n: int, syn_per_neuron: int, dt: float, params: CubaParams) -> tuple[LIF, float, dict[str, float]]:
    """(the LIF of every neuron, the initial current, weight per sending group) of CUBA."""
    if n < 10:
        raise NetworkError("n", f"expected at least 10 neurons, got {n}")
    if not 1 <= syn_per_neuron <= n:  # more would be capped at n while the weights scale by 80/k
        raise NetworkError("syn_per_neuron", f"expected 1 to n = {n} synapses per neuron, got {syn_per_neuron}")
    beta, alpha = math.exp(-dt / params.tau_m), math.exp(-dt / params.tau_syn)
    k = jump_gain(dt, params.tau_m, params.tau_syn)
    scale = 80.0 / syn_per_neuron
    model = LIF(beta=beta, alpha=alpha, theta=params.theta,
                bias=(1 - alpha) * (1 - beta) * params.v_rest,
                refractory=int(round(params.refractory / dt)), reset="zero")
    return model, (1 - beta) * params.v_rest, {"exc": k * scale * params.w_exc, "inh": k * scale * params.w_inh}


def cuba_plan(n: int = 4000, syn_per_neuron: int = 80, seed: int = 0, dt: float = 1e-4,
              params: CubaParams = CubaParams(), dtype: str = "float32", rows_per_block: int = 32768) -> Plan:
    """``lower(cuba_network(n, syn_per_neuron, seed, dt, params), dtype)``, built directly.

    The same random draws give the same network, but no Network is made and nothing is sorted
    over all synapses: within each row the merged CSR holds the excitatory targets, then the
    inhibitory ones, each in draw order (lower's merge of ee, ei or ie, ii), found by a 16-bit
    radix sort per block of rows. Indices are int32, delays a broadcast view of 1 step. Peak
    memory: about 8 + 4 + itemsize bytes per synapse (10^9 synapses: 16 GB in float32).
    """
    model, i0, w_of = _lif(n, syn_per_neuron, dt, params)
    if not 1 <= rows_per_block <= 32768:
        raise NetworkError("rows_per_block", f"expected 1 .. 32768 (a 16-bit sort key), got {rows_per_block}")
    dt_ = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    n_exc = int(round(params.exc_fraction * n))
    v0 = rng.uniform(0.0, params.theta, size=n)
    counts, post = _targets(n, syn_per_neuron, rng)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.empty(post.size, np.int32)
    for r0 in range(0, n, rows_per_block):
        r1 = min(n, r0 + rows_per_block)
        s0, s1 = indptr[r0], indptr[r1]
        key = np.repeat(np.arange(0, 2 * (r1 - r0), 2, dtype=np.uint16), counts[r0:r1]) + (post[s0:s1] >= n_exc)
        indices[s0:s1] = post[s0:s1][np.argsort(key, kind="stable")]
    del post
    weights = np.empty(indices.size, dt_)
    weights[:indptr[n_exc]] = w_of["exc"]
    weights[indptr[n_exc]:] = w_of["inh"]
    lowered = model.lower(n)
    return Plan(dtype=dt_, n_neurons=n, n_sources=0, params=NeuronParams(*(a.astype(dt_) for a in lowered)),
                v0=v0.astype(dt_), i0=np.full(n, i0).astype(dt_), a0=np.zeros(n, dt_), indptr=indptr,
                indices=indices, weights=weights, delays=np.broadcast_to(np.int32(1), indices.shape), ring=2,
                slices={"exc": (0, n_exc), "inh": (n_exc, n)}, poisson={})


def brian2_description(network: Network, params: CubaParams = CubaParams()) -> dict:
    """The same network as arrays for the Brian2 peer (bench/brian2_cuba.py): SI units.

    Each synapse's jump of g is read back from the network's weight: ``w = weight / K``.
    """
    n_exc = network.population("exc").size
    offsets = {"exc": 0, "inh": n_exc}
    k = jump_gain(network.dt, params.tau_m, params.tau_syn)
    pre, post, w = [], [], []
    for proj in network.projections:
        csr, _ = proj.to_csr()
        rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
        pre.append(rows + offsets[proj.pre])
        post.append(np.asarray(csr.indices) + offsets[proj.post])
        w.append(np.asarray(csr.values) / k)
    v0 = np.concatenate([network.population(p).v0 for p in ("exc", "inh")])
    return dict(n=int(v0.size), pre=np.concatenate(pre).astype(np.int32),
                post=np.concatenate(post).astype(np.int32), w=np.concatenate(w), v0=v0,
                g0=np.zeros(v0.size), tau_m=params.tau_m, tau_syn=params.tau_syn,
                theta=params.theta, v_rest=params.v_rest, refractory_s=params.refractory,
                delay_s=0.0)

"""Random convolutional networks that NetX can hold: input -> conv (stride, padding, dilation,
groups, non-square kernels) -> pool (sum or average, as a depthwise conv) [-> conv] -> flatten
-> dense readout (LIF or LI, per-synapse delays on some seeds); LIF neurons with reset to zero,
per-channel thresholds and biases (per-neuron decays and biases on odd seeds; a bias only where
alpha = 0: with a current decay NetX would need a nonzero initial u)."""
from __future__ import annotations

import numpy as np

import neurosim as ns


def _pick(r: np.random.Generator, lo: int, hi: int) -> int:
    return int(r.integers(lo, hi + 1))


def _out(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def random_netx_conv_network(seed: int) -> ns.Network:
    """A NetX-expressible conv network (module docstring); seed picks every size and parameter."""
    r = np.random.default_rng(2000 + seed)
    per_neuron = seed % 2 == 1
    groups = _pick(r, 1, 2)
    cin, c1 = groups * _pick(r, 1, 2), groups * _pick(r, 1, 3)
    k = (_pick(r, 1, 3), _pick(r, 2, 3))
    stride = (_pick(r, 1, 2), _pick(r, 1, 2))
    padding = (_pick(r, 0, 2), _pick(r, 0, 1))
    dilation = (_pick(r, 1, 2), 1)
    hw = (_pick(r, 7, 12), _pick(r, 6, 11))
    s1 = (c1, *(_out(n, kk, s, p, d) for n, kk, s, p, d in zip(hw, k, stride, padding, dilation)))
    n1 = int(np.prod(s1))
    theta1 = ns.channel_bias(r.uniform(0.8, 1.2, c1), s1)
    if per_neuron:
        beta1, bias1 = r.uniform(0.7, 0.95, n1), r.normal(0.02, 0.03, n1)
    else:
        beta1, bias1 = ns.channel_bias(r.uniform(0.7, 0.95, c1), s1), ns.channel_bias(r.normal(0.02, 0.03, c1), s1)
    pops = [ns.Population("c1", s1, ns.LIF(beta=beta1, theta=theta1, bias=bias1,
                                           reset="zero"))]
    fan_in = cin // groups * k[0] * k[1]
    kernel = r.normal(1.5 / fan_in, 1 / np.sqrt(fan_in), (c1, cin // groups, *k))
    projs: list = [ns.Conv2d("in_c1", "in", "c1", kernel, stride, padding,
                             dilation, groups)]
    pk = _pick(r, 2, min(3, *s1[1:])) if min(s1[1:]) >= 2 else 1
    ps, pp = _pick(r, 1, 2), _pick(r, 0, pk // 2)
    s2 = (c1, _out(s1[1], pk, ps, pp), _out(s1[2], pk, ps, pp))
    avg = seed % 4 < 2
    pool = (ns.AvgPool2d if avg else ns.SumPool2d)("c1_p1", "c1", "p1", pk, ps, pp)
    pops.append(ns.Population("p1", s2, ns.LIF(beta=0.9, theta=(0.45 if avg else 1.4), reset="zero")))
    projs.append(pool)
    last, last_shape = "p1", s2
    if seed % 3 == 0:
        c2 = _pick(r, 2, 4)
        s3 = (c2, s2[1], s2[2])
        pops.append(ns.Population("c2", s3, ns.LIF(beta=0.85, alpha=r.uniform(0.1, 0.5), theta=1.0, reset="zero")))
        projs.append(ns.Conv2d("p1_c2", "p1", "c2", r.normal(1 / (9 * c1), 1 / np.sqrt(9 * c1), (c2, c1, 3, 3)), 1, 1))
        last, last_shape = "c2", s3
    nf, no = int(np.prod(last_shape)), _pick(r, 4, 6)
    readout = ns.LI(beta=0.9) if seed % 2 == 0 else ns.LIF(beta=0.9, theta=1.0, reset="zero")
    pops.append(ns.Population("out", no, readout))
    projs.append(ns.Projection(f"{last}_out", last, "out", r.normal(0.15, 0.4, (nf, no)),
                               delay=r.integers(1, 4, (nf, no)) if seed % 4 == 3 else 1))
    return ns.Network(1e-3, pops, projs, [ns.SpikeInput("in", (cin, *hw))], name=f"netx_conv{seed}")


def random_input(net: ns.Network, seed: int, steps: int) -> np.ndarray:
    """Bernoulli spikes (steps, n_in) at a rate drawn in [0.15, 0.3]."""
    r = np.random.default_rng(seed)
    return r.random((steps, net.inputs[0].size)) < r.uniform(0.15, 0.3)

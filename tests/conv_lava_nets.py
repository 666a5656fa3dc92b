"""Random convolutional networks whose convolutions and pooling Lava's own Conv process can run
(delay 1, thresholds and gains one value per channel), for tests/test_mapping_conv.py and
bench/conv_mapping.py; tests/conv_nets.py gives the networks that need the CSR fallback."""
from __future__ import annotations

import numpy as np

import neurosim as ns


def _pick(r: np.random.Generator, lo: int, hi: int) -> int:
    return int(r.integers(lo, hi + 1))


def lava_conv_network(seed: int) -> ns.Network:
    """input -> conv (stride 1-2, padding 0-2, dilation 1-2, groups 1-2) -> LIF (reset zero,
    one threshold per channel: Lava's own LIF) -> pool (sum or average) -> IF -> conv (3x3,
    padding 1) -> LIF (subtractive reset: neurosim's process in Lava) -> flatten -> IF -> dense
    -> LI. Every third network is 1-D (Conv1d, no pool, the second conv 1-D)."""
    r = np.random.default_rng(5000 + seed)
    one_d = seed % 3 == 2
    groups = _pick(r, 1, 2)
    cin, c1 = groups * _pick(r, 1, 2), groups * _pick(r, 1, 3)
    k = (_pick(r, 2, 4),) if one_d else (_pick(r, 1, 3), _pick(r, 1, 3))
    stride = tuple(_pick(r, 1, 2) for _ in k)
    padding = tuple(_pick(r, 0, 2) for _ in k)
    dilation = tuple(_pick(r, 1, 2) for _ in k)
    spatial = (_pick(r, 14, 30),) if one_d else tuple(_pick(r, 8, 12) for _ in k)
    conv_cls = ns.Conv1d if one_d else ns.Conv2d
    sizes = [(n + 2 * p - d * (kk - 1) - 1) // s + 1 for n, kk, s, p, d in zip(spatial, k, stride, padding, dilation)]
    l1 = (c1, *sizes)
    theta1 = np.repeat(r.uniform(0.8, 1.2, c1), int(np.prod(sizes)))
    pops = [ns.Population("l1", l1, ns.LIF(beta=r.uniform(0.7, 0.95), alpha=r.uniform(0.1, 0.5), theta=theta1,
                                           reset="zero", bias=ns.channel_bias(r.normal(0, 0.03, c1), l1)))]
    projs: list = [conv_cls("c1", "in", "l1", r.normal(0.4, 0.5, (c1, cin // groups, *k)), stride, padding,
                            dilation, groups)]
    last, shape = "l1", l1
    if not one_d:
        pk = _pick(r, 2, 3)
        pp = _pick(r, 0, pk // 2)
        pool_cls = ns.AvgPool2d if seed % 2 else ns.SumPool2d
        projs.append(pool_cls("pool", "l1", "l2", pk, _pick(r, 1, 2), pp))
        shape = (c1, *[(n + 2 * pp - pk) // projs[-1].stride[i] + 1 for i, n in enumerate(sizes)])
        pops.append(ns.Population("l2", shape, ns.IF(theta=0.45 if pool_cls is ns.AvgPool2d else 1.4,
                                                     reset="zero" if seed % 4 < 2 else "subtract")))
        last = "l2"
    c3 = _pick(r, 2, 4)
    l3 = (c3, *shape[1:])
    kk = (3,) * (len(shape) - 1)
    projs.append(conv_cls("c3", last, "l3", r.normal(0.15, 0.4, (c3, shape[0], *kk)), 1, 1))
    pops.append(ns.Population("l3", l3, ns.LIF(beta=0.9, theta=1.0)))
    n3 = int(np.prod(l3))
    pops += [ns.Population("f", n3, ns.IF(theta=0.8, reset="zero")), ns.Population("out", 5, ns.LI(beta=0.9))]
    projs += [ns.Flatten("fl", "l3", "f"), ns.Projection("fo", "f", "out", r.normal(0, 0.4, (n3, 5)))]
    return ns.Network(1e-3, pops, projs, [ns.SpikeInput("in", (cin, *spatial))], name=f"lavaconv{seed}")


def spikes_in(net: ns.Network, seed: int, steps: int) -> dict[str, np.ndarray]:
    """One trial of random input spikes (steps, 1, size), 10-30% per step."""
    r = np.random.default_rng(seed)
    return {s.name: r.random((steps, 1, s.size)) < r.uniform(0.1, 0.3) for s in net.inputs}

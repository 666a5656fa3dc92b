"""Random convolutional networks for the tests, and an independent torch simulation of them
(torch's conv2d / conv1d / avg_pool2d on spike frames, one kernel per delay class)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import neurosim as ns


def _pick(r: np.random.Generator, lo: int, hi: int) -> int:
    return int(r.integers(lo, hi + 1))


def random_conv_network(seed: int) -> ns.Network:
    """input -> conv (stride 1-2, padding 0-2, dilation 1-2, groups 1-2, scalar or per-tap delays)
    -> LIF -> pool (sum or average) -> IF -> flatten -> IF -> dense -> LI, with a recurrent conv
    and a recurrent CSR projection on the first layer; every third network is 1-D (Conv1d, no pool)."""
    r = np.random.default_rng(1000 + seed)
    one_d = seed % 3 == 2
    groups = _pick(r, 1, 2)
    cin, cout = groups * _pick(r, 1, 2), groups * _pick(r, 1, 3)
    k = (_pick(r, 1, 3),) if one_d else (_pick(r, 1, 3), _pick(r, 1, 3))
    nd = len(k)
    stride = tuple(_pick(r, 1, 2) for _ in k)
    padding = tuple(_pick(r, 0, 2) for _ in k)
    dilation = tuple(_pick(r, 1, 2) for _ in k)
    spatial = tuple(_pick(r, 6, 11) for _ in k) if not one_d else (_pick(r, 12, 30),)
    kernel = r.normal(0.35, 0.5, (cout, cin // groups, *k))
    delay = r.integers(1, 4, kernel.shape) if seed % 2 else _pick(r, 1, 3)
    conv_cls = ns.Conv1d if one_d else ns.Conv2d
    conv = conv_cls("c1", "in", "l1", kernel, stride, padding, dilation, groups, delay)
    sizes = [(n + 2 * p - d * (kk - 1) - 1) // s + 1 for n, kk, s, p, d in zip(spatial, k, stride, padding, dilation)]
    l1_shape = (cout, *sizes)
    n1 = int(np.prod(l1_shape))
    pops = [ns.Population("l1", l1_shape, ns.LIF(beta=r.uniform(0.6, 0.95), alpha=r.uniform(0, 0.5),
                                                 theta=r.uniform(0.8, 1.2, n1),
                                                 bias=ns.channel_bias(r.normal(0, 0.05, cout), l1_shape)))]
    rk = r.normal(0, 0.15, (cout, cout // groups, *[3] * nd))
    projs = [ns.Projection("rec", "l1", "l1", ns.CSR.from_dense(r.normal(0, 0.2, (n1, n1)) * (r.random((n1, n1)) < 0.05)),
                           delay=_pick(r, 1, 3)),
             conv_cls("rc", "l1", "l1", rk, 1, 1, 1, groups, _pick(r, 1, 2)),
             conv]
    last, last_shape = "l1", l1_shape
    pk, ps = _pick(r, 2, 3), _pick(r, 1, 2)
    pp = _pick(r, 0, pk // 2)
    if not one_d and min(sizes) + 2 * pp >= pk:
        pool_cls = ns.AvgPool2d if seed % 4 < 2 else ns.SumPool2d
        pool = pool_cls("pool", "l1", "l2", pk, ps, pp, delay=_pick(r, 1, 2))
        psz = [(n + 2 * pp - pk) // ps + 1 for n in sizes]
        l2_shape = (cout, *psz)
        pops.append(ns.Population("l2", l2_shape, ns.IF(theta=0.53 if pool_cls is ns.AvgPool2d else 1.53)))
        projs.append(pool)
        last, last_shape = "l2", l2_shape
    nf = int(np.prod(last_shape))
    pops += [ns.Population("f", nf, ns.IF(theta=0.9)), ns.Population("out", 4, ns.LI(beta=0.9))]
    projs += [ns.Flatten("fl", last, "f", delay=_pick(r, 1, 2)),
              ns.Projection("fo", "f", "out", r.normal(0, 0.5, (nf, 4)), delay=r.integers(1, 3, (nf, 4)))]
    return ns.Network(1e-3, pops, projs, [ns.SpikeInput("in", (cin, *spatial))], name=f"conv{seed}")


def conv_inputs(net: ns.Network, seed: int, steps: int, batch: int) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    return {s.name: r.random((steps, batch, s.size)) < r.uniform(0.1, 0.3) for s in net.inputs}


def _shaped(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    return x.reshape(x.shape[0], *shape)


def torch_simulate(net: ns.Network, inputs: dict[str, np.ndarray], steps: int) -> dict[str, np.ndarray]:
    """Spikes (steps, batch, size) of every population, float64, with the convolutions computed by
    torch's own conv2d / conv1d / avg_pool2d (one call per delay class), the neuron step by
    neurosim.neuron_step on torch tensors."""
    batch = next(iter(inputs.values())).shape[1]
    shapes = {**{p.name: p.shape for p in net.populations}, **{s.name: s.shape for s in net.inputs}}
    ring = 1 + max(j.max_delay for j in net.projections)
    buf = {p.name: torch.zeros(ring, batch, p.size, dtype=torch.float64) for p in net.populations}
    params = {p.name: ns.NeuronParams(*(torch.tensor(np.asarray(a, np.float64)) for a in p.params))
              for p in net.populations}
    state = {p.name: ns.NeuronState(*(torch.tensor(np.broadcast_to(a, (batch, p.size)).copy()) for a in (p.i0, p.v0, p.a0)),
                                    torch.zeros(batch, p.size, dtype=torch.float64),
                                    torch.zeros(batch, p.size, dtype=torch.float64)) for p in net.populations}
    out = {p.name: np.zeros((steps, batch, p.size), bool) for p in net.populations}

    def send(j, s: torch.Tensor, t: int) -> None:
        shp = shapes[j.pre]
        if isinstance(j, (ns.Conv2d, ns.Conv1d)):
            delays = np.broadcast_to(np.asarray(j.delay), j.kernel.shape)
            op = F.conv1d if isinstance(j, ns.Conv1d) else F.conv2d
            for d in np.unique(delays):
                k = torch.tensor(np.where(delays == d, j.kernel, 0.0))
                y = op(_shaped(s, shp), k, None, j.stride, j.padding, j.dilation, j.groups)
                buf[j.post][(t + d) % ring] += y.reshape(batch, -1)
        elif isinstance(j, ns.SumPool2d):
            div = None if isinstance(j, ns.AvgPool2d) else 1
            y = F.avg_pool2d(_shaped(s, shp), j.kernel_size, j.stride, j.padding, count_include_pad=True,
                             divisor_override=div)
            buf[j.post][(t + j.delay) % ring] += y.reshape(batch, -1)
        elif isinstance(j, ns.Flatten):
            buf[j.post][(t + j.delay) % ring] += s
        else:
            for d, c in j.delay_classes():
                buf[j.post][(t + d) % ring] += s @ torch.tensor(c.to_dense())

    for t in range(steps):
        spikes = {}
        for p in net.populations:
            x = buf[p.name][t % ring].clone()
            buf[p.name][t % ring] = 0
            state[p.name] = ns.neuron_step(params[p.name], state[p.name], x)
            spikes[p.name] = state[p.name].z
            out[p.name][t] = state[p.name].z.numpy() > 0
        for s in net.inputs:
            spikes[s.name] = torch.tensor(inputs[s.name][t].astype(np.float64))
        for j in net.projections:
            send(j, spikes[j.pre], t)
    return out

"""Shaped nodes and shaped projections (neurosim.conv): validation names the field and the
expected shape; the CSR lowering equals torch's conv1d / conv2d / avg_pool2d on random frames."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import neurosim as ns

IN = ns.SpikeInput("in", (2, 34, 34))


def conv_net(kernel, post_shape, **kw):
    return ns.Network(1e-3, [ns.Population("c1", post_shape, ns.LIF())], [ns.Conv2d("c1", "in", "c1", kernel, **kw)],
                      [IN])


def test_shape_sets_size_and_flat_order():
    p = ns.Population("p", 24, ns.LIF(), shape=(2, 3, 4))
    assert p.size == 24 and p.shape == (2, 3, 4)
    assert ns.Population("q", (2, 3, 4), ns.LIF()).shape == (2, 3, 4)
    assert ns.Population("r", 5, ns.LIF()).shape == (5,)
    assert ns.SpikeInput("s", (3, 7)).size == 21 and ns.PoissonInput("u", 6, 5.0, shape=(2, 3)).shape == (2, 3)
    with pytest.raises(ns.NetworkError, match=r"populations\.p\.size: expected prod\(shape\) = 24"):
        ns.Population("p", 25, ns.LIF(), shape=(2, 3, 4))
    for bad in ((2, 0, 4), (1, 2, 3, 4), (2.5, 2), ()):
        with pytest.raises(ns.NetworkError, match=r"populations\.p\.shape"):
            ns.Population("p", None, ns.LIF(), shape=bad)


def test_validation_names_field_and_expected_shape():
    k = np.zeros((16, 2, 5, 5))
    with pytest.raises(ns.NetworkError) as exc:
        conv_net(np.zeros((16, 1, 5, 5)), (16, 16, 16), stride=2, padding=1)
    assert str(exc.value) == ("projections.c1.kernel: expected (16, 2, 5, 5) for in (2, 34, 34) -> out "
                              "(16, 16, 16) with stride 2, padding 1, got (16, 1, 5, 5)")
    with pytest.raises(ns.NetworkError) as exc:
        conv_net(k, (16, 15, 15), stride=2, padding=1)
    assert str(exc.value) == ("projections.c1.post: expected shape (16, 16, 16) for in (2, 34, 34) with kernel 5x5, "
                              "stride 2, padding 1, got (16, 15, 15)")
    with pytest.raises(ns.NetworkError, match=r"projections\.c1\.groups: expected a divisor of in channels 2"):
        conv_net(np.zeros((15, 1, 5, 5)), (15, 30, 30), groups=3)
    with pytest.raises(ns.NetworkError, match=r"projections\.c1\.delay: expected a scalar or shape \(16, 2, 5, 5\)"):
        ns.Conv2d("c1", "in", "c1", k, delay=np.ones((16, 2, 5)))
    with pytest.raises(ns.NetworkError, match=r"projections\.c1\.kernel: expected a 4-D array"):
        ns.Conv2d("c1", "in", "c1", np.zeros((16, 2, 5)))
    with pytest.raises(ns.NetworkError, match=r"projections\.c1\.stride"):
        ns.Conv2d("c1", "in", "c1", k, stride=0)
    with pytest.raises(ns.NetworkError, match=r"projections\.c1\.pre: expected a node of shape \(C, H, W\)"):
        ns.Network(1e-3, [ns.Population("c1", (16, 30, 30), ns.LIF())], [ns.Conv2d("c1", "in", "c1", k)],
                   [ns.SpikeInput("in", 2312)])
    with pytest.raises(ns.NetworkError, match=r"projections\.c1\.kernel: expected a dilated kernel"):
        conv_net(np.zeros((16, 2, 5, 5)), (16, 1, 1), dilation=9)
    with pytest.raises(ns.NetworkError, match=r"projections\.p\.padding: expected at most half"):
        ns.SumPool2d("p", "in", "p", 2, padding=2)
    with pytest.raises(ns.NetworkError, match=r"projections\.p\.post: expected shape \(2, 17, 17\)"):
        ns.Network(1e-3, [ns.Population("p", (2, 16, 16), ns.IF())], [ns.AvgPool2d("p", "in", "p", 2)], [IN])
    with pytest.raises(ns.NetworkError, match=r"projections\.f\.post: expected shape \(2312\)"):
        ns.Network(1e-3, [ns.Population("f", (2, 1156), ns.IF())], [ns.Flatten("f", "in", "f")], [IN])
    with pytest.raises(ns.NetworkError, match=r"projections\.c1\.in_shape: expected the shape of 'in'"):
        conv_net(k, (16, 30, 30), in_shape=(2, 33, 34))
    with pytest.raises(ns.NetworkError, match=r"projections\.c1\.in_shape: unknown until"):
        ns.Conv2d("c1", "in", "c1", k).to_csr()


def _frames(rng, shape, n=3):
    return (rng.random((n, *shape)) < 0.35).astype(np.float64)


@pytest.mark.parametrize("seed", range(12))
def test_lowering_equals_torch(seed):
    """x @ to_csr() equals torch's op on random 0/1 frames (float64; rounding of sums of <= C*k*k terms)."""
    rng = np.random.default_rng(seed)
    groups = int(rng.integers(1, 3))
    cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 4))
    kh, kw = (int(v) for v in rng.integers(1, 4, 2))
    stride = tuple(int(v) for v in rng.integers(1, 3, 2))
    padding = tuple(int(v) for v in rng.integers(0, 3, 2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
    h, w = (int(v) for v in rng.integers(6, 11, 2))
    kernel = rng.normal(size=(cout, cin // groups, kh, kw))
    delay = rng.integers(1, 4, kernel.shape)
    x = _frames(rng, (cin, h, w))
    ref = F.conv2d(torch.tensor(x), torch.tensor(kernel), None, stride, padding, dilation, groups).numpy()
    net = ns.Network(1e-3, [ns.Population("o", ref.shape[1:], ns.LIF())],
                     [ns.Conv2d("c", "in", "o", kernel, stride, padding, dilation, groups, delay)],
                     [ns.SpikeInput("in", (cin, h, w))])
    conv = net.projections[0]
    csr, d = conv.to_csr()
    assert csr.nnz == conv.n_synapses and not csr.has_duplicates
    tol = 8 * np.finfo(float).eps * np.abs(kernel).sum()
    np.testing.assert_allclose(x.reshape(3, -1) @ csr.to_dense(), ref.reshape(3, -1), rtol=0, atol=tol)
    # delays follow their kernel entries: lowering the delay array as weights gives the same pattern
    dconv = ns.Conv2d("c", "in", "o", delay.astype(float), stride, padding, dilation, groups, in_shape=(cin, h, w))
    np.testing.assert_array_equal(d, dconv.to_csr()[0].values)
    # 1-D: the same on one row
    k1 = kernel[:, :, 0, :]
    x1 = x[:, :, 0, :]
    ref1 = F.conv1d(torch.tensor(x1), torch.tensor(k1), None, stride[1], padding[1], dilation[1], groups).numpy()
    c1 = ns.Conv1d("c", "in", "o", k1, stride[1], padding[1], dilation[1], groups, in_shape=(cin, w))
    assert c1.out_shape == ref1.shape[1:]
    np.testing.assert_allclose(x1.reshape(3, -1) @ c1.to_csr()[0].to_dense(), ref1.reshape(3, -1), rtol=0, atol=tol)


@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 0))])
def test_pool_lowering_equals_torch(k, s, p):
    rng = np.random.default_rng(7)
    x = _frames(rng, (3, 9, 10))
    ref = F.avg_pool2d(torch.tensor(x), k, s, p, count_include_pad=True).numpy()
    avg = ns.AvgPool2d("p", "in", "p", k, s, p, in_shape=(3, 9, 10))
    tot = ns.SumPool2d("p", "in", "p", k, s, p, in_shape=(3, 9, 10))
    assert avg.out_shape == ref.shape[1:] == tot.out_shape
    kk = np.prod(avg.kernel_size)
    np.testing.assert_allclose(x.reshape(3, -1) @ avg.to_csr()[0].to_dense(), ref.reshape(3, -1), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(x.reshape(3, -1) @ tot.to_csr()[0].to_dense(), kk * ref.reshape(3, -1), rtol=1e-14)


def test_flatten_bias_lowered_network_and_summary():
    k = np.random.default_rng(1).normal(size=(4, 2, 3, 3))
    b = np.array([0.1, -0.2, 0.3, 0.0])
    pops = [ns.Population("c", (4, 32, 32), ns.LIF(bias=ns.channel_bias(b, (4, 32, 32)))),
            ns.Population("f", 4096, ns.IF())]
    net = ns.Network(1e-3, pops, [ns.Conv2d("c", "in", "c", k), ns.Flatten("fl", "c", "f", delay=2)], [IN])
    assert net.population("c").params.bias.reshape(4, -1)[:, 7].tolist() == b.tolist()
    assert net.projections[0].in_shape == (2, 34, 34) and net.projections[1].out_shape == (4096,)
    low = net.lowered()
    assert [type(j).__name__ for j in low.projections] == ["Projection", "Projection"]
    assert low.n_synapses == net.n_synapses and net.lowered() is not net and low.lowered() is low
    np.testing.assert_array_equal(low.projections[1].weights.to_dense(), np.eye(4096))
    assert low.projections[1].delay == 2
    assert "conv2d, kernel (4, 2, 3, 3)" in net.summary() and "shape (4, 32, 32)" in net.summary()
    with pytest.raises(ns.NetworkError, match=r"projections\.c: lava takes dense and CSR projections only"):
        net.refuse_shaped("lava")
    with pytest.raises(ns.NetworkError, match=r"bias: expected one value per output channel"):
        ns.channel_bias(b[:3], (4, 32, 32))

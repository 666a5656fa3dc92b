"""NeuroBench metrics: against hand counts on small networks, and against the `neurobench`
package's own computation on snnTorch models whose spikes equal neurosim's."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim.metrics import neurobench_metrics


def _run(net, spikes, **kw):
    return ns.simulate(net, {"in": spikes}, spikes.shape[0], backend="numpy", dtype="float64", **kw)


def test_hand_counts_feed_forward():
    """2 inputs -> 3 LIF -> 2 LIF, some weights zero: every metric counted by hand."""
    w1 = np.array([[2.0, 0.0, 0.5], [0.0, 0.0, 2.0]])  # input 0 reaches 2 synapses, input 1 one
    w2 = np.array([[2.0, 0.0], [0.0, 0.0], [0.0, 2.0]])  # neuron 0 and 2 of l1 reach one each
    net = ns.Network(
        populations=[ns.Population("l1", 3, ns.LIF(beta=0.5, theta=1.0, reset="zero")),
                     ns.Population("l2", 2, ns.LIF(beta=0.5, theta=1.0, reset="zero"))],
        inputs=[ns.SpikeInput("in", 2)],
        projections=[ns.Projection("a", "in", "l1", w1), ns.Projection("b", "l1", "l2", w2)], dt=1e-3)
    x = np.zeros((6, 1, 2), bool)
    x[0, 0, 0] = x[2, 0, 1] = x[3, 0, 0] = True  # 2 + 1 + 2 = 5 ACs on projection a
    res = _run(net, x)
    l1 = res.spikes["l1"].dense()[:, 0]
    # input 0 at steps 0 and 3 drives l1[0] (2.0 > 1) at 1 and 4; input 1 at step 2 drives l1[2] at 3
    assert np.argwhere(l1).tolist() == [[1, 0], [3, 2], [4, 0]]
    m = neurobench_metrics(net, res)
    assert m.effective_acs == 5 + 3  # each l1 spike reaches one nonzero synapse of b
    assert m.effective_macs == 0
    assert m.dense_synops == 6 * (2 * 3 + 3 * 2)
    n_spikes = 3 + len(res.spikes["l2"])
    assert len(res.spikes["l2"]) == 3  # l2[0] after l1[0] twice, l2[1] after l1[2]
    assert m.activation_sparsity == pytest.approx(1 - n_spikes / (5 * 6), abs=1e-15)
    assert m.connection_sparsity == pytest.approx((3 + 4) / 12, abs=1e-15)
    assert m.parameter_count == 12
    assert m.footprint_bytes == 12 * 8  # float64 run


def test_hand_counts_sparse_delays_multapses_and_batch():
    """A sparse projection with two delay classes and a multapse, two trials, a LI readout."""
    csr = ns.CSR.from_coo([0, 0, 0, 1], [0, 0, 1, 1], [0.7, 0.7, 0.3, 1.5], (2, 2))
    delays = np.array([1, 1, 3, 1])  # (0,0) twice at delay 1 (one matrix entry 1.4), (0,1) at 3
    net = ns.Network(
        populations=[ns.Population("h", 2, ns.LIF(beta=0.9, theta=1.0)),
                     ns.Population("out", 2, ns.LI(beta=0.9))],
        inputs=[ns.SpikeInput("in", 2)],
        projections=[ns.Projection("p", "in", "h", csr, delays),
                     ns.Projection("r", "h", "out", np.eye(2))], dt=1e-3)
    x = np.zeros((5, 2, 2), bool)
    x[0, 0, 0] = x[1, 1, 1] = x[2, 1, 0] = True
    res = _run(net, x)
    m = neurobench_metrics(net, res)
    # delay-1 matrix rows: input 0 -> 1 entry (summed multapse), input 1 -> 1; delay-3: input 0 -> 1
    acs_p = (2 + 1 + 2)  # events of input 0 (two) reach 2 entries, the input-1 event one
    acs_r = len(res.spikes["h"])  # identity readout: one synapse per spike
    assert m.effective_acs == pytest.approx((acs_p + acs_r) / 2, abs=0)
    assert m.dense_synops == 5 * (2 * 4 + 4)  # per trial: 5 steps, two 2x2 delay classes and the readout
    assert m.connection_sparsity == pytest.approx((4 - 2 + 4 - 1 + 4 - 2) / 12, abs=1e-15)
    spikes_h = len(res.spikes["h"])
    assert m.activation_sparsity == pytest.approx(1 - spikes_h / (2 * 5 * 2), abs=1e-15)  # LI not counted
    assert m.parameter_count == 3 + 4  # 2 + 1 synapses after summing, the readout's 4 entries
    assert m.footprint_bytes == 7 * 8 + 8 * (2 + 3) + 8 * (1 + 3)  # values; indices + indptr of both W_d


def test_biases_are_parameters_not_synaptic_operations():
    net = ns.Network(populations=[ns.Population("h", 4, ns.LIF(bias=0.3))], inputs=[ns.SpikeInput("in", 3)],
                     projections=[ns.Projection("p", "in", "h", np.ones((3, 4)))], dt=1e-3)
    x = np.zeros((4, 1, 3), bool)
    x[1, 0, 2] = True
    m = neurobench_metrics(net, _run(net, x))
    assert (m.effective_acs, m.parameter_count) == (4, 12 + 4)


def test_poisson_input_events_are_counted():
    net = ns.Network(populations=[ns.Population("h", 5, ns.LIF())], inputs=[ns.PoissonInput("in", 7, rate=200.0)],
                     projections=[ns.Projection("p", "in", "h", np.full((7, 5), 0.1))], dt=1e-3)
    res = ns.simulate(net, steps=50, batch=3, seed=4)
    m = neurobench_metrics(net, res)
    assert m.effective_acs == pytest.approx(5 * len(res.spikes["in"]) / 3, abs=0)
    assert len(res.spikes["in"]) > 0


def test_refuses_a_result_of_another_network():
    net = ns.Network(populations=[ns.Population("h", 2, ns.LIF())], inputs=[ns.SpikeInput("in", 1)],
                     projections=[ns.Projection("p", "in", "h", np.ones((1, 2)))], dt=1e-3)
    other = ns.Network(populations=[ns.Population("h", 2, ns.LIF())], inputs=[ns.SpikeInput("x", 1)],
                       projections=[ns.Projection("p", "x", "h", np.ones((1, 2)))], dt=1e-3)
    res = ns.simulate(other, {"x": np.zeros((3, 1), bool)}, 3)
    with pytest.raises(ValueError, match="result.spikes: no spikes of 'in'"):
        neurobench_metrics(net, res)


# --- against the neurobench package -------------------------------------------------------------

def _snntorch_and_neurosim(sizes: list[int], seed: int, prune: float):
    """A Linear(bias=False) -> Leaky(reset zero, no reset delay) stack in snnTorch (float64) and
    the same network in neurosim. snnTorch's layer k sees layer k-1's spikes in the same step;
    neurosim's projections deliver one step later, so neurosim's layer k lags k steps."""
    import snntorch as snn
    import torch

    rng = np.random.default_rng(seed)
    betas = rng.uniform(0.6, 0.95, len(sizes) - 1)
    weights = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        w = rng.normal(0.6, 0.5, (b, a))
        w[rng.random(w.shape) < prune] = 0.0
        weights.append(w)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fcs = torch.nn.ModuleList()
            self.lifs = torch.nn.ModuleList()
            for w, beta in zip(weights, betas):
                fc = torch.nn.Linear(w.shape[1], w.shape[0], bias=False).double()
                fc.weight.data = torch.tensor(w)
                self.fcs.append(fc)
                self.lifs.append(snn.Leaky(beta=float(beta), threshold=1.0, reset_mechanism="zero",
                                           reset_delay=False, init_hidden=False))
            self.mems = None

        def reset(self):
            self.mems = None

        def forward(self, x):
            if self.mems is None:
                self.mems = [lif.init_leaky() for lif in self.lifs]
            self.record = []
            for k, (fc, lif) in enumerate(zip(self.fcs, self.lifs)):
                x, self.mems[k] = lif(fc(x), self.mems[k])
                x = x.double()  # snnTorch's spike function returns float32
                self.record.append(x)
            return x, self.mems[-1]

    pops = [ns.Population(f"l{k}", n, ns.LIF(beta=float(b), theta=1.0, reset="zero"))
            for k, (n, b) in enumerate(zip(sizes[1:], betas))]
    names = ["in"] + [p.name for p in pops]
    projs = [ns.Projection(f"w{k}", names[k], names[k + 1], w.T) for k, w in enumerate(weights)]
    net = ns.Network(populations=pops, inputs=[ns.SpikeInput("in", sizes[0])], projections=projs, dt=1e-3)
    return Net(), net


@pytest.mark.parametrize("sizes,seed,prune", [([20, 30, 10], 0, 0.0), ([16, 24, 24, 6], 1, 0.3),
                                              ([40, 12, 8], 2, 0.6)])
def test_equals_the_neurobench_package_on_snntorch_models(sizes, seed, prune):
    pytest.importorskip("snntorch")
    pytest.importorskip("neurobench")
    import torch
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, ParameterCount
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import SNNTorchModel

    torch_net, net = _snntorch_and_neurosim(sizes, seed, prune)
    T, B, depth = 25, 4, len(sizes) - 1
    rng = np.random.default_rng(100 + seed)
    x = np.zeros((T + depth, B, sizes[0]), bool)  # zero-padded: neurosim's last layer lags `depth` steps
    x[:T] = rng.random((T, B, sizes[0])) < 0.3
    res = _run(net, x)
    # same spikes: neurosim's layer k at step t + k + 1 is snnTorch's at step t
    data = torch.tensor(x.transpose(1, 0, 2), dtype=torch.float64)  # (batch, steps, features)
    with torch.no_grad():
        torch_net.reset()
        recs = []
        for t in range(T + depth):
            torch_net(data[:, t])
            recs.append([r.numpy().copy() for r in torch_net.record])
    for k in range(depth):
        theirs = np.stack([r[k] for r in recs])[: T + depth - k - 1]
        ours = res.spikes[f"l{k}"].dense()[k + 1:].astype(float)
        assert np.array_equal(ours, theirs), f"layer {k}: spikes differ"
        assert ours.sum() > 0

    labels = torch.zeros(B, dtype=torch.long)
    model = SNNTorchModel(torch_net)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data, labels), batch_size=B)
    bench = Benchmark(model, loader, [], [], [[ParameterCount, ConnectionSparsity],
                                             [ActivationSparsity, SynapticOperations]])
    theirs = bench.run(quiet=True, verbose=False)
    ours = neurobench_metrics(net, res)
    syn = theirs["SynapticOperations"]
    assert ours.effective_acs == pytest.approx(syn["Effective_ACs"], rel=1e-6)
    assert ours.effective_macs == syn["Effective_MACs"] == 0
    assert ours.dense_synops == pytest.approx(syn["Dense"], rel=1e-6)
    assert ours.activation_sparsity == pytest.approx(theirs["ActivationSparsity"], rel=1e-6)
    assert round(ours.connection_sparsity, 4) == theirs["ConnectionSparsity"]  # NeuroBench rounds to 4
    assert ours.parameter_count == theirs["ParameterCount"]


def test_simulate_cli_prints_and_writes_the_metrics(tmp_path, capsys):
    import json

    from neurosim.cli import main

    net = ns.Network(populations=[ns.Population("h", 5, ns.LIF())], inputs=[ns.PoissonInput("in", 7, rate=300.0)],
                     projections=[ns.Projection("p", "in", "h", np.full((7, 5), 0.2))], dt=1e-3)
    ns.save(net, tmp_path / "m.h5")
    out, js = tmp_path / "r.h5", tmp_path / "metrics.json"
    assert main(["simulate", str(tmp_path / "m.h5"), "--steps", "40", "--batch", "2", "--seed", "3",
                 "--out", str(out), "--metrics", str(js), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "NeuroBench metrics" in printed and "activation sparsity" in printed
    got = json.loads(js.read_text())
    want = neurobench_metrics(net, ns.load_result(out))
    assert got == pytest.approx(want.as_dict(), rel=1e-12)
    assert got["effective_acs"] > 0


def test_graded_sources_count_multiply_accumulates():
    """Event counts from a torch loop (or graded input): a graded source's operations are MACs."""
    from neurosim.metrics import metrics_from_counts

    net = ns.Network(populations=[ns.Population("h", 3, ns.LIF())], inputs=[ns.SpikeInput("in", 2)],
                     projections=[ns.Projection("p", "in", "h", [[1.0, 0.0, 2.0], [0.5, 0.5, 0.5]]),
                                  ns.Projection("r", "h", "h", np.eye(3))], dt=1e-3)
    counts = {"in": np.array([4, 1]), "h": np.array([2, 0, 1])}
    m = metrics_from_counts(net, counts, steps=10, trials=2, graded={"in"})
    assert (m.effective_macs, m.effective_acs) == ((4 * 2 + 1 * 3) / 2, 3 / 2)
    assert m.dense_synops == 10 * (6 + 9)
    assert m.activation_sparsity == pytest.approx(1 - 3 / (3 * 10 * 2), abs=1e-15)
    with pytest.raises(ValueError, match="expected 2 event counts of 'in'"):
        metrics_from_counts(net, {"in": np.array([1]), "h": counts["h"]}, 10, 2)


@pytest.mark.parametrize("stride,padding,groups", [(1, 0, 1), (2, 1, 2)])
def test_convolution_counts_equal_neurobench_on_a_torch_conv_layer(stride, padding, groups):
    """A Conv2d projection from a spike input: effective and dense operations equal NeuroBench's
    own `single_layer_MACs` on torch's Conv2d with the same kernel, step by step; parameters and
    connection sparsity are the kernel's; a pooling projection adds nothing."""
    pytest.importorskip("neurobench")
    import torch
    from neurobench.metrics.utils.layers import single_layer_MACs

    r = np.random.default_rng(stride + 3 * groups)
    kernel = r.normal(0.3, 0.5, (4, 4 // groups, 3, 3))
    kernel[r.random(kernel.shape) < 0.3] = 0.0
    conv = ns.Conv2d("c", "in", "h", kernel, stride=stride, padding=padding, groups=groups)
    side = (9 + 2 * padding - 3) // stride + 1
    net = ns.Network(populations=[ns.Population("h", (4, side, side), ns.LIF()),
                                  ns.Population("p", (4, side // 2, side // 2), ns.IF())],
                     inputs=[ns.SpikeInput("in", (4, 9, 9))],
                     projections=[conv, ns.SumPool2d("pool", "h", "p", 2)], dt=1e-3)
    x = r.random((12, 3, 4 * 81)) < 0.2
    m = neurobench_metrics(net, _run(net, x))
    layer = torch.nn.Conv2d(4, 4, 3, stride, padding, groups=groups, bias=False).double()
    layer.weight.data = torch.tensor(kernel)
    eff = dense = 0
    for t in range(12):
        spikes = torch.tensor(x[t].reshape(3, 4, 9, 9), dtype=torch.float64)
        eff += single_layer_MACs(spikes, layer)[0]
        dense += single_layer_MACs(spikes, layer, total=True)[0]
    assert m.effective_acs == pytest.approx(eff / 3, rel=1e-12) and eff > 0
    assert m.dense_synops == pytest.approx(dense / 3, rel=1e-12)
    assert m.parameter_count == kernel.size
    assert m.connection_sparsity == pytest.approx(np.mean(kernel == 0), abs=1e-15)

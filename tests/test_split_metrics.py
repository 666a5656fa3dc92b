"""NeuroBench metrics of a trained network on a test split: neurosim's event counts, summed over
batches, equal the spike counts of the torch module itself (float64) and one whole-split run."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import neurosim as ns  # noqa: E402
from neurosim.metrics import neurobench_metrics  # noqa: E402
from training.layers import from_network  # noqa: E402
from training.nets import recurrent_network  # noqa: E402
from training.runfiles import to_batch  # noqa: E402
from training.split_metrics import split_metrics  # noqa: E402
from training.tasks import make_task  # noqa: E402


def test_batched_neurosim_counts_equal_the_torch_module_and_one_run():
    task = make_task("digits", seed=0, n_train=16, n_test=24)
    net = recurrent_network(task.n_in, 12, task.n_out, model="lif", dt=task.dt, seed=1)
    m = split_metrics(net, task.test, batch_size=10, backend="numpy")
    # one run over the whole split
    x = to_batch(task.test, np.arange(24), torch.float64).inputs.numpy()
    res = ns.simulate(net, {"in": x != 0}, x.shape[0], dtype="float64")
    assert m == neurobench_metrics(net, res)
    # the torch module's own spikes (float64) give the same effective operations
    model = from_network(net, dtype=torch.float64, fused=False)
    with torch.no_grad():
        out, _ = model(torch.as_tensor(x), record=("z",))
    hidden = out["hidden"]["z"].sum(dim=(0, 1)).numpy()
    w_in, w_rec = (np.asarray(net.projections[k].weights) for k in (0, 1))
    assert [p.name for p in net.projections][:2] == ["in_hidden", "hidden_hidden"]
    acs = (x != 0).sum(axis=(0, 1)) @ (w_in != 0).sum(axis=1) + hidden @ (w_rec != 0).sum(axis=1)
    acs += hidden @ (np.asarray(net.projections[2].weights) != 0).sum(axis=1)
    assert m.effective_acs == pytest.approx(acs / 24, rel=1e-12)
    spiking = net.population("hidden").size * x.shape[0] * 24
    assert m.activation_sparsity == pytest.approx(1 - hidden.sum() / spiking, rel=1e-12)


def test_train_writes_the_metrics_of_every_epoch_into_metrics_csv(tmp_path):
    import csv

    from neurosim.cli import main

    run = tmp_path / "run"
    assert main(["train", "--task", "digits", "--hidden", "8", "--model", "lif", "--n-train", "32", "--n-test", "16",
                 "--epochs", "2", "--no-progress", "--out", str(run)]) == 0
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    task = make_task("digits", seed=0, n_train=32, n_test=16)
    last = split_metrics(ns.load(run / "model.h5"), task.test, batch_size=32, dtype="float32")
    for key, value in last.as_dict().items():
        assert float(rows[-1][f"test_{key}"]) == pytest.approx(value, rel=1e-12), key
    assert float(rows[0]["test_dense_synops"]) == last.dense_synops  # the structure does not change

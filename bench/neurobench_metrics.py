"""neurosim.metrics against the neurobench package on snnTorch models whose spikes equal
neurosim's (the three models of tests/test_metrics.py): prints both and the relative difference.

    python bench/neurobench_metrics.py
"""
from __future__ import annotations

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from test_metrics import _run, _snntorch_and_neurosim  # noqa: E402

from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.static import ConnectionSparsity, ParameterCount  # noqa: E402
from neurobench.metrics.workload import ActivationSparsity, SynapticOperations  # noqa: E402
from neurobench.models import SNNTorchModel  # noqa: E402

from neurosim.metrics import neurobench_metrics  # noqa: E402

for sizes, seed, prune in ([20, 30, 10], 0, 0.0), ([16, 24, 24, 6], 1, 0.3), ([40, 12, 8], 2, 0.6):
    torch_net, net = _snntorch_and_neurosim(sizes, seed, prune)
    T, B, depth = 25, 4, len(sizes) - 1
    rng = np.random.default_rng(100 + seed)
    x = np.zeros((T + depth, B, sizes[0]), bool)
    x[:T] = rng.random((T, B, sizes[0])) < 0.3
    ours = neurobench_metrics(net, _run(net, x))
    data = torch.tensor(x.transpose(1, 0, 2), dtype=torch.float64)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data, torch.zeros(B, dtype=torch.long)),
                                         batch_size=B)
    theirs = Benchmark(SNNTorchModel(torch_net), loader, [], [], [[ParameterCount, ConnectionSparsity],
                       [ActivationSparsity, SynapticOperations]]).run(quiet=True)
    pairs = {"effective ACs": (ours.effective_acs, theirs["SynapticOperations"]["Effective_ACs"]),
             "dense": (ours.dense_synops, theirs["SynapticOperations"]["Dense"]),
             "activation sparsity": (ours.activation_sparsity, theirs["ActivationSparsity"]),
             "connection sparsity": (round(ours.connection_sparsity, 4), theirs["ConnectionSparsity"]),
             "parameters": (ours.parameter_count, theirs["ParameterCount"])}
    print(f"model {sizes} seed {seed} pruned {prune}:")
    for k, (a, b) in pairs.items():
        print(f"  {k:<20} neurosim {a:<14.6g} neurobench {b:<14.6g} rel. diff {abs(a - b) / max(abs(b), 1e-300):.1e}")

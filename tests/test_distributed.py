"""Data-parallel training (training.distributed): shard gradients weighted by shard size equal
the global batch's gradient for every rule; 2 gloo processes end with the weights of one
process; a checkpoint of a 2-process run resumes in 1 process.

Tolerance of the process comparisons (`tolerance`), derived from the computation. One gradient
element is a mean over the B = 7 samples of a batch; one process sums the B per-sample terms in
one order, two ranks sum 4 and 3 of them, scale by 4/7 and 3/7 and add (in float64, then back to
the weights' dtype): B + 1 roundings, each of relative size u (float64 u = 2**-53 = 1.1e-16,
float32 u = 2**-24 = 6.0e-8) of the terms' absolute sum S. Adam's step lr * m/(sqrt(v) + eps)
divides by the gradient's RMS rather than by S, so an element whose per-sample terms nearly
cancel turns that error into a step error of up to lr * (B + 1) * u * A, with A = S / RMS the
cancellation factor. Nothing in the data bounds A; we take A = 1e4 (the differences seen below
correspond to A of 40 to 430, in float32 and float64 alike, as the error scales with u). The N
updates add their errors (the learning rate only falls under the cosine schedule):
``tolerance = N * lr * (B + 1) * u * A``.
- float64, bptt --clip (N = 2 epochs * 4 batches = 8): 2.1e-13; seen 5.6e-17.
- float64, ottt --update step (N = 2 * 4 * 10 loss steps = 80): 2.1e-12; seen 8.8e-15 and 9.1e-14.
- float32, bptt --clip (N = 8): 1.1e-4; seen 3.7e-8. Per-step updates are compared in float64
  only: their float32 bound, 1.1e-3 (seen 5.8e-6 and 1.17e-5, over the old fixed 1e-5), is too
  close to what a weighting error does to tell the two apart.
The bound holds while no spike appears or vanishes; a weight difference that moves a membrane
across its threshold grows to the size of a learning-rate step (a 3-epoch float32 ottt run went
from 1e-5 after epoch 2 to 5e-3 during epoch 3): float64 keeps differences ~1e-13, far from any
threshold. A weighting error (every rank weighted 1/2 instead of n_r/n) moves weights by a few
learning-rate steps, 1e-2 in 8 updates (test_a_wrong_shard_weighting_is_caught); a scale error
(sum for mean), to which Adam is blind, shows through --clip and in the gradient test, which
compares gradients directly.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.distributed import World  # noqa: E402
from training.layers import from_network  # noqa: E402
from training.nets import recurrent_network  # noqa: E402
from training.rules import Batch, make_rule  # noqa: E402
from training.trainer import TrainConfig, train  # noqa: E402

ROOT = str(Path(__file__).resolve().parents[1])
UNIT_ROUNDOFF = {"float64": 2.0 ** -53, "float32": 2.0 ** -24}
ADAM_MAGNIFICATION = 1e4  # A in the module docstring
# 22 samples in batches of 7: the last batch has 1 sample, so rank 1's shard is empty there
TINY = dict(task="digits", hidden=8, n_train=22, n_test=10, batch_size=7, seed=3)
RULES = [("bptt", {}), ("tbptt", dict(k=7)), ("budgeted", dict(budget=3)), ("ratebp", {}),
         ("ottt", {}), ("eprop", {})]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")


def _weights(run: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    return {k: v for k, v in state["model"].items() if k.startswith("weights.")}


def tolerance(dtype: str, updates: int, batch: int = 7, lr: float = 3e-3) -> float:
    """Bound on the weight difference between 1 and 2 processes (module docstring)."""
    return updates * lr * (batch + 1) * UNIT_ROUNDOFF[dtype] * ADAM_MAGNIFICATION


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float) -> None:
    diff = _max_difference(a, b)
    print(f"max weight difference {diff:.3g} (tolerance {atol:.3g})")
    assert diff <= atol, (diff, atol)


@pytest.mark.parametrize("rule,options", RULES, ids=[r for r, _ in RULES])
def test_shard_gradients_weighted_by_size_equal_the_global_batch(rule, options):
    """sum_r (n_r / n) grad(shard r) == grad(global batch), for shards of 3 and 2 samples."""
    net = recurrent_network(6, 12, 3, model="alif", seed=1)
    g = torch.Generator().manual_seed(0)
    T, B = 30, 5
    x = (torch.rand(T, B, 6, generator=g) < 0.3).float()
    y = torch.tensor([0, 1, 2, 1, 0])
    mask = torch.arange(T) >= 20

    def grads(idx: np.ndarray) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = from_network(net)
        make_rule(rule, **options).backward(model, Batch(x[:, idx], y[idx], mask))
        return {k: p.grad for k, p in model.weights.items()}

    full = grads(np.arange(B))
    total = {k: torch.zeros_like(v) for k, v in full.items()}
    for rank in range(2):
        idx, weight = World(rank, 2).shard(np.arange(B))
        assert len(idx) == (3, 2)[rank] and weight == len(idx) / B
        for k, v in grads(idx).items():
            total[k] += weight * v
    for k in full:
        assert torch.allclose(total[k], full[k], rtol=1e-5, atol=1e-7), (rule, k)


def test_empty_shard_is_one_sample_of_weight_zero():
    assert World(1, 2).shard(np.array([9])) == (np.array([9]), 0.0)
    idx, weight = World(0, 2).shard(np.array([9]))
    assert list(idx) == [9] and weight == 1.0
    parts = [World(r, 3).shard(np.arange(7)) for r in range(3)]
    assert [list(i) for i, _ in parts] == [[0, 1, 2], [3, 4], [5, 6]]
    assert sum(w for _, w in parts) == pytest.approx(1.0)


@pytest.mark.parametrize("dtype,extra,updates", [
    ("float64", ["--rule", "bptt", "--clip", "0.5"], 8),
    ("float64", ["--rule", "ottt", "--update", "step"], 80),
    ("float32", ["--rule", "bptt", "--clip", "0.5"], 8),
], ids=["bptt-clip-float64", "ottt-online-float64", "bptt-clip-float32"])
def test_two_processes_end_with_the_weights_of_one(tmp_path, dtype, extra, updates):
    """`neurosim train --nproc 2` (gloo, 2 ranks) against train() in this process, same seed;
    `updates`: optimizer steps in the run (2 epochs of 4 batches; ottt --update step: 10 per batch)."""
    args = ["train", "--task", "digits", "--hidden", "8", "--n-train", "22", "--n-test", "10", "--batch-size", "7",
            "--seed", "3", "--epochs", "2", "--device", "cpu", "--no-progress", "--dtype", dtype, *extra]
    proc = subprocess.run([sys.executable, "-m", "neurosim", *args, "--nproc", "2", "--out", str(tmp_path / "two")],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("wrote") == 1  # rank 0 reports, rank 1 is quiet
    rule = extra[1]
    config = TrainConfig(**TINY, epochs=2, rule=rule, clip=0.5 if rule == "bptt" else None,
                         update="step" if rule == "ottt" else "sequence", dtype=dtype)
    one = train(config, tmp_path / "one", progress=False, device="cpu")
    two_weights = _weights(tmp_path / "two")
    assert all(w.dtype == getattr(torch, dtype) for w in two_weights.values())
    _assert_close(two_weights, _weights(tmp_path / "one"), tolerance(dtype, updates))
    two_history = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)["history"]
    for a, b in zip(two_history, one["history"]):
        assert a["train_acc"] == b["train_acc"] and a["test_acc"] == b["test_acc"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)


def test_a_wrong_shard_weighting_is_caught(tmp_path):
    """The float64 comparison above catches a rank weighting of 1/2 instead of n_r / n (4/7 and
    3/7 for a batch of 7; 1 and 0 for the last batch of 1, where rank 0 then gets 1/2): the
    weights move by 1e-2 (seen 0.0101), 5e10 times the tolerance of 2.1e-13."""
    from torch.distributed import TCPStore

    config = TrainConfig(**TINY, epochs=2, clip=0.5, dtype="float64")
    store = TCPStore("127.0.0.1", 0, 2, is_master=True, wait_for_workers=False)
    torch.multiprocessing.spawn(_rank, args=(store.port, asdict(config), str(tmp_path / "bad"), -1, True), nprocs=2)
    train(config, tmp_path / "one", progress=False, device="cpu")
    diff = _max_difference(_weights(tmp_path / "bad"), _weights(tmp_path / "one"))
    print(f"max weight difference with ranks weighted 1/2: {diff:.3g}")
    assert diff > 1e-4 > 1e6 * tolerance("float64", 8)


class _Stop(Exception):
    pass


def _equal_weights(world: World, idx: np.ndarray) -> tuple[np.ndarray, float]:
    """A wrong World.shard: every non-empty shard weighted 1 / size instead of n_r / n."""
    mine, weight = _SHARD(world, idx)
    return mine, (1.0 / world.size if weight else 0.0)


_SHARD = World.shard


def _rank(rank: int, port: int, config: dict, out: str, stop_after: int, misweight: bool = False) -> None:
    """One of 2 ranks (torch.multiprocessing.spawn): train until epoch `stop_after` is saved
    (-1: to the end); `misweight`: with the wrong weighting of `_equal_weights`."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), TORCHELASTIC_USE_AGENT_STORE="True")
    torch.set_num_threads(1)
    if misweight:
        World.shard = _equal_weights  # type: ignore[method-assign]  # this spawned process only

    def stop(row: dict) -> None:
        if row["epoch"] == stop_after:
            # every rank stops here; wait until all have arrived (rank 0 still writes the checkpoint)
            # so that no rank tears its gloo connections down while another still uses them: an
            # early teardown aborted rank 1 ("terminate called without an active exception", CI)
            torch.distributed.barrier()
            raise _Stop

    try:
        train(TrainConfig(**config), out, progress=False, device="cpu", on_epoch=stop)
    except _Stop:
        pass


def test_two_process_checkpoint_resumes_in_one_process(tmp_path):
    """2 epochs with 2 ranks, then the third with 1: the weights of 3 epochs in 1 process
    (float64: 12 updates, see the module docstring)."""
    from torch.distributed import TCPStore

    config = TrainConfig(**TINY, epochs=3, dtype="float64")
    store = TCPStore("127.0.0.1", 0, 2, is_master=True, wait_for_workers=False)
    torch.multiprocessing.spawn(_rank, args=(store.port, asdict(config), str(tmp_path / "run"), 1), nprocs=2)
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    train(config, tmp_path / "run", resume=True, progress=False, device="cpu")
    train(config, tmp_path / "straight", progress=False, device="cpu")
    _assert_close(_weights(tmp_path / "run"), _weights(tmp_path / "straight"), tolerance("float64", 12))


def test_nproc_under_torchrun_must_agree(tmp_path, monkeypatch, capsys):
    from neurosim.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code = main(["train", "--task", "digits", "--nproc", "3", "--out", str(tmp_path), "--no-progress"])
    assert code == 2 and "leave --nproc out under torchrun" in capsys.readouterr().err


def test_nproc_beyond_the_gpus_is_refused(tmp_path, monkeypatch, capsys):
    from neurosim.cli import main

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    code = main(["train", "--task", "digits", "--nproc", "2", "--out", str(tmp_path), "--no-progress"])
    assert code == 2 and "NCCL needs one GPU per process and torch sees 1" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_runs_the_same_data_parallel_training(tmp_path):
    """`torchrun --nproc-per-node 2 -m neurosim train ...` (run as python -m torch.distributed.run)."""
    args = ["train", "--task", "digits", "--hidden", "8", "--n-train", "22", "--n-test", "10", "--batch-size", "7",
            "--seed", "3", "--epochs", "2", "--device", "cpu", "--no-progress", "--dtype", "float64",
            "--out", str(tmp_path / "tr")]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "neurosim",
                           *args], env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    train(TrainConfig(**TINY, epochs=2, dtype="float64"), tmp_path / "one", progress=False, device="cpu")
    _assert_close(_weights(tmp_path / "tr"), _weights(tmp_path / "one"), tolerance("float64", 8))


def test_dtype_is_checked_stored_and_absent_means_float32(tmp_path):
    """TrainConfig.dtype: refused unless float32 or float64; a checkpoint written before the
    option existed (no 'dtype' in its config) resumes as float32 and is refused as float64."""
    from neurosim.errors import NeurosimError
    from training.runfiles import CHECKPOINT_VERSION, read_checkpoint

    with pytest.raises(NeurosimError, match="--dtype: expected float32 or float64, got 'float16'"):
        TrainConfig(dtype="float16")
    old = asdict(TrainConfig(**TINY, epochs=2))
    del old["dtype"]
    row = dict(epoch=0, train_loss=1.0, train_acc=0.5, test_loss=1.0, test_acc=0.5, seconds=1.0)
    torch.save({"version": CHECKPOINT_VERSION, "config": old, "epoch": 0, "history": [row]}, tmp_path / "c.pt")
    _, epoch, _ = read_checkpoint(tmp_path / "c.pt", TrainConfig(**TINY, epochs=2))
    assert epoch == 0
    with pytest.raises(NeurosimError, match="--dtype 'float32' there, 'float64' here"):
        read_checkpoint(tmp_path / "c.pt", TrainConfig(**TINY, epochs=2, dtype="float64"))

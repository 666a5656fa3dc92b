"""Data-parallel training on torch.distributed (gloo on CPU, NCCL on CUDA).

Every rank runs the same loop over the same global batches (the shuffle depends only on the
seed and the epoch) and trains on its contiguous shard of each one. Every rule's loss is a
mean over the batch, so with ``n_r`` samples on rank r out of ``n`` the single-process
gradient of the global batch is::

    g = sum_r (n_r / n) g_r          (g_r: the gradient of rank r's shard mean)

:class:`Stepper` scales each rank's ``.grad`` by ``n_r / n``, sums them with one all-reduce
(a float64 buffer), then clips and steps: every rank applies the same update to the same
weights. Rules that update during a sequence (``updates_online``) call the stepper at each of
their updates, so the gradient is averaged there. A rank whose shard is empty (a last batch
smaller than the world) runs its rule on one sample with weight 0, so every rank makes the
same collective calls. The sums differ from one process only in float summation order. The
reduction runs in float64 whatever the training dtype (TrainConfig.dtype, ``--dtype``) and
gives each gradient back in its parameter's dtype.

Ranks come from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT); :func:`launch` starts N copies of a ``neurosim`` command with it, which is what
``neurosim train --nproc N`` does.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist

from neurosim.errors import NeurosimError, Terminated


@dataclass(frozen=True)
class World:
    """This process's place among `size` data-parallel ranks (size 1: no torch.distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    owned: bool = False  # this module started the process group and closes it

    @property
    def main(self) -> bool:
        """Rank 0 writes the run's files."""
        return self.rank == 0

    def shard(self, idx: np.ndarray) -> tuple[np.ndarray, float]:
        """(this rank's samples of the global batch `idx`, their weight n_r / n): contiguous
        shards whose sizes differ by at most one; an empty shard is one sample of weight 0."""
        mine = np.array_split(idx, self.size)[self.rank]
        if len(mine) == 0:
            return idx[:1], 0.0
        return mine, len(mine) / len(idx)

    def sum(self, values: Sequence[float], device: torch.device) -> list[float]:
        """`values` summed over the ranks (float64), e.g. per-rank loss sums and counts."""
        if self.size == 1:
            return [float(v) for v in values]
        buf = torch.tensor(list(values), dtype=torch.float64, device=device)
        dist.all_reduce(buf)
        return buf.tolist()

    def broadcast(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (they agree already when every rank
        builds them from the same seed or checkpoint; this makes it hold by construction)."""
        if self.size == 1:
            return
        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t.data, src=0)

    def barrier(self) -> None:
        """Wait for every rank (on the success path only: a failed rank exits and the launcher
        stops the others)."""
        if self.size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()


def init(device: torch.device) -> tuple[World, torch.device]:
    """(World from the torchrun environment, this rank's device): without WORLD_SIZE > 1 the
    single process; else joins the process group (NCCL for CUDA, gloo for CPU) and takes
    ``cuda:LOCAL_RANK`` on CUDA."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), device
    if not dist.is_available():
        raise NeurosimError("torch.distributed is not available in this torch build; run one process")
    _die_with_launcher()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=size)
    elif dist.get_world_size() != size or dist.get_rank() != rank:
        raise NeurosimError(f"an existing process group has rank {dist.get_rank()} of {dist.get_world_size()}, "
                            f"the environment says {rank} of {size}")
    return World(rank, size, local, owned), device


class Stepper:
    """What the training loop (and an online rule) calls instead of ``optimizer.step()``:
    sum the ranks' gradients weighted by `weight` (this rank's n_r / n, set per batch), clip
    the global norm to `clip`, step. With one rank: clip and step, nothing else."""

    def __init__(self, optimizer: torch.optim.Optimizer, world: World, clip: Optional[float] = None) -> None:
        self.optimizer, self.world, self.clip = optimizer, world, clip
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.weight = 1.0

    def step(self) -> None:
        if self.world.size > 1:
            self._all_reduce()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def _all_reduce(self) -> None:
        """One all-reduce of every gradient (and whether each exists on some rank: a gradient
        that is None on every rank stays None, so the optimizer skips it as in one process)."""
        device = self.params[0].device
        parts = [(p.grad.to(torch.float64) * self.weight if p.grad is not None
                  else torch.zeros(p.shape, dtype=torch.float64, device=device)).reshape(-1) for p in self.params]
        present = torch.tensor([p.grad is not None for p in self.params], dtype=torch.float64, device=device)
        flat = torch.cat([*parts, present])
        dist.all_reduce(flat)
        seen = flat[-len(self.params):]
        at = 0
        for k, p in enumerate(self.params):
            n = p.numel()
            p.grad = flat[at:at + n].view(p.shape).to(p.dtype).contiguous() if seen[k] > 0 else None
            at += n


def launch(argv: Sequence[str], nproc: int, *, env: Optional[dict[str, str]] = None) -> int:
    """Run ``python -m neurosim ARGV`` as `nproc` ranks on this machine (what torchrun does:
    RANK, WORLD_SIZE, LOCAL_RANK and a rendezvous store this process hosts on localhost).

    Returns 0 when every rank succeeds, else the first failure's exit code after stopping the
    other ranks; Ctrl-C stops them all (130), SIGTERM too (Terminated is raised again: 143). Ranks die with this process (Linux), and get
    OMP_NUM_THREADS = cores / nproc unless it is set.
    """
    from torch.distributed import TCPStore

    store = TCPStore("127.0.0.1", 0, nproc, is_master=True, wait_for_workers=False)
    base = dict(os.environ if env is None else env)
    base.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(store.port), WORLD_SIZE=str(nproc),
                LOCAL_WORLD_SIZE=str(nproc), TORCHELASTIC_USE_AGENT_STORE="True",
                NEUROSIM_LAUNCHER_PID=str(os.getpid()))
    base.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    procs = []
    try:
        for rank in range(nproc):
            procs.append(subprocess.Popen([sys.executable, "-m", "neurosim", *argv],
                                          env={**base, "RANK": str(rank), "LOCAL_RANK": str(rank)}))
        return _wait(procs)
    except Terminated:  # SIGTERM (neurosim.cli): passed on to the ranks, then exit 143 like them
        _stop(procs, signal.SIGTERM)
        raise
    except KeyboardInterrupt:
        _stop(procs, signal.SIGINT)
        return 130
    finally:
        _stop(procs, signal.SIGTERM)


def _wait(procs: list[subprocess.Popen]) -> int:
    """Wait for all; on the first non-zero exit, stop the others and return its code."""
    live = list(procs)
    while live:
        for p in list(live):
            try:
                code = p.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            live.remove(p)
            if code != 0:
                return code if code > 0 else 128 - code  # killed by signal s: 128 + s, as a shell says
    return 0


def _stop(procs: list[subprocess.Popen], sig: int) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(sig)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _die_with_launcher() -> None:
    """In a rank that :func:`launch` started: get SIGKILL when the launcher dies (Linux
    prctl PR_SET_PDEATHSIG), and exit now if it is already gone."""
    launcher = os.environ.get("NEUROSIM_LAUNCHER_PID")
    if launcher is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if os.getppid() != int(launcher):
        os._exit(137)


def rank_environment() -> bool:
    """True inside a rank that torchrun or :func:`launch` started (WORLD_SIZE is set)."""
    return "WORLD_SIZE" in os.environ

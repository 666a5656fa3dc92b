"""What to do when training runs out of GPU memory: a one-line message with a budget that fits.

Measured on the model and the batch that failed (``rules.BudgetedBPTT`` conventions):

    s      bytes of one stored (packed) hidden state   (rules.StateCodec)
    alpha  bytes autograd keeps per step / s           (BudgetedBPTT.measure_alpha)
    W      working memory a byte budget pays first     (BudgetedBPTT.working_memory)
    T      steps of the batch

Full BPTT keeps about ``T * alpha * s``. A byte budget bounds the budgeted rule's whole peak
(its stored states plus W). With ``F`` bytes free on the device after the failure
(``torch.cuda.mem_get_info``), the suggestion is::

    budget = min(0.9 * F, W + T * s)      rounded down to MB, if it holds W and 2 states

(10% left to the allocator's fragmentation; more than T states is never used). When not even
that fits, or the rule's memory does not grow with T (ottt, eprop), a smaller batch is the
remedy instead.
"""
from __future__ import annotations

import torch

from .layers import SNN
from .rules import Batch, BudgetedBPTT, stored_state_nbytes

HEADROOM = 0.9
ONLINE = ("ottt", "eprop")  # memory independent of T: a budget does not help


def free_bytes(device: torch.device) -> int:
    """Bytes free on `device` now (after returning cached blocks to the driver)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return int(torch.cuda.mem_get_info(device)[0])


def suggested_budget(model: SNN, batch: Batch, free: int) -> tuple[int, int, float]:
    """(budget in bytes, or 0 when none fits; packed state bytes s; alpha) for `free` bytes."""
    s = stored_state_nbytes(model, batch)
    rule = BudgetedBPTT(1)
    alpha = rule.measure_alpha(model, batch)
    working = rule.working_memory(model, batch)
    budget = int(min(HEADROOM * free, working + batch.steps * s))
    budget = budget // 10**6 * 10**6 if budget >= 10**6 else budget
    return (budget if budget >= working + 2 * s else 0), s, alpha


def out_of_memory_message(model: SNN, batch: Batch, rule: str, device: torch.device) -> str:
    """The one-line advice after torch.cuda.OutOfMemoryError while training `batch`."""
    free = free_bytes(device)
    size, steps = int(batch.inputs.shape[1]), batch.steps
    budget, s, alpha = suggested_budget(model, batch, free)
    head = (f"CUDA out of memory training with --rule {rule} (batch {size} x {steps} steps; {_fmt(free)} free "
            f"on {device})")
    if rule in ONLINE or budget == 0:
        smaller = max(1, size // 2)
        return f"{head}; use a smaller batch, e.g. --batch-size {smaller} (one hidden state takes {_fmt(s)})"
    return (f"{head}; full BPTT keeps about {_fmt(steps * alpha * s)}: --rule budgeted --budget {_budget_text(budget)} "
            "fits and gives the same gradients, recomputing instead of storing")


def _budget_text(budget: int) -> str:
    """What --budget reads back as bytes: 'NMB' for whole megabytes, else 'NB'."""
    return f"{budget // 10**6}MB" if budget % 10**6 == 0 else f"{budget}B"


def _fmt(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"

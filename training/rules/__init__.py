"""Learning rules behind one interface: a rule takes a model and a batch, accumulates the
parameters' `.grad` and returns the loss and the readout.

Loss (decomposable over time, as every rule here needs)::

    L = sum_t mask[t] * l(v_out[t], y) / sum_t mask[t]

with l the cross-entropy of the readout potentials (class labels y of shape (B,)) or the
squared error (targets of shape (B, T, n_out)); v_out is the LI readout population.

| rule | gradient | memory in T |
|---|---|---|
| ``bptt`` | exact (surrogate) gradient, one graph over all steps | O(T) |
| ``tbptt`` | truncated every k steps (state detached between chunks) | O(k) |
| ``budgeted`` | exact, recomputation schedule of Gruslys et al. 2016 for a budget | O(budget) |
| ``ottt`` | presynaptic traces, spatial error only (Xiao et al. 2022; training.rules.ottt) | O(1) |
| ``eprop`` | eligibility traces, readout learning signal (Bellec et al. 2020; training.rules.eprop) | O(1) |
| ``ratebp`` | spike pass, then one backward through the rate graph (Yu et al. 2024; training.rules.ratebp) | O(1) |
"""
from __future__ import annotations

from typing import Optional, Union

from neurosim.errors import NetworkError

from .base import (Batch, Objective, Rule, RuleOutput, detach_state, differentiable_flags, flatten_state,
                   state_nbytes)
from .bptt import BPTT, TruncatedBPTT
from .budgeted import (BLOCK_CANDIDATES, CALL_COST, BudgetedBPTT, StateCodec, out_of_memory_message,
                       parse_bytes, stored_state_nbytes)
from .eprop import EProp
from .ottt import OTTT
from .ratebp import RateBP

__all__ = ["BLOCK_CANDIDATES", "BPTT", "CALL_COST", "Batch", "BudgetedBPTT", "EProp", "OTTT", "Objective",
           "RULE_NAMES", "RateBP", "Rule", "RuleOutput", "StateCodec", "TruncatedBPTT", "detach_state",
           "differentiable_flags", "flatten_state", "make_rule", "out_of_memory_message", "parse_bytes",
           "state_nbytes", "stored_state_nbytes"]

RULE_NAMES = ("bptt", "tbptt", "budgeted", "ottt", "eprop", "ratebp")


def make_rule(name: str, *, k: Optional[int] = None, budget: Union[int, str, None] = None,
              policy: str = "hsm", update: str = "sequence", feedback: str = "symmetric",
              seed: int = 0, block: Union[int, str] = 1) -> Rule:
    """The rule called `name` (one of RULE_NAMES) with its options: `k` (tbptt), `budget` and
    `policy` and `block` (budgeted), `update` 'sequence' or 'step' (ottt), `feedback` 'symmetric' or
    'random' and its `seed` (eprop)."""
    if name == "bptt":
        return BPTT()
    if name == "tbptt":
        if k is None:
            raise NetworkError("k", "rule 'tbptt' needs a truncation length k (steps)")
        return TruncatedBPTT(k)
    if name == "budgeted":
        if budget is None:
            raise NetworkError("budget", "rule 'budgeted' needs a budget: a number of states or bytes like '64MB'")
        return BudgetedBPTT(budget, policy, block)
    if name == "ottt":
        return OTTT(update)
    if name == "eprop":
        return EProp(feedback, seed)
    if name == "ratebp":
        return RateBP()
    raise NetworkError("rule", f"expected one of {sorted(RULE_NAMES)}, got {name!r}")

"""An LI readout in a NetX file: a CUBA layer (Lava's LIF) whose threshold its v provably never
exceeds, so Lava's v is the readout; the worst-case bound that proves it (:func:`li_bound`) and
the report's note saying what was written (:func:`with_notes`)."""
from __future__ import annotations

import dataclasses

import numpy as np

from neurosim.fixed_point import DECAY_ONE, VTH_MAX, FixedPointNetwork

LI_VTH_INT = VTH_MAX << 6      # the LI readout's CUBA threshold, in v units


def li_bound(fixed: FixedPointNetwork, name: str) -> float:
    """Worst-case |v| (integer units) of population `name` when every input neuron spikes at every
    step, from zero state: |a_in| <= A = max(sum of positive, sum of negative effective weights)
    shifted by the weight exponent; |u| <= U = 64 A * 4096 / (du + 1) (no 24-bit wrap while U < 2**23);
    |v| <= (U + |bias|) * 4096 / dv. inf when U >= 2**23 or dv = 0 with input."""
    pop = fixed.population(name)
    pos = np.zeros(pop.size)
    neg = np.zeros(pop.size)
    for q in fixed.projections:
        if q.post == name:
            w = q.effective_weights.astype(np.float64) * 2.0 ** q.weight_exp
            pos += np.where(w > 0, w, 0).sum(axis=0)
            neg += np.where(w < 0, -w, 0).sum(axis=0)
    u = 64 * np.maximum(pos, neg) * DECAY_ONE / (np.asarray(pop.du, np.float64) + 1)
    drive = u + np.abs(pop.effective_bias)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(drive > 0, drive * DECAY_ONE / np.asarray(pop.dv, np.float64), 0.0)
    return float(np.inf) if np.any(u >= 2 ** 23) else float(np.max(v, initial=0.0))


def with_notes(fixed: FixedPointNetwork) -> FixedPointNetwork:
    """`fixed` with the report's notes on how each LI readout is written."""
    notes = tuple(f"{p.name}: LI readout written as a CUBA layer with vThMant {VTH_MAX} (never spikes: worst-case "
                  f"|v| {li_bound(fixed, p.name):.0f} <= {LI_VTH_INT}); read Lava's v, "
                  f"{p.scale.min():.6g} integer units per unit of the readout"
                  for p in fixed.populations if p.kind == "li")
    if not notes or fixed.report is None:
        return fixed
    return dataclasses.replace(fixed, report=dataclasses.replace(fixed.report, notes=fixed.report.notes + notes))

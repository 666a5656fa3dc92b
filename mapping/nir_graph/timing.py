"""What a convention's timing adds to an imported network, exactly in neurosim's step
(:mod:`mapping.nir_graph.conventions` gives the derivations).

- :func:`late_resets`: snnTorch's one-step-late subtractive reset,
  ``mem[t] = beta*mem[t-1] + x[t] - theta*s[t-1]``, as neurosim's subtract reset plus a diagonal
  self-projection of weight ``w1 = -(1-beta)*theta/gain`` and delay 1, and, when alpha > 0, one of
  weight ``-alpha*w1`` and delay 2 (the current would otherwise keep ``alpha**k * w1``:
  ``e[t] = alpha*e[t-1] + w1*s[t-1] - alpha*w1*s[t-2]`` is solved by ``e[t] = w1*s[t-1]``).
- :func:`first_input_biases`: a bias that starts with the population's first input, at step
  ``a_P = min over incoming projections (s_S + d)`` (``s``: the step the source's own step 0 sits
  at in neurosim, 0 for inputs, ``a_P - lag_P`` for populations), carried by a one-neuron
  population that spikes at every step (LIF with beta = 0, bias 1 > theta 0.5, zero reset)
  through a projection of weights = bias and delay a_P.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from neurosim.models import LIF
from neurosim.network import Network, Population, Projection

from .common import unique_name

CLOCK = "bias_clock"


def late_resets(net: Network, late: set[str]) -> Network:
    """`net` with the self-projections that make the subtractive reset of the populations in
    `late` act one step late (module docstring); ValueError names a population with gain 0."""
    if not late:
        return net
    taken = {j.name for j in net.projections}
    projs = list(net.projections)
    for pop in net.populations:
        if pop.name not in late:
            continue
        p = pop.params
        if np.any(p.gain == 0):
            raise ValueError(f"populations.{pop.name}: a late reset needs gain != 0")
        w1 = -(1.0 - p.beta) * p.theta / p.gain
        parts = [(1, w1)] + ([(2, -p.alpha * w1)] if np.any(p.alpha != 0) else [])
        for d, w in parts:
            name = unique_name(f"{pop.name}_late_reset" + ("" if d == 1 else f"_{d}"), taken)
            projs.append(Projection(name, pop.name, pop.name, np.diag(w), d))
    return replace_network(net, projections=projs)


def first_steps(net: Network, lag: dict[str, int]) -> dict[str, int]:
    """a_P for every population reached from an input: the first step its input can arrive
    (module docstring); `lag[P]`: steps P's own convention adds to its inputs."""
    start = {s.name: 0 for s in net.inputs}
    a: dict[str, int] = {}
    for _ in range(len(net.populations) + 1):
        changed = False
        for j in net.projections:
            if j.pre == j.post or j.pre not in start:
                continue
            d = int(np.min(j.delay))
            if j.post not in a or start[j.pre] + d < a[j.post]:
                a[j.post] = start[j.pre] + d
                start[j.post] = a[j.post] - lag.get(j.post, 0)
                changed = True
        if not changed:
            break
    return a


def first_input_biases(net: Network, lag: dict[str, int]) -> tuple[Network, Optional[str]]:
    """`net` with every population's bias moved onto a projection from a clock population so
    that it starts at the population's first input step (module docstring); the clock's name,
    or None when no population needed it."""
    a = first_steps(net, lag)
    moved = [p for p in net.populations if p.name in a and a[p.name] > 0 and np.any(p.params.bias != 0)]
    if not moved:
        return net, None
    taken = {p.name for p in net.populations} | {s.name for s in net.inputs}
    clock = unique_name(CLOCK, taken)
    pops = [replace(p, model=replace(p.model, bias=0.0)) if p in moved else p for p in net.populations]
    pops.append(Population(clock, 1, LIF(beta=0.0, alpha=0.0, theta=0.5, bias=1.0, gain=1.0, reset="zero")))
    names = {j.name for j in net.projections}
    projs = list(net.projections)
    for p in moved:
        projs.append(Projection(unique_name(f"{p.name}_bias", names), clock, p.name,
                                np.asarray(p.params.bias, np.float64)[None, :].copy(), a[p.name]))
    return replace_network(net, populations=pops, projections=projs), clock


def replace_network(net: Network, **kw: object) -> Network:
    """A new Network (validated again) with the fields in `kw` replaced."""
    fields = dict(dt=net.dt, populations=list(net.populations), projections=list(net.projections),
                  inputs=list(net.inputs), name=net.name)
    fields.update(kw)
    return Network(**fields)  # type: ignore[arg-type]

"""neurosim's custom Lava processes, for what Lava's own LIF lacks (ALIF, subtractive reset,
LI readouts, refractory periods in fixed point), and the run configuration that maps them.

- ``floating_pt``: ``NeurosimNeuron``, whose model calls :func:`neurosim.models.neuron_step`
  on the population's lowered NeuronParams once per Lava step, in float64.
- ``fixed_pt``: ``NeurosimFixedNeuron``, whose model calls
  :func:`neurosim.fixed_point.neuron_step_fixed` on the population's
  :class:`~neurosim.fixed_point.FixedPopulation` once per Lava step: the integer step is
  written once, in :mod:`neurosim.fixed_point.step`, and Lava's own LIF
  (``PyLifModelBitAcc``) is the case that test_mapping_lava checks it against.

Both processes keep their state in Lava Vars (i or u, v, a, z, r) so that Monitors can
record them, and are wired with Lava's Dense/DelayDense like any LIF. The classes are made
once Lava is importable (:func:`custom_classes`).
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Mapping, Optional

import numpy as np

from neurosim.fixed_point import FixedPopulation, FixedState, neuron_step_fixed
from neurosim.models import NeuronParams, NeuronState, neuron_step
from neurosim.network import Population

_CUSTOM: dict[str, Any] = {}


def custom_classes(lava: Any) -> SimpleNamespace:
    """The custom processes and their models, defined once Lava is importable:
    NeurosimNeuron (floating_pt, neuron_step) and NeurosimFixedNeuron (fixed_pt, integers).

    The models are handed to Lava per process instance through
    ``Loihi2SimCfg(exception_proc_model_map=...)``, so Lava does not search this package.
    """
    if not _CUSTOM:
        _CUSTOM.update(_float_classes(lava))
        _CUSTOM.update(_fixed_classes(lava))
    return SimpleNamespace(**_CUSTOM)


def _float_classes(lava: Any) -> dict[str, type]:
    class NeurosimNeuron(lava.AbstractProcess):
        """neurosim's canonical neuron (any model): state i, v, a, z, r; parameters a
        NeuronParams in proc_params."""

        def __init__(self, *, shape: tuple[int, ...], params: NeuronParams, i: np.ndarray, v: np.ndarray,
                     a: np.ndarray, name: Optional[str] = None) -> None:
            super().__init__(shape=shape, params=params, name=name)
            self.a_in = lava.InPort(shape=shape)
            self.s_out = lava.OutPort(shape=shape)
            self.i = lava.Var(shape=shape, init=i)
            self.v = lava.Var(shape=shape, init=v)
            self.a = lava.Var(shape=shape, init=a)
            self.z = lava.Var(shape=shape, init=0)
            self.r = lava.Var(shape=shape, init=0)

    @lava.implements(proc=NeurosimNeuron, protocol=lava.LoihiProtocol)
    @lava.requires(lava.CPU)
    @lava.tag("floating_pt")
    class PyNeurosimNeuronFloat(lava.PyLoihiProcessModel):
        """One call of neurosim.models.neuron_step per Lava step, in float64."""

        a_in = lava.LavaPyType(lava.PyInPort.VEC_DENSE, float)
        s_out = lava.LavaPyType(lava.PyOutPort.VEC_DENSE, float)
        i = lava.LavaPyType(np.ndarray, float)
        v = lava.LavaPyType(np.ndarray, float)
        a = lava.LavaPyType(np.ndarray, float)
        z = lava.LavaPyType(np.ndarray, float)
        r = lava.LavaPyType(np.ndarray, float)

        def run_spk(self) -> None:
            x = self.a_in.recv()
            old = NeuronState(self.i[None], self.v[None], self.a[None], self.z[None], self.r[None])
            new = neuron_step(self.proc_params["params"], old, np.asarray(x, np.float64)[None])
            for name in NeuronState._fields:
                getattr(self, name)[:] = getattr(new, name)[0]
            self.s_out.send(new.z[0])

    return {"float_process": NeurosimNeuron, "float_model": PyNeurosimNeuronFloat}



def _fixed_classes(lava: Any) -> dict[str, type]:
    class NeurosimFixedNeuron(lava.AbstractProcess):
        """neurosim's integer neuron (:mod:`neurosim.fixed_point`): state u, v, a, z (last
        spikes), r (refractory count); the FixedPopulation in proc_params."""

        def __init__(self, *, population: FixedPopulation, name: Optional[str] = None) -> None:
            p = population
            shape = (p.size,)
            super().__init__(shape=shape, population=p, name=name)
            self.a_in = lava.InPort(shape=shape)
            self.s_out = lava.OutPort(shape=shape)
            self.u = lava.Var(shape=shape, init=p.u0)
            self.v = lava.Var(shape=shape, init=p.v0)
            self.a = lava.Var(shape=shape, init=p.a0)
            self.z = lava.Var(shape=shape, init=0)
            self.r = lava.Var(shape=shape, init=0)

    @lava.implements(proc=NeurosimFixedNeuron, protocol=lava.LoihiProtocol)
    @lava.requires(lava.CPU)
    @lava.tag("fixed_pt")
    class PyNeurosimFixedNeuron(lava.PyLoihiProcessModel):
        """One call of neurosim.fixed_point.neuron_step_fixed per Lava step (int64 arithmetic,
        state stored as Lava's LIF stores it: 24-bit values in int32 Vars)."""

        a_in = lava.LavaPyType(lava.PyInPort.VEC_DENSE, np.int16, precision=16)  # as Lava's fixed-point LIF
        s_out = lava.LavaPyType(lava.PyOutPort.VEC_DENSE, np.int32, precision=24)
        u = lava.LavaPyType(np.ndarray, np.int32, precision=24)
        v = lava.LavaPyType(np.ndarray, np.int32, precision=24)
        a = lava.LavaPyType(np.ndarray, np.int32, precision=24)
        z = lava.LavaPyType(np.ndarray, np.int32, precision=1)
        r = lava.LavaPyType(np.ndarray, np.int32, precision=8)

        def run_spk(self) -> None:
            a_in = np.asarray(self.a_in.recv(), np.int64)
            old = FixedState(*(np.asarray(getattr(self, k), np.int64)[None] for k in FixedState._fields))
            new = neuron_step_fixed(self.proc_params["population"], old, a_in[None])
            for k in FixedState._fields:
                getattr(self, k)[:] = getattr(new, k)[0]
            self.s_out.send(new.z[0] != 0)

    return {"fixed_process": NeurosimFixedNeuron, "fixed_model": PyNeurosimFixedNeuron}


def neuron_process(lava: Any, pop: Population) -> Any:
    """A NeurosimNeuron process running neurosim.models.neuron_step for `pop` (floating_pt)."""
    return custom_classes(lava).float_process(shape=(pop.size,), params=pop.params, i=pop.i0.copy(),
                                              v=pop.v0.copy(), a=pop.a0.copy(), name=pop.name)


def fixed_neuron_process(lava: Any, p: FixedPopulation) -> Any:
    """A NeurosimFixedNeuron process for the integer population `p` (fixed_pt)."""
    return custom_classes(lava).fixed_process(population=p, name=p.name)


def is_custom(proc: Any) -> bool:
    """True for a process of neurosim's (NeurosimNeuron or NeurosimFixedNeuron)."""
    return bool(_CUSTOM) and isinstance(proc, (_CUSTOM["float_process"], _CUSTOM["fixed_process"]))


def run_cfg(lava: Any, mode: str, neurons: Mapping[str, Any]) -> Any:
    """Loihi2SimCfg(select_tag=mode), with each custom process instance mapped to its model."""
    models = {}
    for proc in neurons.values():
        if is_custom(proc):
            models[proc] = _CUSTOM["fixed_model" if isinstance(proc, _CUSTOM["fixed_process"]) else "float_model"]
    return lava.Loihi2SimCfg(select_tag=mode, exception_proc_model_map=models or None)

"""The conventions a NIR file was written in, as data.

NIR has no time step, no reset rule, no discretisation and no bias timing: each tool bakes its
own. A :class:`Convention` states them; :data:`CONVENTIONS` names the ones neurosim knows, each
read from the peer's exporter and importer source (versions pinned in requirements*.txt) and
checked against the peer's own run in tests/test_nir_conventions.py.

Fields, and how the importer translates each one exactly into neurosim's step
(``i = alpha*i + gain*(x + bias)``, ``v = beta*v + i``, spike if ``v > theta``):

- ``dt`` (s): the step the writer meant; ``None``: the file must carry it (``neurosim.dt``) or the
  caller gives it.
- ``discretization``: ``euler`` (decay = 1 - dt/tau) or ``exact`` (exp(-dt/tau)).
- ``tau_field``: ``tau`` (the file's time constants are time constants) or ``dt*tau`` (Norse 1.1's
  ``to_nir`` writes ``dt/tau_inv``: the true tau is the field divided by dt).
- ``reset``: ``subtract``, ``zero``, ``late_subtract`` (snnTorch's default ``Leaky``:
  ``mem[t] = beta*mem[t-1] + x[t] - theta*s[t-1]``), or ``v_reset`` (what the node's v_reset
  says: 0 is ``zero``). late_subtract becomes neurosim's subtract reset plus a self-connection of
  weight ``-(1-beta)*theta/gain`` and delay 1 (and, when alpha > 0, one of weight
  ``+alpha*(1-beta)*theta/gain`` and delay 2, which cancels the current's memory of the first):
  with ``u[t] = mem[t] - theta*s[t]`` (neurosim's v after its reset),
  ``mem[t] = beta*u[t-1] + x[t] - (1-beta)*theta*s[t-1]`` and ``s[t] = H(mem[t] - theta)``.
- ``bias``: ``step0`` (an Affine bias is a constant input from step 0) or ``first_input``
  (the peer's layers have no latency, so its bias starts with the layer's first input, which in
  neurosim arrives a_P steps after the network input; the bias then comes from a one-neuron
  population that spikes at every step, through a projection of delay a_P).
- ``cuba_input``: ``w_in*(1-alpha)`` (NIR's ``tau_syn dI/dt = -I + w_in x``, Euler or exact) or
  ``w_in`` (Norse's ``LIFCell`` adds its input to the current unscaled, ``i = alpha*i + x``, and
  takes v from that current: neurosim's order).
- ``cuba_v_from``: ``current`` (v from this step's current, neurosim's order) or ``previous``
  (v from the previous step's current: NIR's reference and Norse's ``LIFCell``); previous adds one
  step to every projection into a CubaLIF node, which is exactly v from the previous current.
- ``readout``: ``linear``: an Affine/Linear that feeds an Output becomes a non-spiking readout
  population (LI with beta = 0, gain = 1: ``v[t] = W s[t-d] + b``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, Optional

from neurosim.errors import ExportError

from .common import NS, as_text

ResetRule = Literal["subtract", "zero", "late_subtract", "v_reset", "metadata"]


@dataclass(frozen=True)
class Convention:
    """How one tool writes (and reads) NIR; see the module docstring for each field."""

    name: str
    dt: Optional[float]
    discretization: str
    reset: ResetRule
    bias: Literal["step0", "first_input"]
    tau_field: Literal["tau", "dt*tau"] = "tau"
    cuba_input: Literal["w_in*(1-alpha)", "w_in"] = "w_in*(1-alpha)"
    cuba_v_from: Literal["current", "previous"] = "current"
    readout: Literal["linear"] = "linear"
    threshold: Literal[">", ">="] = ">"
    source: str = ""

    def describe(self) -> str:
        """One line: the convention's name and what it states."""
        dt = "dt from the file" if self.dt is None else f"dt = {self.dt:g} s"
        return (f"convention {self.name}: {dt}, {self.discretization} discretisation, reset {self.reset}, "
                f"bias from {'step 0' if self.bias == 'step0' else 'the first input step'}, "
                f"CubaLIF input {self.cuba_input}, v from " + ("this step's current" if self.cuba_v_from == "current" else "the previous step's current"))

    def with_overrides(self, dt: Optional[float] = None, discretization: Optional[str] = None,
                       reset: Optional[str] = None) -> "Convention":
        """This convention with the fields the caller named replaced."""
        kw: dict[str, Any] = {}
        if dt is not None:
            kw["dt"] = dt
        if discretization is not None:
            kw["discretization"] = discretization
        if reset is not None:
            kw["reset"] = reset
        return replace(self, **kw) if kw else self


CONVENTIONS: dict[str, Convention] = {
    # snntorch/export_nir.py: dt = 1e-4, tau = dt/(1-beta), r = tau/dt, w_in = tau_syn/dt, v_reset = 0
    # whatever the reset; Leaky/Synaptic default reset_mechanism='subtract', reset_delay=True.
    "snntorch": Convention("snntorch", 1e-4, "euler", "late_subtract", "first_input",
                           source="snnTorch 1.0 export_to_nir; default Leaky/Synaptic (subtract, reset_delay=True)"),
    # norse/torch/utils/export_nir.py: tau = dt/tau_inv (dt*tau), r = 1, w_in = 1; LIFCell
    # (functional/lif.py lif_feed_forward_step) adds its input to i unscaled, then v from that i;
    # reset to v_reset = 0; from_nir's default dt 1e-3.
    "norse": Convention("norse", 1e-3, "euler", "zero", "first_input", tau_field="dt*tau", cuba_input="w_in",
                        source="Norse 1.1 to_nir(dt=1e-3); LIFBoxCell, LIFCell, LIBoxCell"),
    # spikingjelly/activation_based/nir_exchange/to_nir.py: dt = 1e-4, tau = tau_steps*dt, r = 1
    # (decay_input) or tau_steps, hard reset to v_reset; fires at v >= v_threshold.
    "spikingjelly": Convention("spikingjelly", 1e-4, "euler", "v_reset", "first_input", threshold=">=",
                               source="SpikingJelly 2.0.0 nir_exchange.export_to_nir(dt=1e-4); LIFNode, hard reset"),
    # NIR's reference (neuromorphs/NIR paper/03_rnn debug_CubaLIF): forward Euler, v from the previous
    # current, reset to v_reset; no dt in the file.
    "nir": Convention("nir", None, "euler", "v_reset", "step0", cuba_v_from="previous",
                      source="NIR reference implementation (forward Euler, states from the previous step)"),
    "neurosim": Convention("neurosim", None, "euler", "metadata", "step0",
                           source="neurosim's own export (neurosim.* metadata)"),
}

NAMES = tuple(CONVENTIONS)
ASK = ("the file does not say which tool wrote it (NIR has no dt, reset rule or bias timing): "
       f"name its convention, one of {', '.join(NAMES)} (CLI: --convention NAME)")


def convention(name: str) -> Convention:
    """The named convention; ExportError listing the names otherwise."""
    if name not in CONVENTIONS:
        raise ExportError("nir", "convention", f"expected one of {', '.join(NAMES)}, got {name!r}")
    return CONVENTIONS[name]


def export_convention(gmeta: dict[str, Any]) -> Optional[Convention]:
    """How neurosim wrote a file for another tool's importer (``neurosim.target``, written by
    :func:`mapping.nir_graph.to_nir`): that importer's reading, at the dt the file was written for."""
    target = as_text(gmeta.get(NS + "target", ""))
    if not target or NS + "target_dt" not in gmeta:
        return None
    return Convention(f"neurosim export for {target}", float(gmeta[NS + "target_dt"]), "euler", "v_reset", "step0",
                      threshold=">=" if target == "spikingjelly" else ">",
                      source=f"written by neurosim for {target}'s importer")


def origin(gmeta: dict[str, Any]) -> Optional[str]:
    """The convention a graph's metadata names: ``neurosim`` for our own files (``neurosim.dt``),
    or a ``convention`` / ``neurosim.convention`` entry; None when the file does not say."""
    if NS + "dt" in gmeta:
        return "neurosim"
    if export_convention(gmeta) is not None:
        return "export"
    for key in (NS + "convention", "convention"):
        if key in gmeta and as_text(gmeta[key]) in CONVENTIONS:
            return as_text(gmeta[key])
    return None


def resolve(gmeta: dict[str, Any], name: Optional[str], dt: Optional[float], discretization: Optional[str],
            reset: Optional[str], spiking: bool) -> tuple[Convention, str]:
    """The convention to import a graph with, and one line saying where it came from.

    `name` (the caller's) wins; else the file's own (:func:`origin`); else explicit `dt` and
    `reset` form a custom convention (bias from step 0, neurosim's order); else ExportError
    asking for the convention (:data:`ASK`). Graphs without spiking nodes need no reset rule.
    """
    file_says = origin(gmeta)
    if name is not None:
        conv = convention(name)
        note = f"{conv.describe()} (named by the caller)"
        if file_says and file_says not in (name, "export"):
            note += f"; the file says it was written by {file_says}"
    elif file_says == "export":
        conv = export_convention(gmeta)  # type: ignore[assignment]
        note = f"{conv.describe()} (the file's metadata says: {conv.source})"
    elif file_says is not None:
        conv = CONVENTIONS[file_says]
        note = f"{conv.describe()} (the file's metadata says it was written by {file_says})"
    elif dt is not None and (reset is not None or not spiking):
        conv = Convention("custom", dt, discretization or "euler", reset or "zero", "step0",
                          source="dt, discretisation and reset given one by one")
        note = f"{conv.describe()} (given field by field)"
    else:
        raise ExportError("nir", "convention", ASK)
    if conv.name == "neurosim":
        file_dt = gmeta.get(NS + "dt")
        if file_dt is None:
            raise ExportError("nir", "convention", "convention neurosim needs a file written by neurosim "
                                                   "(neurosim.dt metadata); this one has none: " + ASK)
        if dt is not None and float(dt) != float(file_dt):
            raise ExportError("nir", "dt", f"the file was written by neurosim at dt = {float(file_dt):g} s and its "
                                           f"delays and refractory periods are whole steps of it; dt = {dt:g} s would "
                                           f"change them: import at dt = {float(file_dt):g} (or give no dt)")
        conv = replace(conv, dt=float(file_dt),
                       discretization=as_text(gmeta.get(NS + "discretization", "euler")))
        if discretization is not None and discretization != conv.discretization:
            conv = replace(conv, discretization=discretization)
        if reset is not None:
            conv = replace(conv, reset=reset)
        return conv, note
    conv = conv.with_overrides(dt, discretization, reset)
    if conv.dt is None:
        raise ExportError("nir", "dt", f"convention {conv.name} has no time step of its own: give dt (CLI: --dt)")
    return conv, note

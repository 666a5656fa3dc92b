"""What the NIR export and import share: the ``neurosim.*`` metadata prefix, the
``neurosim.ALIF`` extension node, discretisation methods, names and text."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neurosim.errors import ExportError

try:
    import nir
except ImportError as exc:  # pragma: no cover - nir is a pinned dependency of the mapping extra
    raise ImportError("mapping.nir_graph needs the 'nir' package (pip install nir==1.0.8)") from exc

ALIF_TYPE = "neurosim.ALIF"
NS = "neurosim."
_METHODS = ("euler", "exact")


@dataclass(eq=False)
class ALIFNode(nir.NIRNode):
    """neurosim extension node ``neurosim.ALIF``: the adaptive LIF of :class:`neurosim.ALIF`.

    ``alpha = decay(tau_syn)``, ``beta = decay(tau_mem)``, ``rho = decay(tau_adapt)``;
    ``i = alpha*i + gain*(x + bias)``, ``v = beta*v + i``, ``a = rho*a + adapt_gain*z[t-1]``,
    spike if ``v > v_threshold + adapt*a``. All fields have shape (n,); gain and bias are per step.
    """

    tau_mem: np.ndarray
    tau_syn: np.ndarray
    tau_adapt: np.ndarray
    gain: np.ndarray
    bias: np.ndarray
    v_threshold: np.ndarray
    adapt: np.ndarray
    adapt_gain: np.ndarray

    def __post_init__(self) -> None:
        shapes = {np.shape(getattr(self, f)) for f in ALIF_FIELDS}
        if len(shapes) != 1:
            raise ValueError(f"{ALIF_TYPE}: all parameters must have the same shape, got {shapes}")
        self.input_type = {"input": np.array(np.shape(self.v_threshold))}
        self.output_type = {"output": np.array(np.shape(self.v_threshold))}

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["type"] = ALIF_TYPE
        return out

    @classmethod
    def from_dict(cls, kwargs: dict[str, Any]) -> "ALIFNode":
        kw = {k: v for k, v in kwargs.items() if k != "type"}
        return cls(**kw)


ALIF_FIELDS = ("tau_mem", "tau_syn", "tau_adapt", "gain", "bias", "v_threshold", "adapt", "adapt_gain")

CHECK_DT = "check dt, the time step the graph was made for (snnTorch and SpikingJelly use 1e-4 s, Norse 1e-3 s)"


def check_method(method: str) -> None:
    """Refuse a discretisation other than 'euler' or 'exact'."""
    if method not in _METHODS:
        raise ExportError("nir", "discretization", f"expected 'euler' or 'exact', got {method!r}")


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3` ... the first not in `taken` (which it joins)."""
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def after_delay(src: str, name: str, shape: Any, seconds: float, nodes: dict[str, Any],
                edges: list[tuple[str, str]], taken: set[str]) -> str:
    """The node a projection reads: `src`, or (`seconds` > 0) a new nir.Delay node `name` (made
    unique) of that delay on every element of `shape`, fed by `src`."""
    if seconds <= 0:
        return src
    dname = unique_name(name, taken)
    nodes[dname] = nir.Delay(delay=np.full(shape, seconds))
    edges.append((src, dname))
    return dname


def as_text(x: Any) -> str:
    """Text of a value read from a graph (bytes decoded as UTF-8)."""
    return x.decode("utf8") if isinstance(x, bytes) else str(x)


SUPPORTED_NAMES = ("Input", "Output", "Affine", "Linear", "Scale", "Delay", "Conv1d", "Conv2d", "SumPool2d",
                   "AvgPool2d", "Flatten", "LIF", "CubaLIF", "IF", "LI", "CubaLI", "I", "Threshold",
                   "NIRGraph (flattened)", ALIF_TYPE)


def type_name(node: Any) -> str:
    """The NIR type name of `node` (``neurosim.ALIF`` for our extension node)."""
    return ALIF_TYPE if isinstance(node, ALIFNode) else type(node).__name__

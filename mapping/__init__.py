"""Export and import of networks (NIR, lava-dl NetX, Brian2, Lava) and the cross-check.

Each target lives in its own module and imports its peer package only when used:

- :mod:`mapping.nir_graph`: ``to_nir``, ``from_nir``, ``write_nir``, ``read_nir``
- :mod:`mapping.brian2_export`: ``to_brian2``, ``run_brian2``, ``write_brian2_script``
- :mod:`mapping.lava_export`: ``to_lava``, ``run_lava`` (``floating_pt`` and ``fixed_pt``)
- :mod:`mapping.netx`: ``to_netx``, ``read_netx``
- :mod:`mapping.agreement`: ``crosscheck`` (and the metrics, targets and overlay plots)

Every runner has the signature ``run_X(network, inputs, steps, **options) -> SimulationResult``
with spikes for every population and input, the same record :func:`neurosim.simulate` returns.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "to_nir": "nir_graph", "from_nir": "nir_graph", "write_nir": "nir_graph", "read_nir": "nir_graph",
    "to_brian2": "brian2_export", "run_brian2": "brian2_export", "write_brian2_script": "brian2_export",
    "to_lava": "lava_export", "run_lava": "lava_export",
    "to_netx": "netx", "read_netx": "netx",
    "crosscheck": "agreement",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'mapping' has no attribute {name!r}")

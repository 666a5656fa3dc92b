"""Simulation backends. Each provides ``make_runner(plan, batch, trace_idx, trace_vars)``.

A runner advances the network by chunks of steps, ``run(t0, src)`` with `src` the input
spikes of the chunk (steps, batch, n_sources), and returns neuron spike events (t, b, j)
sorted by (t, b, j) plus the chunk's traces. Backends are imported lazily.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from ..errors import BackendUnavailable

TRACE_VARS = ("v", "i", "a", "threshold")
_MODULES = {"numpy": "numpy_backend", "numba": "numba_backend", "cupy": "cupy_backend"}


def available() -> dict[str, str]:
    """Backend name -> '' if usable here, else the reason it is not."""
    out = {}
    for name in _MODULES:
        try:
            load(name).check()
            out[name] = ""
        except BackendUnavailable as exc:
            out[name] = str(exc)
    return out


def load(name: str) -> Any:
    """The backend module `name` ('numpy', 'numba' or 'cupy')."""
    if name not in _MODULES:
        raise BackendUnavailable(f"backend: expected one of {sorted(_MODULES)} or 'auto', got {name!r}")
    try:
        return importlib.import_module(f".{_MODULES[name]}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{_MODULES[name]}":
            raise BackendUnavailable(f"backend {name!r} is not part of this neurosim build yet; "
                                     "the 'numba' and 'numpy' backends run here") from None
        raise BackendUnavailable(f"backend {name!r} is not installed here ({exc})") from None


def passed_over(chosen: str) -> str:
    """Why `auto` did not pick cupy although its package is installed here (no device, no driver,
    a test kernel that would not compile or run), one line; '' when cupy was chosen or is not
    installed at all."""
    if chosen == "cupy" or importlib.util.find_spec("cupy") is None:
        return ""
    try:
        load("cupy").check()
    except BackendUnavailable as exc:
        return str(exc)
    return ""


def resolve(name: str) -> str:
    """'auto' -> 'cupy' if a CUDA device is usable, else 'numba' if installed, else 'numpy'."""
    if name != "auto":
        load(name).check()
        return name
    for candidate in ("cupy", "numba"):
        try:
            load(candidate).check()
            return candidate
        except BackendUnavailable:
            continue
    return "numpy"

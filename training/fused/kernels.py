"""Numba kernels of the fused multi-step neuron dynamics: forward over all T steps and backward
over all T steps, each one compiled call, specialised per model (a second target of
:func:`neurosim.models.neuron_step`, compared with it by tests/test_fused.py).

The map (per neuron n, batch row b; the canonical step with the input already projected)::

    i[t] = alpha*i[t-1] + gain*(x[t] + bias)
    a[t] = rho*a[t-1] + adapt_gain*z[t-1]                                  (alif only)
    h[t] = beta*v[t-1] + i[t]  if r[t-1] == 0  else v[t-1]                (r: refractory only)
    z[t] = H(h[t] - theta - adapt*a[t]) * [r[t-1] == 0]                    (li: z = 0)
    v[t] = h[t] - z[t]*theta  (subtract)   or   h[t] - z[t]*h[t]  (zero)
    r[t] = refractory if z[t] else max(r[t-1] - 1, 0)

Forward saves h (T, B, N) and z (T, B, N, as the output), plus a (alif) and the active mask
(refractory) for the backward; v is recomputed from them. Backward (g_z, g_v: loss gradients
of the outputs z and v; carries c_i, c_v, c_a from step t + 1)::

    G  = g_v[t] + c_v;  dz = g_z[t] + adapt_gain*c_a
    subtract: dh = G, dz -= theta*G, dtheta -= z*G;   zero: dh = G*(1 - z), dz -= h*G
    du = dz * sg(u) * active;  dh += du;  dtheta -= du;  da = -adapt*du + rho*c_a
    di = alpha*c_i + active*dh;  dx = gain*di;  dbeta += active*v[t-1]*dh
    c_v = beta*dh if active else dh;  c_i = di;  c_a = da

with sg the surrogate's pseudo-derivative (training.surrogate). Kernels are cached by
(model, reset, refractory, surrogate); surrogate parameters are run-time arguments.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

SURROGATES = ("fast_sigmoid", "atan", "triangle")
MODEL_KINDS = ("lif", "alif", "li")


class KernelKey(NamedTuple):
    """What a compiled kernel is specialised for: model kind ('lif' also serves IF: alpha = 0,
    beta = 1), reset to zero (else subtract), a refractory period present, surrogate name."""

    kind: str
    reset_zero: bool
    refractory: bool
    surrogate: str


_CACHE: dict[KernelKey, tuple[Any, Any]] = {}
FLAGS = 'KIND, ZERO, REFR, SURROGATE = "lif", False, False, "fast_sigmoid"  # FLAGS (replaced per kernel)'


def cache_dir() -> Path:
    """Where the specialised kernel sources (and numba's compiled cache beside them) live:
    $NEUROSIM_CACHE/fused, default ~/.cache/neurosim/fused."""
    root = os.environ.get("NEUROSIM_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "neurosim")
    return Path(root) / "fused"


def kernels(key: KernelKey) -> tuple[Any, Any]:
    """(forward, backward) compiled for `key` from training/fused/template.py with its flag line
    set to the key (numba caches the machine code on disk beside the specialised source)."""
    if key not in _CACHE:
        template = Path(__file__).with_name("template.py").read_text()
        if FLAGS not in template:
            raise RuntimeError("training/fused/template.py lost its FLAGS line")
        flags = f"KIND, ZERO, REFR, SURROGATE = {key.kind!r}, {key.reset_zero}, {key.refractory}, {key.surrogate!r}"
        text = template.replace(FLAGS, flags)
        name = f"fused_{hashlib.sha1(text.encode()).hexdigest()[:16]}"
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.py"
        if not path.exists() or path.read_text() != text:
            from neurosim.atomic import write_text

            write_text(str(path), text)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module  # numba's disk cache finds the module's globals by name
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        _CACHE[key] = (module.forward, module.backward)
    return _CACHE[key]


def as_array(a: Any) -> np.ndarray:
    """A contiguous numpy view of a CPU tensor or array (no copy where already contiguous)."""
    return np.ascontiguousarray(a.detach().numpy() if hasattr(a, "detach") else a)

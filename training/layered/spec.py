"""The layer spec of a layered SNN: a list of :class:`LayerSpec`, from Python, a one-line string
(``neurosim train --arch``) or a JSON model file.

String form: layers separated by commas, each ``kind`` or ``kind(args)`` with positional whole
numbers and ``key=value`` options::

    conv(16,k=5,p=2),pool(2),conv(32,k=3,p=1),pool(2),flatten,dense(10)

| kind | positional | options |
|---|---|---|
| conv | out channels | k (kernel, default 3), s (stride 1), p (padding 0), d (dilation 1), g (groups 1), bias (0/1) |
| pool | kernel (stride = kernel) | mode (sum or avg, default sum) |
| flatten | | (no neurons: a dense layer after it reads the (C, H, W) spikes row-major) |
| dense | neurons | bias (0/1) |
| rdense | neurons | bias (0/1); recurrent: x[t] += z[t-1] @ W_rec (no self-connections at init) |

Every layer but flatten has neurons, with options neuron (lif, alif, if, li), beta, alpha, theta,
reset (subtract, zero), rho and adapt (alif), train (beta, theta or beta+theta: per-neuron
trainable parameters as in PLIF), scale (initial weights ~ N(0, scale^2 / fan_in), default 1).
Parameters are per-step decay factors (neurosim.models); defaults: beta 0.9, alpha 0, theta 1
(0.5 for pool layers: a sum pool then fires on any input spike), subtractive reset; the last layer defaults to an LI readout. JSON: a list of objects with the
same keys plus "kind" and the positional value as "size" (``[{"kind": "conv", "size": 16, "k": 5}]``)
or ``{"layers": [...]}``.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from neurosim.errors import NetworkError

KINDS = ("conv", "pool", "flatten", "dense", "rdense")
NEURONS = ("lif", "alif", "if", "li")
_INT_KEYS = {"k": "kernel", "s": "stride", "p": "padding", "d": "dilation", "g": "groups"}


@dataclass(frozen=True)
class LayerSpec:
    """One layer. `size`: out channels (conv), kernel (pool), neurons (dense, rdense), 0 (flatten).
    Neuron fields are ignored for flatten; `train` is '', 'beta', 'theta' or 'beta+theta'."""

    kind: str
    size: int = 0
    kernel: int = 3
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    bias: bool = False
    mode: str = "sum"
    neuron: Optional[str] = None
    beta: float = 0.9
    alpha: float = 0.0
    theta: Optional[float] = None
    reset: str = "subtract"
    rho: float = 0.95
    adapt: float = 1.8
    train: str = ""
    scale: float = 1.0
    name: str = ""

    @property
    def has_neurons(self) -> bool:
        return self.kind != "flatten"

    def check(self, where: str) -> "LayerSpec":
        """This spec, validated; errors name `where` (e.g. 'arch[2]') and the field."""
        if self.kind not in KINDS:
            raise NetworkError(f"{where}.kind", f"expected one of {list(KINDS)}, got {self.kind!r}")
        if self.kind != "flatten" and self.size < 1:
            raise NetworkError(f"{where}.size", f"expected a whole number >= 1 ({_size_meaning(self.kind)}), "
                                                f"got {self.size}")
        for f in ("kernel", "stride", "dilation", "groups"):
            if getattr(self, f) < 1:
                raise NetworkError(f"{where}.{f}", f"expected a whole number >= 1, got {getattr(self, f)}")
        if self.padding < 0:
            raise NetworkError(f"{where}.padding", f"expected a whole number >= 0, got {self.padding}")
        if self.mode not in ("avg", "sum"):
            raise NetworkError(f"{where}.mode", f"expected avg or sum, got {self.mode!r}")
        if self.neuron is not None and self.neuron not in NEURONS:
            raise NetworkError(f"{where}.neuron", f"expected one of {list(NEURONS)}, got {self.neuron!r}")
        if self.reset not in ("subtract", "zero"):
            raise NetworkError(f"{where}.reset", f"expected subtract or zero, got {self.reset!r}")
        for f in ("beta", "alpha", "rho"):
            v = getattr(self, f)
            if not 0.0 <= v <= 1.0:
                raise NetworkError(f"{where}.{f}", f"expected a decay factor in [0, 1], got {v}")
        if (self.theta is not None and not self.theta > 0) or not self.scale > 0 or not self.adapt >= 0:
            bad = "theta" if self.theta is not None and not self.theta > 0 else "scale" if not self.scale > 0 else "adapt"
            raise NetworkError(f"{where}.{bad}", f"expected a finite number > 0 (adapt >= 0), got {getattr(self, bad)}")
        if self.train not in ("", "beta", "theta", "beta+theta"):
            raise NetworkError(f"{where}.train", f"expected beta, theta or beta+theta, got {self.train!r}")
        if self.kind == "pool" and self.neuron == "li":
            raise NetworkError(f"{where}.neuron", "an LI layer never spikes: only the last layer can be a readout")
        return self


def _size_meaning(kind: str) -> str:
    return {"conv": "out channels", "pool": "kernel", "dense": "neurons", "rdense": "neurons"}.get(kind, "")


_LAYER = re.compile(r"\s*([a-z]+)\s*(?:\(([^()]*)\))?\s*")


def parse_arch(text: str) -> list[LayerSpec]:
    """Layers of the string form (module docstring); a path ending in .json is read as a model file."""
    if text.strip().endswith(".json"):
        return load_arch(text.strip())
    layers = []
    parts = _split_top(text)
    if not parts:
        raise NetworkError("arch", "expected at least one layer, e.g. conv(16,k=5,p=2),pool(2),flatten,dense(10)")
    for j, part in enumerate(parts):
        m = _LAYER.fullmatch(part)
        if m is None:
            raise NetworkError(f"arch[{j}]", f"expected kind or kind(args), got {part.strip()!r}")
        kind, args = m.group(1), m.group(2)
        fields: dict[str, Any] = {"kind": kind}
        for a in ([] if not args or not args.strip() else args.split(",")):
            a = a.strip()
            if "=" in a:
                key, value = (s.strip() for s in a.split("=", 1))
                fields[_INT_KEYS.get(key, key)] = value
            elif "size" not in fields:
                fields["size"] = a
            else:
                raise NetworkError(f"arch[{j}]", f"one positional value only (the size), got {a!r} too")
        layers.append(_from_fields(fields, f"arch[{j}]"))
    return finish(layers)


def _split_top(text: str) -> list[str]:
    """Split at commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p for p in parts if p.strip()]


_TYPES = {f: t for f, t in LayerSpec.__annotations__.items()}


def _from_fields(fields: dict[str, Any], where: str) -> LayerSpec:
    known = set(LayerSpec.__dataclass_fields__)
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in known:
            raise NetworkError(f"{where}.{key}", f"unknown option; expected one of {sorted(known)}")
        t = _TYPES[key]
        try:
            if t == "int":
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                out[key] = int(value)
            elif t in ("float", "Optional[float]"):
                out[key] = float(value)
            elif t == "bool":
                if str(value).lower() not in ("0", "1", "true", "false"):
                    raise ValueError
                out[key] = str(value).lower() in ("1", "true")
            else:
                out[key] = None if value is None else str(value)
        except ValueError:
            raise NetworkError(f"{where}.{key}", f"expected {t.replace('Optional[str]', 'str')}, got {value!r}") from None
    return LayerSpec(**out).check(where)


def finish(layers: Sequence[LayerSpec]) -> list[LayerSpec]:
    """Names ('l1', 'l2', ..., the last 'out') and neuron defaults (lif; li for the last layer);
    the last layer must be dense with an LI readout or spiking neurons."""
    layers = list(layers)
    if not layers or layers[-1].kind not in ("dense", "rdense"):
        raise NetworkError("arch", "the last layer must be dense (the readout), e.g. ...,flatten,dense(10)")
    out = []
    for j, s in enumerate(layers):
        last = j == len(layers) - 1
        neuron = s.neuron or ("li" if last else "lif")
        if neuron == "li" and not last and s.has_neurons:
            raise NetworkError(f"arch[{j}].neuron", "an LI layer never spikes: only the last layer can be a readout")
        trained = set(s.train.split("+")) - {""}
        if ("beta" in trained and neuron == "if") or ("theta" in trained and neuron == "li"):
            raise NetworkError(f"arch[{j}].train", f"a {neuron} neuron has no {'beta' if neuron == 'if' else 'theta'} "
                                                   "to train")
        name = s.name or ("out" if last else f"l{j + 1}")
        theta = s.theta if s.theta is not None else (0.5 if s.kind == "pool" else 1.0)
        out.append(replace(s, neuron=neuron if s.has_neurons else None, name=name, theta=theta))
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise NetworkError("arch", f"layer names must be unique, got {names}")
    return out


def load_arch(path: Union[str, Path]) -> list[LayerSpec]:
    """Layers of a JSON model file: a list of layer objects, or {"layers": [...]}."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise NetworkError(str(path), f"expected a readable JSON model file: {e}") from None
    if isinstance(data, dict):
        data = data.get("layers")
    if not isinstance(data, list):
        raise NetworkError(f"{path}.layers", "expected a list of layer objects")
    layers = []
    for j, item in enumerate(data):
        if not isinstance(item, dict) or "kind" not in item:
            raise NetworkError(f"{path}.layers[{j}]", 'expected an object with "kind"')
        layers.append(_from_fields(dict(item), f"{path}.layers[{j}]"))
    return finish(layers)


def arch_json(layers: Sequence[LayerSpec]) -> str:
    """The JSON model file of `layers` (load_arch reads it back)."""
    return json.dumps({"layers": [asdict(s) for s in layers]}, indent=1)

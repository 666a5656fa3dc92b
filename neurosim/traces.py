"""Which neurons and which steps a state trace keeps: ``POP:VAR[:NEURONS][:STRIDE]``.

NEURONS: comma-separated indices and inclusive ranges of the population, e.g. ``0-9,20,30-40``
(empty or absent: every neuron); kept in increasing order. STRIDE k >= 1: the steps 0, k, 2k,
... are kept (absent: every step). So ``exc:v::10`` records every neuron every 10th step and
``exc:v:0-99`` the first 100 neurons every step. A recording of `n` neurons, `b` trials and
`T` steps with stride k holds ``n * b * ceil(T / k)`` values per variable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import NetworkError

MAX_PICKED = 2**26  # neurons one selection may name (with repeats)


@dataclass(frozen=True)
class TraceSelection:
    """The neurons (indices in increasing order; None: all) and the stride (every k-th step,
    from step 0) of one population's traces."""

    neurons: Optional[tuple[int, ...]] = None
    stride: int = 1

    @property
    def full(self) -> bool:
        """True when every neuron is kept every step."""
        return self.neurons is None and self.stride == 1

    def columns(self, size: int) -> np.ndarray:
        """Indices of the kept neurons of a population of `size` neurons."""
        return np.arange(size) if self.neurons is None else np.asarray(self.neurons, np.int64)

    def count(self, size: int) -> int:
        """Number of kept neurons of a population of `size`."""
        return size if self.neurons is None else len(self.neurons)

    def steps(self, steps: int) -> np.ndarray:
        """The kept steps of a run of `steps` steps: 0, k, 2k, ... < steps."""
        return np.arange(0, steps, self.stride)

    def text(self) -> str:
        """``NEURONS:STRIDE`` as written in a trace request ('' for the neurons when all)."""
        return f"{format_neurons(self.neurons)}:{self.stride}"


def parse_neurons(text: str, size: Optional[int], where: str) -> Optional[tuple[int, ...]]:
    """'0-9,20,30-40' -> sorted unique indices (None for ''); each in [0, size) when size is given.
    NetworkError naming `where` for anything else."""
    text = text.strip()
    if not text:
        return None
    ranges = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.strip().isdigit() or (dash and not hi.strip().isdigit()):
            raise NetworkError(where, f"expected neurons as indices and ranges such as 0-9,20,30-40, got {text!r}")
        a, b = int(lo), int(hi) if dash else int(lo)
        if b < a:
            raise NetworkError(where, f"expected ranges low-high with low <= high, got {part.strip()!r}")
        if size is not None and b >= size:
            raise NetworkError(where, f"neuron {b} is out of range: the population has {size} neurons (0-{size - 1})")
        ranges.append((a, b))
    if sum(b - a + 1 for a, b in ranges) > MAX_PICKED:
        raise NetworkError(where, f"expected at most {MAX_PICKED} neurons, got {text[:60]!r}")
    picked = np.unique(np.concatenate([np.arange(a, b + 1, dtype=np.int64) for a, b in ranges]))
    return tuple(picked.tolist())


def format_neurons(neurons: Optional[tuple[int, ...]]) -> str:
    """Sorted indices as ranges: (0, 1, 2, 5) -> '0-2,5'; None -> ''."""
    if neurons is None:
        return ""
    parts, start = [], None
    for k, j in enumerate(neurons):
        if start is None:
            start = j
        if k + 1 == len(neurons) or neurons[k + 1] != j + 1:
            parts.append(f"{start}-{j}" if j != start else f"{j}")
            start = None
    return ",".join(parts)


def parse_stride(text: str, where: str) -> int:
    """'10' -> 10 ('' -> 1): a whole number of steps >= 1, else NetworkError naming `where`."""
    text = text.strip()
    if not text:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise NetworkError(where, f"expected a stride as a whole number of steps >= 1, got {text!r}")
    return int(text)


def split_entry(text: str) -> tuple[str, str, str, str]:
    """'pop:var[:neurons][:stride]' -> (pop, var, neurons, stride), absent parts ''. NetworkError
    on 'traces' when there are fewer than 2 or more than 4 parts."""
    parts = str(text).split(":")
    if not 2 <= len(parts) <= 4 or not parts[0] or not parts[1]:
        raise NetworkError("traces", f"expected 'population:variable[:neurons][:stride]' entries, e.g. 'exc:v' or "
                                     f"'exc:v:0-9,20:10', got {text!r}")
    parts += [""] * (4 - len(parts))
    return parts[0], parts[1], parts[2], parts[3]


def trace_bytes(counts: dict[str, int], variables: dict[str, list[str]], selection: dict[str, TraceSelection],
                steps: int, batch: int, itemsize: int) -> int:
    """Bytes the kept traces take: per population, variables x kept neurons (`counts`: population
    -> its size) x kept steps x trials x `itemsize`."""
    total = 0
    for pop, vs in variables.items():
        sel = selection.get(pop, TraceSelection())
        total += len(vs) * sel.count(counts[pop]) * len(sel.steps(steps)) * batch * itemsize
    return total


def describe_bytes(n: float) -> str:
    """A size in words: '512 B', '3.2 MB', '1.5 GB' (decimal units)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def parse_size(text: str) -> int:
    """'1GB' -> 10**9, '500MB', '2GiB', '1e9' or '4096' (bytes) -> whole bytes > 0; ValueError else."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    s = str(text).strip().upper()
    head = s.rstrip("KMGTIB")
    unit = s[len(head):]
    try:
        value = float(head) * units[unit]
    except (ValueError, KeyError):
        raise ValueError(f"expected a size such as 500MB, 2GB or 1.5GiB, got {text!r}") from None
    if not (value >= 1 and value < float("inf")):
        raise ValueError(f"expected a size of at least 1 byte, got {text!r}")
    return int(value)

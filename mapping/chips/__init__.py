"""Neuromorphic chips as data: one JSON file per chip in this folder (``loihi2.json`` first).

A chip file holds figures, each ``{"value", "unit", "source", "status", "note"}``, in groups:

- ``chip``: per-chip totals (cores, neurons, synapses);
- ``limits``: per-core limits the partitioner (:mod:`mapping.chip_partition`) respects, any of
  ``neurons``, ``synaptic_memory`` (bits), ``fan_in_axons``, ``fan_out_axons``; a limit left out
  or with value null is not checked, and the report says so;
- ``memory_model``: how synaptic memory is counted (``word_bits``, ``delay_bits``, ``index_bits``);
- ``arithmetic``: ``weight_bits``, ``state_bits``, ``max_delay``;
- ``energy`` and ``time``: per-operation figures (J, s) for the cost estimate
  (:mod:`mapping.chip_cost`).

``status`` is one of :data:`STATUSES`: 'published' (stated for this chip), 'stand-in' (another
chip's published figure, used because this chip's is not published), 'model' (an accounting
rule of this package) or 'not published' (value null: the report says so and leaves the term
out). ``source`` is a key of the file's ``sources``, each a full citation. A new target
(SpiNNaker 2, Xylo, Speck) is a new file, not new code.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from neurosim.errors import NeurosimError

STATUSES = ("published", "stand-in", "model", "not published")
GROUPS = ("chip", "limits", "memory_model", "arithmetic", "energy", "time")
LIMITS = ("neurons", "synaptic_memory", "fan_in_axons", "fan_out_axons")
HERE = os.path.dirname(os.path.abspath(__file__))


class ChipError(NeurosimError, ValueError):
    """A chip name or chip file that cannot be used; the message names it and the expected form."""


@dataclass(frozen=True)
class Figure:
    """One constant with its unit, its citation (full text) and its status (:data:`STATUSES`)."""

    value: Optional[float]
    unit: str
    source: str
    status: str
    note: str = ""
    ref: str = ""  # the key of `source` in the chip file's sources

    @property
    def known(self) -> bool:
        return self.value is not None

    def cite(self) -> str:
        """'value unit (status; source)' on one line."""
        shown = "not published" if self.value is None else f"{self.value:g} {self.unit}"
        label = "" if self.status in ("published", "not published") else f"{self.status}; "
        return f"{shown} ({label}{self.ref or self.source})"


@dataclass(frozen=True)
class Chip:
    """A chip read from its data file: figures by group and name, and the citations."""

    name: str
    title: str
    path: str
    sources: dict[str, str]
    groups: dict[str, dict[str, Figure]] = field(default_factory=dict)

    def figure(self, group: str, name: str) -> Optional[Figure]:
        """The figure, or None when the file does not give it."""
        return self.groups.get(group, {}).get(name)

    def value(self, group: str, name: str) -> Optional[float]:
        """The figure's value, or None when absent or not published."""
        fig = self.figure(group, name)
        return None if fig is None else fig.value

    def limit(self, name: str) -> Optional[float]:
        """A per-core limit (:data:`LIMITS`), None when not given or not published."""
        return self.value("limits", name)

    def with_limits(self, **limits: Optional[float]) -> "Chip":
        """A copy with some per-core limits replaced (None: unlimited), e.g. to test which binds."""
        groups = {g: dict(f) for g, f in self.groups.items()}
        for name, value in limits.items():
            if name not in LIMITS:
                raise ChipError(f"limits.{name}: unknown limit; expected one of {', '.join(LIMITS)}")
            old = groups.setdefault("limits", {}).get(name)
            groups["limits"][name] = Figure(value, old.unit if old else "", "changed by the caller", "model",
                                            "a limit set by the caller, not the chip's", "caller")
        return Chip(self.name, self.title, self.path, self.sources, groups)


def available_chips() -> list[str]:
    """The names of the chip files in this folder."""
    return sorted(f[:-5] for f in os.listdir(HERE) if f.endswith(".json"))


def load_chip(name: str) -> Chip:
    """The chip called `name` (a file of this folder) or read from a path ending in .json."""
    path = name if name.endswith(".json") else os.path.join(HERE, f"{name}.json")
    if not name.endswith(".json") and name not in available_chips():
        raise ChipError(f"--chip {name}: unknown chip; expected one of {', '.join(available_chips())} "
                        "or a chip file ending in .json")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ChipError(f"{path}: no such chip file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChipError(f"{path}: not a readable JSON chip file ({' '.join(str(exc).split())})") from None
    return parse_chip(data, path)


def parse_chip(data: Any, path: str) -> Chip:
    """Validate a chip file's contents (errors name the file and the field)."""
    if not isinstance(data, dict):
        raise ChipError(f"{path}: expected a JSON object with name, title, sources and figure groups")
    sources = data.get("sources")
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise ChipError(f"{path}: sources: expected an object of citation texts")
    for key in ("name", "title"):
        if not isinstance(data.get(key), str):
            raise ChipError(f"{path}: {key}: expected a text")
    groups: dict[str, dict[str, Figure]] = {}
    for group in GROUPS:
        raw = data.get(group, {})
        if not isinstance(raw, dict):
            raise ChipError(f"{path}: {group}: expected an object of figures")
        groups[group] = {k: _figure(v, sources, f"{path}: {group}.{k}") for k, v in raw.items()}
    unknown = set(groups["limits"]) - set(LIMITS)
    if unknown:
        raise ChipError(f"{path}: limits.{sorted(unknown)[0]}: unknown limit; expected some of {', '.join(LIMITS)}")
    return Chip(data["name"], data["title"], path, dict(sources), groups)


def _figure(raw: Any, sources: dict[str, str], where: str) -> Figure:
    if not isinstance(raw, dict):
        raise ChipError(f"{where}: expected an object with value, unit, source, status")
    status, source, value = raw.get("status"), raw.get("source"), raw.get("value")
    if status not in STATUSES:
        raise ChipError(f"{where}.status: expected one of {', '.join(STATUSES)}, got {status!r}")
    if source not in sources:
        raise ChipError(f"{where}.source: expected a key of 'sources' ({', '.join(sources)}), got {source!r}")
    if value is None and status not in ("not published", "model"):
        raise ChipError(f"{where}.value: null is only for status 'not published' or 'model'")
    if status == "not published" and value is not None:
        raise ChipError(f"{where}.value: a figure that is not published has value null")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
        raise ChipError(f"{where}.value: expected a number >= 0 or null, got {value!r}")
    return Figure(None if value is None else float(value), str(raw.get("unit", "")), sources[source], status,
                  str(raw.get("note", "")), source)

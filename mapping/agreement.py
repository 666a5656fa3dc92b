"""Cross-check: run one network on one input in several simulators and say where they disagree.

The reference is neurosim's NumPy backend in float64. Poisson inputs are drawn once, by the
reference, and every other target receives the same spikes as explicit inputs. Fixed-point
targets are compared with neurosim's own fixed-point mode (where agreement must be exact) and
listed against the float reference too (where quantisation makes it approximate).

Per target and population the report gives:

- ``count``: spike-count agreement ``1 - sum|c_ref - c_tgt| / sum(c_ref + c_tgt)`` over (trial, neuron);
- ``bins``: fraction of (step, trial, neuron) bins with the same spike/no-spike value;
- ``spikes``: exact spike-time agreement ``2 |R & S| / (|R| + |S|)`` of the event sets (1 if both empty);
- the first divergence (step, trial, neuron, both spike values and both membrane values) and
  its reason when one can be told from the traces.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from neurosim.atomic import write_text
from neurosim.errors import BackendUnavailable, ExportError, NetworkError, NeurosimError
from neurosim.network import Network, PoissonInput, SpikeInput
from neurosim.result import SimulationResult
from neurosim.simulate import simulate

from .agreement_plots import plot_activity, plot_overlay

Runner = Callable[[Network, Mapping[str, np.ndarray], int, bool], SimulationResult]
METRICS = ("bins", "spikes", "count")


@dataclass(frozen=True)
class Target:
    """A simulator to check: `run(network, inputs, steps, traces)` and the reference it must match."""

    name: str
    reference: str
    run: Runner
    exact: bool
    description: str


@dataclass(frozen=True)
class Divergence:
    """The earliest (step, trial, neuron) where target and reference spikes differ."""

    step: int
    trial: int
    neuron: int
    reference_spike: bool
    target_spike: bool
    reference_v: Optional[float]
    target_v: Optional[float]
    reason: str


@dataclass(frozen=True)
class Agreement:
    """Agreement of one population between a target and its reference."""

    target: str
    reference: str
    population: str
    reference_spikes: int
    target_spikes: int
    count: float
    bins: float
    spikes: float
    divergence: Optional[Divergence]
    max_abs_dv: Optional[float] = None  # largest |v_ref - v_target| over the run (when both traced)

    def value(self, metric: str) -> float:
        if metric not in METRICS:
            raise NetworkError("metric", f"expected one of {METRICS}, got {metric!r}")
        return float(getattr(self, metric))


@dataclass
class CrossCheck:
    """Results of every target run, the agreement rows, and the targets that could not run (why)."""

    network: Network
    steps: int
    results: dict[str, SimulationResult]
    rows: list[Agreement]
    skipped: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)

    def worst(self, metric: str = "bins", exact_only: bool = False) -> Optional[float]:
        """Smallest `metric` over the rows (only the rows of exact targets against their own
        reference, when `exact_only`: where any difference is a bug); None when there are no
        such rows, for nothing was compared."""
        vals = [r.value(metric) for r in self.rows if not exact_only or _is_exact(r)]
        return min(vals) if vals else None

    def comparisons(self, exact: bool) -> list[str]:
        """'target against reference' of every exact (or every quantised) comparison made."""
        return list(dict.fromkeys(f"{r.target} against {r.reference}" for r in self.rows if _is_exact(r) == exact))

    def shortfalls(self, metric: str = "bins", minimum: float = 1.0, bar: Optional[str] = None) -> list[str]:
        """Why this check does not show exact agreement >= `minimum` in `metric`: a target that
        was skipped (so not checked), no exact comparison at all (quantised comparisons are
        approximate by design and not held to the bar), or the worst exact agreement below
        `minimum`. Empty when the bar is met. `bar` names the bar in the messages (default: the
        number)."""
        bar = bar or f"{minimum:g}"
        problems = [f"target {name} was skipped, so it was not checked against {bar} ({reason})"
                    for name, reason in self.skipped.items()]
        worst = self.worst(metric, exact_only=True)
        if worst is None:
            quantised = self.comparisons(exact=False)
            exact = [n if t.reference == "neurosim" else f"{n} (against {t.reference})"
                     for n, t in TARGETS.items() if t.exact]
            problems.append("no exact comparison was made, so nothing was held to " + bar
                            + (f" ({', '.join(quantised)}: quantised, approximate by design, not held to it)"
                               if quantised else "")
                            + f"; the exact targets are {', '.join(exact)}")
        elif worst < minimum:
            problems.append(f"agreement {worst:.6f} ({metric}) is below {bar}")
        return problems

    def table(self) -> str:
        """Markdown table of every row."""
        lines = ["| target | reference | population | spikes (ref / target) | count | bins identical | "
                 "spike times | max abs dv | first divergence |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r.target} | {r.reference} | {r.population} | {r.reference_spikes} / "
                         f"{r.target_spikes} | {_pct(r.count)} | {_pct(r.bins)} | {_pct(r.spikes)} | "
                         f"{'-' if r.max_abs_dv is None else f'{r.max_abs_dv:.3g}'} | {_describe(r.divergence)} |")
        return "\n".join(lines)

    def write_report(self, directory: str, metric: str = "bins", plot: bool = True) -> dict[str, str]:
        """Write report.md, agreement.csv and one overlay PNG per target into `directory`; for a
        network with shaped populations (C, H, W) also activity_neurosim.png (the reference's
        spike counts per channel) and, per target whose shaped spikes differ from its
        reference's, activity_diff_<target>.png (the count differences)."""
        os.makedirs(directory, exist_ok=True)
        paths: dict[str, str] = {}
        shapes = {p.name: p.shape for p in self.network.populations if len(p.shape) > 1}
        if plot and shapes:
            paths["activity_neurosim"] = os.path.join(directory, "activity_neurosim.png")
            plot_activity(self.results["neurosim"], None, paths["activity_neurosim"], shapes, "neurosim")
        if plot:
            for name in self.results:
                if name == "neurosim":
                    continue
                ref = _reference_of(name, self)
                if ref is None:
                    continue
                path = os.path.join(directory, f"overlay_{name}.png")
                plot_overlay(self.results[ref], self.results[name], path, title=f"{name} against {ref}",
                             readouts=[p.name for p in self.network.populations if not p.spiking], shapes=shapes)
                paths[f"overlay_{name}"] = path
                if shapes and any(_differs(self.results[ref], self.results[name], p) for p in shapes):
                    paths[f"activity_diff_{name}"] = os.path.join(directory, f"activity_diff_{name}.png")
                    plot_activity(self.results[name], self.results[ref], paths[f"activity_diff_{name}"], shapes,
                                  f"{name} - {ref}")
        csv = ["target,reference,population,reference_spikes,target_spikes,count,bins,spikes,"
               "divergence_step,divergence_trial,divergence_neuron,reason"]
        for r in self.rows:
            d = r.divergence
            div = f"{d.step},{d.trial},{d.neuron},\"{d.reason}\"" if d else ",,,"
            csv.append(f"{r.target},{r.reference},{r.population},{r.reference_spikes},{r.target_spikes},"
                       f"{r.count:.6f},{r.bins:.8f},{r.spikes:.6f},{div}")
        paths["csv"] = os.path.join(directory, "agreement.csv")
        write_text(paths["csv"], "\n".join(csv) + "\n")
        paths["report"] = os.path.join(directory, "report.md")
        write_text(paths["report"], self.markdown(metric, {k: os.path.basename(v) for k, v in paths.items()}))
        return paths

    def _worst_line(self, metric: str) -> str:
        every, exact = self.worst(metric), self.worst(metric, exact_only=True)
        if every is None:
            return "Nothing was compared (no target ran)."
        line = f"Worst `{metric}` agreement: {_pct(every)}"
        if exact is None:
            return line + "; no exact comparison was made (quantised comparisons only)."
        return line + (f", {_pct(exact)} over the exact comparisons." if exact != every else ".")

    def markdown(self, metric: str = "bins", files: Optional[Mapping[str, str]] = None) -> str:
        net = self.network
        out = [f"# Cross-check of `{net.name}`", "",
               f"{self.steps} steps of dt = {net.dt:g} s, {len(net.populations)} populations, "
               f"{net.n_neurons} neurons; reference: neurosim NumPy float64. {self._worst_line(metric)}",
               "", self.table(), ""]
        if self.skipped:
            out += ["Targets that did not run:", ""]
            out += [f"- **{k}**: {v}" for k, v in self.skipped.items()]
            out.append("")
        out += ["| target | run time (s) |", "|---|---|"]
        out += [f"| {k} | {v:.3f} |" for k, v in self.seconds.items()]
        out.append("")
        for key, name in (files or {}).items():
            if key.startswith("overlay_"):
                out += [f"![{key[8:]}]({name})", ""]
        for key, name in (files or {}).items():
            if key.startswith("activity_"):
                what = ("spike counts per channel of the shaped populations (reference)" if key == "activity_neurosim"
                        else f"spike-count differences per channel, {key[14:]} against its reference")
                out += [f"![{what}]({name})", ""]
        return "\n".join(out)


# ------------------------------------------------------------------------------------ targets


def _brian2(code_target: str) -> Runner:
    def run(net: Network, inputs: Mapping[str, np.ndarray], steps: int, traces: bool) -> SimulationResult:
        from .brian2_export import run_brian2

        return run_brian2(net, inputs, steps, target=code_target, traces=_v_traces(net) if traces else None)
    return run


def _lava(mode: str) -> Runner:
    def run(net: Network, inputs: Mapping[str, np.ndarray], steps: int, traces: bool) -> SimulationResult:
        from .lava_export import run_lava

        return run_lava(net, inputs, steps, mode=mode, traces=_v_traces(net) if traces else None)
    return run


def _fixed(net: Network, inputs: Mapping[str, np.ndarray], steps: int, traces: bool) -> SimulationResult:
    from neurosim.fixed_point import quantize, simulate_fixed

    return simulate_fixed(quantize(net), inputs, steps, traces=_v_traces(net) if traces else None)


# the modes in which a backend promises NumPy's sums bit for bit (an exact target is checked for that):
# numba's dense switch and cupy's default atomic scatter sum in another order (equal up to ties)
EXACT_OPTIONS = {"numba": {"dense": "never"}, "cupy": {"propagation": "gather"}}


def _backend(name: str) -> Runner:
    def run(net: Network, inputs: Mapping[str, np.ndarray], steps: int, traces: bool) -> SimulationResult:
        return simulate(net, inputs, steps, backend=name, traces=_v_traces(net) if traces else None,
                        backend_options=EXACT_OPTIONS[name])
    return run


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("numba", "neurosim", _backend("numba"), True,
           "neurosim numba backend, float64, event-driven (dense='never')"),
    Target("cupy", "neurosim", _backend("cupy"), True, "neurosim CuPy backend, float64, gather propagation"),
    Target("brian2", "neurosim", _brian2("numpy"), True, "Brian2 numpy target, float64"),
    Target("brian2-cython", "neurosim", _brian2("cython"), True, "Brian2 cython target, float64"),
    Target("brian2-cpp", "neurosim", _brian2("cpp_standalone"), True, "Brian2 cpp_standalone, float64"),
    Target("fixed", "neurosim", _fixed, False, "neurosim Loihi fixed-point mode (quantised)"),
    Target("lava-float", "neurosim", _lava("floating_pt"), True, "Lava Loihi2SimCfg floating_pt"),
    Target("lava-fixed", "fixed", _lava("fixed_pt"), True, "Lava Loihi2SimCfg fixed_pt (bit-accurate)"),
)}


def parse_targets(text: str) -> list[str]:
    """'brian2,lava-float' -> ['brian2', 'lava-float'], validated against :data:`TARGETS`
    (known names, each once)."""
    names = [t.strip() for t in str(text).split(",") if t.strip()]
    if not names:
        raise NetworkError("targets", f"expected a comma-separated list of {', '.join(TARGETS)}")
    for k, n in enumerate(names):
        if n not in TARGETS:
            raise NetworkError("targets", f"unknown target {n!r}; expected some of {', '.join(TARGETS)}")
        if n in names[:k]:
            raise NetworkError("targets", f"target {n!r} is named twice; name each target once")
    return names


def run_order(names: Sequence[str]) -> list[str]:
    """`names` with every target's reference target (lava-fixed's 'fixed', added when missing)
    placed before it, so that a reference runs before what is compared with it."""
    out: list[str] = []

    def add(name: str) -> None:
        ref = TARGETS[name].reference
        if ref in TARGETS and ref not in out:
            add(ref)
        if name not in out:
            out.append(name)

    for n in names:
        add(n)
    return out


# ------------------------------------------------------------------------------- cross-check


def crosscheck(
    network: Network,
    inputs: Optional[Mapping[str, Any]] = None,
    steps: Optional[int] = None,
    targets: Sequence[str] = ("brian2", "lava-float", "lava-fixed"),
    *,
    seed: int = 0,
    traces: bool = True,
    progress: bool = False,
) -> CrossCheck:
    """Run `network` on the reference and on every target; compare each population's spikes.

    inputs, steps, seed: as for :func:`neurosim.simulate` (Poisson inputs drawn by the reference
    and handed to the targets as spikes). A target that cannot express the network (ExportError)
    or cannot run here (BackendUnavailable) is listed in ``skipped`` with the reason.
    """
    names = run_order(parse_targets(",".join(targets)) if not isinstance(targets, str) else parse_targets(targets))
    t0 = time.perf_counter()
    ref = simulate(network, inputs, steps, seed=seed, traces=_v_traces(network) if traces else None)
    seconds = {"neurosim": time.perf_counter() - t0}
    spiking_net, spike_inputs = as_spike_inputs(network, ref)
    results: dict[str, SimulationResult] = {"neurosim": ref}
    skipped: dict[str, str] = {}
    rows: list[Agreement] = []
    from tqdm.auto import tqdm

    for name in tqdm(names, desc="crosscheck", disable=not progress, unit="target"):
        target = TARGETS[name]
        if target.reference not in results:
            skipped[name] = f"its reference {target.reference!r} did not run"
            continue
        t0 = time.perf_counter()
        try:
            res = target.run(spiking_net, spike_inputs, ref.steps, traces)
        except (ExportError, BackendUnavailable) as exc:
            skipped[name] = str(exc)
            continue
        seconds[name] = time.perf_counter() - t0
        results[name] = res
        rows += compare(results[target.reference], res, name, target.reference,
                        quantised=not target.exact or name == "fixed")
        if target.reference != "neurosim":  # a fixed-point run also measured against the float model
            rows += compare(ref, res, name, "neurosim", quantised=True)
    return CrossCheck(network, ref.steps, results, rows, skipped, seconds)


def as_spike_inputs(network: Network, result: SimulationResult) -> tuple[Network, dict[str, np.ndarray]]:
    """The network with every PoissonInput replaced by a SpikeInput, and the spikes every input
    sent in `result` as bool arrays (steps, batch, size)."""
    sources = tuple(SpikeInput(s.name, s.size) if isinstance(s, PoissonInput) else s for s in network.inputs)
    spikes = {s.name: result.spikes[s.name].dense() for s in network.inputs}
    return network.replace(inputs=sources), spikes


def compare(reference: SimulationResult, target: SimulationResult, target_name: str,
            reference_name: str, quantised: bool = False) -> list[Agreement]:
    """Agreement rows, one per neuron population of `reference`."""
    rows = []
    for pop in reference.meta.get("populations", list(reference.spikes)):
        if pop not in target.spikes:
            raise NeurosimError(f"crosscheck: target {target_name!r} returned no spikes for population {pop!r}")
        r, s = reference.spikes[pop], target.spikes[pop]
        if (r.n_steps, r.n_batch, r.size) != (s.n_steps, s.n_batch, s.size):
            raise NeurosimError(f"crosscheck: target {target_name!r} population {pop!r} has shape "
                                f"{(s.n_steps, s.n_batch, s.size)}, expected {(r.n_steps, r.n_batch, r.size)}")
        a, b = r.dense(), s.dense()
        diff = a != b
        ca, cb = r.counts(), s.counts()
        total = int(ca.sum() + cb.sum())
        count = 1.0 - float(np.abs(ca - cb).sum()) / total if total else 1.0
        both = int(np.count_nonzero(a & b))
        spikes = 2.0 * both / total if total else 1.0
        div = None
        if diff.any():
            t, k, j = (int(x) for x in np.argwhere(diff)[0])
            div = _divergence(reference, target, pop, t, k, j, bool(a[t, k, j]), bool(b[t, k, j]), quantised)
        va, vb = reference.traces.get(pop, {}).get("v"), target.traces.get(pop, {}).get("v")
        dv = float(np.max(np.abs(va - vb))) if va is not None and vb is not None and va.size else None
        rows.append(Agreement(target_name, reference_name, pop, int(ca.sum()), int(cb.sum()), count,
                              1.0 - float(diff.mean()) if diff.size else 1.0, spikes, div, dv))
    return rows


def _divergence(ref: SimulationResult, tgt: SimulationResult, pop: str, t: int, k: int, j: int,
                ref_spike: bool, tgt_spike: bool, quantised: bool) -> Divergence:
    rv = _trace_value(ref, pop, t, k, j)
    tv = _trace_value(tgt, pop, t, k, j)
    prev_r = _trace_value(ref, pop, t - 1, k, j) if t > 0 else 0.0
    prev_t = _trace_value(tgt, pop, t - 1, k, j) if t > 0 else 0.0
    if quantised:
        reason = "fixed-point quantisation of weights, decays and threshold"
    elif prev_r is None or prev_t is None:
        reason = "unknown (no membrane traces)"
    elif abs(prev_r - prev_t) > 1e-9 * (1.0 + abs(prev_r)):
        reason = f"membrane states already differed at step {t - 1} (|dv| = {abs(prev_r - prev_t):.3g})"
    else:
        reason = "same membrane state before this step: the input or the threshold test differs"
    return Divergence(t, k, j, ref_spike, tgt_spike, rv, tv, reason)


def _trace_value(res: SimulationResult, pop: str, t: int, k: int, j: int) -> Optional[float]:
    v = res.traces.get(pop, {}).get("v")
    if v is None or t < 0 or t >= v.shape[0]:
        return None
    return float(v[t, k, j])


def _v_traces(network: Network) -> dict[str, list[str]]:
    return {p.name: ["v"] for p in network.populations}


def _differs(reference: SimulationResult, target: SimulationResult, pop: str) -> bool:
    """Whether population `pop` spiked differently in `target` (same shapes, compare compare()'s way)."""
    return pop in target.spikes and bool(np.any(reference.spikes[pop].dense() != target.spikes[pop].dense()))


def _is_exact(row: Agreement) -> bool:
    t = TARGETS.get(row.target)
    return t is not None and t.exact and row.reference == t.reference


def _reference_of(name: str, check: CrossCheck) -> Optional[str]:
    ref = TARGETS[name].reference if name in TARGETS else "neurosim"
    return ref if ref in check.results else None


def _pct(x: float) -> str:
    return f"{100.0 * x:.3f}%"


def _describe(d: Optional[Divergence]) -> str:
    if d is None:
        return "none"
    vals = ""
    if d.reference_v is not None and d.target_v is not None:
        vals = f", v {d.reference_v:.6g} vs {d.target_v:.6g}"
    return (f"step {d.step}, trial {d.trial}, neuron {d.neuron}: spike {int(d.reference_spike)} vs "
            f"{int(d.target_spike)}{vals} ({d.reason})")

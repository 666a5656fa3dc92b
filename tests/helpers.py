"""Shared builders for tests: random networks that exercise every feature, and the CuPy
backend's parity check against NumPy (also run by bench/gpu_accept.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

import neurosim as ns


def random_network(seed: int, dt: float = 1e-3) -> ns.Network:
    """ALIF, LIF, IF and LI populations, recurrent CSR and dense projections, per-synapse delays,
    refractoriness, both resets, a SpikeInput ('in', 12 channels) and a PoissonInput."""
    r = np.random.default_rng(seed)
    na, nb, nc, no = r.integers(5, 40), r.integers(5, 30), r.integers(3, 15), r.integers(2, 6)
    pops = [
        ns.Population("alif", na, ns.ALIF(beta=r.uniform(0.7, 1.0, na), rho=r.uniform(0.8, 0.99),
                                         adapt=r.uniform(0, 1), alpha=r.uniform(0, 0.6, na),
                                         refractory=r.integers(0, 4, na), adapt_gain=r.uniform(0.05, 1)),
                      v0=r.uniform(0, 1, na)),
        ns.Population("lif", nb, ns.LIF(beta=r.uniform(0.5, 1.0), alpha=r.uniform(0, 0.8), reset="zero",
                                       refractory=int(r.integers(0, 3)), theta=r.uniform(0.5, 1.5, nb),
                                       bias=r.normal(0, 0.05, nb)), i0=r.normal(0, 0.1, nb)),
        ns.Population("if", nc, ns.IF(theta=1.0, gain=r.uniform(0.5, 1.5, nc))),
        ns.Population("out", no, ns.LI(beta=r.uniform(0.8, 1.0), alpha=r.uniform(0, 0.5))),
    ]
    sizes = {"in": 12, "poi": 7, "alif": na, "lif": nb, "if": nc, "out": no}

    def w(pre: str, post: str, density: float, mean: float, sd: float) -> np.ndarray:
        m = r.random((sizes[pre], sizes[post])) < density
        return r.normal(mean, sd, m.shape) * m

    projs = [
        ns.Projection("in_alif", "in", "alif", w("in", "alif", 0.5, 0.6, 0.4),
                      delay=r.integers(1, 5, (12, na))),
        ns.Projection("alif_alif", "alif", "alif", ns.CSR.from_dense(w("alif", "alif", 0.2, 0.0, 0.7)), delay=2),
        ns.Projection("alif_lif", "alif", "lif", w("alif", "lif", 0.4, 0.2, 0.5)),
        ns.Projection("poi_lif", "poi", "lif", w("poi", "lif", 0.6, 0.4, 0.2), delay=3),
        ns.Projection("lif_if", "lif", "if", w("lif", "if", 0.5, 0.3, 0.4)),
        ns.Projection("if_alif", "if", "alif", w("if", "alif", 0.3, -0.2, 0.4), delay=int(r.integers(1, 7))),
        ns.Projection("lif_out", "lif", "out", w("lif", "out", 0.8, 0.0, 1.0)),
    ]
    csr = ns.CSR.from_dense(w("if", "lif", 0.5, 0.1, 0.5))
    projs.append(ns.Projection("if_lif", "if", "lif", csr, delay=r.integers(1, 4, csr.nnz)))
    return ns.Network(dt=dt, populations=pops, projections=projs,
                      inputs=[ns.SpikeInput("in", 12), ns.PoissonInput("poi", 7, rate=r.uniform(20, 200, 7))])


def random_inputs(seed: int, steps: int, batch: int, p: float = 0.1) -> dict[str, np.ndarray]:
    return {"in": np.random.default_rng(seed + 1000).random((steps, batch, 12)) < p}


def assert_bitwise(ref: ns.SimulationResult, got: ns.SimulationResult, what: str) -> None:
    """Identical spike events (step, batch, index) of every node and bitwise-equal traces."""
    for name, sp in ref.spikes.items():
        for f in ("step", "batch", "index"):
            np.testing.assert_array_equal(getattr(got.spikes[name], f), getattr(sp, f), err_msg=f"{what} {name}.{f}")
    for pop, vs in ref.traces.items():
        for var, arr in vs.items():
            np.testing.assert_array_equal(got.traces[pop][var], arr, err_msg=f"{what} {pop}.{var}")


# ------------------------------------------- CuPy backend against NumPy (tests and bench/gpu_accept.py)

TOL = {"float64": 1e-12, "float32": 1e-4}  # relative trace error allowed where the summation order differs
TIES_FLOAT32 = 3  # trials (of the 39 in 20 parity cases) that may part at a float32 threshold tie
PARITY_STEPS = 120


def parity_case(seed: int, steps: int = PARITY_STEPS) -> tuple[ns.Network, dict[str, np.ndarray], dict[str, list[str]]]:
    """(network, inputs (batch 1 + seed % 3), traces v/i/a/threshold of every population) of case `seed`."""
    net = random_network(seed)
    return net, random_inputs(seed, steps, 1 + seed % 3), {p.name: ["v", "i", "a", "threshold"] for p in net.populations}


def reference(seed: int, dtype: str, steps: int = PARITY_STEPS,
              inputs: Optional[dict[str, np.ndarray]] = None) -> ns.SimulationResult:
    """The NumPy backend's run of parity case `seed` (`inputs`, if given, replace the case's own)."""
    net, inp, tr = parity_case(seed, steps)
    return ns.simulate(net, inp if inputs is None else inputs, steps, seed=seed, dtype=dtype, traces=tr)


def cupy_pair(seed: int, dtype: str, options: dict[str, Any], steps: int = PARITY_STEPS, chunk: int = 50,
              ref: Optional[ns.SimulationResult] = None) -> tuple[ns.Network, ns.SimulationResult, ns.SimulationResult]:
    """(network, NumPy's result (`ref` if given), backend 'cupy''s result with `options`) of case `seed`."""
    net, inp, tr = parity_case(seed, steps)
    ref = reference(seed, dtype, steps) if ref is None else ref
    got = ns.simulate(net, inp, steps, seed=seed, dtype=dtype, traces=tr, backend="cupy", chunk=chunk,
                      backend_options=options)
    return net, ref, got


def parted_at_ties(net: ns.Network, ref: ns.SimulationResult, got: ns.SimulationResult, tol: float, what: str) -> int:
    """Per trial: spikes equal and traces within `tol` (relative to max(1, |value|)) up to the
    first step where any spike differs; at that step every differing neuron must sit on its
    threshold within `tol` on the side that did not spike (a tie the summation order decided).
    Returns the number of trials that parted at a tie; AssertionError (naming `what`) otherwise."""
    pops = [p.name for p in net.populations]
    parted = 0
    for b in range(ref.batch):
        r = np.concatenate([ref.spikes[p].dense()[:, b] for p in pops], axis=1)
        g = np.concatenate([got.spikes[p].dense()[:, b] for p in pops], axis=1)
        rows = np.nonzero((r != g).any(axis=1))[0]
        stop = int(rows[0]) if rows.size else ref.steps
        for p in pops:
            for var, arr in ref.traces[p].items():
                want, have = arr[:stop, b], got.traces[p][var][:stop, b]
                err = np.abs(have - want) / np.maximum(1.0, np.abs(want))
                if not np.all(err <= tol):
                    raise AssertionError(f"{what} trial {b} {p}.{var}: error {err.max():.3g} > {tol}")
        if rows.size:
            def at(res: ns.SimulationResult, var: str) -> np.ndarray:
                return np.concatenate([res.traces[p][var][stop, b] for p in pops])

            j = np.nonzero(r[stop] != g[stop])[0]
            v = np.where(r[stop, j], at(got, "v")[j], at(ref, "v")[j])  # the side that did not spike
            thr = np.where(r[stop, j], at(got, "threshold")[j], at(ref, "threshold")[j])
            gap = np.abs(v - thr) / np.maximum(1.0, np.abs(thr))
            if not np.all(gap <= tol):
                raise AssertionError(f"{what} trial {b} step {stop}: spikes differ {gap.max():.3g} from threshold")
            parted += 1
    return parted


@dataclass
class Parity:
    """What :func:`mode_parity` found: counts over the cases and one message per failed case."""

    mode: str
    dtype: str
    options: dict[str, Any]
    networks: int = 0
    trials: int = 0
    spikes: int = 0
    parted: int = 0
    graph_replays: int = 0
    devices: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    @property
    def ties_allowed(self) -> int:
        """Trials that may part at a tie: none in 'gather' mode or in float64, TIES_FLOAT32 else."""
        return 0 if self.mode == "gather" or self.dtype == "float64" else TIES_FLOAT32

    def problems(self, min_spikes: int) -> list[str]:
        """Why this is not the backend's parity contract ([] when it is); fewer than `min_spikes`
        spikes in all would make the comparison vacuous."""
        out = list(self.errors)
        if self.parted > self.ties_allowed:
            out.append(f"{self.parted} trials parted at ties (allowed {self.ties_allowed})")
        if self.spikes < min_spikes:
            out.append(f"only {self.spikes} spikes (the comparison needs at least {min_spikes})")
        return out


def mode_parity(mode: str, dtype: str, options: dict[str, Any], seeds: Sequence[int] = range(20),
                steps: int = PARITY_STEPS, chunk: int = 50,
                refs: Optional[dict[int, ns.SimulationResult]] = None) -> Parity:
    """Backend 'cupy' with propagation `mode` (plus `options`) against NumPy (`refs[seed]` where
    given) on parity cases `seeds`: 'gather' bitwise (assert_bitwise), 'event' and 'matmul' up to
    counted ties (parted_at_ties). The runs must report the mode, and replay CUDA graphs when
    graph_steps > 0 (not 'matmul', which launches directly). A failed case adds one message."""
    res = Parity(mode, dtype, dict(options))
    graphs = options.get("graph_steps", 64) > 0 and mode != "matmul"
    for seed in seeds:
        net, ref, got = cupy_pair(seed, dtype, {"propagation": mode, **options}, steps, chunk,
                                  None if refs is None else refs.get(seed))
        stats = got.meta["backend_stats"]
        res.networks, res.trials = res.networks + 1, res.trials + ref.batch
        res.spikes += sum(len(s) for s in ref.spikes.values())
        res.graph_replays += stats["graph_replays"]
        res.devices.add(str(stats["device"]))
        try:
            if got.backend != "cupy" or stats["propagation"] != mode:
                raise AssertionError(f"ran on {got.backend} in mode {stats['propagation']}, not cupy in {mode}")
            if graphs and (stats["graph_replays"] == 0 or "graph_error" in stats):
                raise AssertionError(f"no CUDA graph replayed ({stats.get('graph_error', 'no replay')})")
            if mode == "gather":
                assert_bitwise(ref, got, f"seed {seed}")
            else:
                res.parted += parted_at_ties(net, ref, got, TOL[dtype], f"seed {seed}")
        except AssertionError as exc:
            text = " / ".join([s.strip() for s in str(exc).splitlines() if s.strip()][:3])[:300]
            res.errors.append(text if text.startswith(f"seed {seed}") else f"seed {seed}: {text}")
    return res

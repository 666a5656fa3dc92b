"""Brian2 export against neurosim's NumPy simulator (float64): exact spikes, traces to 1e-12.

Most tests materialise Poisson inputs (neurosim draws them, and the same spikes are given to
both simulators through a SpikeInput of the same name); the 'exact' Poisson export (neurosim's
draw inside the Brian2 model) and the 'statistical' one (Brian2's PoissonGroup) have their own.
"""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import random_inputs, random_network

import neurosim as ns
from neurosim.errors import ExportError, NetworkError
from neurosim.models import NeuronParams

b2 = pytest.importorskip("brian2")
from mapping import brian2_model as be  # noqa: E402
from mapping import run_brian2, to_brian2, write_brian2_script  # noqa: E402

ALL_TRACES = ("v", "i", "a", "threshold")


def given_spikes(network: ns.Network, inputs: dict, steps: int, batch: int) -> tuple[ns.Network, dict]:
    """The network with each PoissonInput replaced by a SpikeInput carrying neurosim's draws."""
    drawn = ns.simulate(network, inputs, steps, batch=batch)
    srcs, given = [], dict(inputs)
    for s in network.inputs:
        if isinstance(s, ns.PoissonInput):
            srcs.append(ns.SpikeInput(s.name, s.size))
            given[s.name] = drawn.spikes[s.name].dense()
        else:
            srcs.append(s)
    return network.replace(inputs=srcs), given


def assert_same(ref: ns.SimulationResult, res: ns.SimulationResult, atol: float = 1e-12) -> int:
    """Exact spikes for every population and input, traces within atol; returns spikes compared."""
    assert set(res.spikes) == set(ref.spikes)
    assert (res.steps, res.batch) == (ref.steps, ref.batch)
    compared = 0
    for name, s in ref.spikes.items():
        got = res.spikes[name]
        assert (got.size, got.n_steps, got.n_batch) == (s.size, s.n_steps, s.n_batch), name
        if not np.array_equal(got.dense(), s.dense()):
            diff = np.argwhere(got.dense() != s.dense())[0]
            raise AssertionError(f"{name}: spikes differ, first at (step, trial, neuron) = {diff.tolist()}; "
                                 f"neurosim {len(s)} spikes, brian2 {len(got)}")
        for a, b in ((got.step, s.step), (got.batch, s.batch), (got.index, s.index)):
            np.testing.assert_array_equal(a, b)  # same sparse order, not only the same set
        compared += len(s)
    assert set(res.traces) == set(ref.traces)
    for pop, tr in ref.traces.items():
        assert set(res.traces[pop]) == set(tr)
        for var, want in tr.items():
            assert res.traces[pop][var].shape == want.shape
            np.testing.assert_allclose(res.traces[pop][var], want, rtol=0, atol=atol, err_msg=f"{pop}:{var}")
    return compared


def check(network: ns.Network, inputs: dict, steps: int, target: str = "numpy", **kw) -> int:
    traces = {p.name: list(ALL_TRACES) for p in network.populations}
    ref = ns.simulate(network, inputs, steps, traces=traces, batch=kw.get("batch"))
    res = run_brian2(network, inputs, steps, target=target, traces=traces, **kw)
    assert res.backend == f"brian2-{target}" and res.dtype == "float64"
    compared = assert_same(ref, res)
    print(f"brian2-{target}: {compared} spikes compared, all equal")
    return compared


# ------------------------------------------------------------------ random networks, every feature


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_network_numpy_target_exact(seed: int) -> None:
    """ALIF/LIF/IF/LI, dense and CSR, scalar and per-synapse delays 1..6, refractory, both resets,
    per-neuron parameters, bias, gain, adapt_gain, batch 2: spikes equal, traces to 1e-12."""
    steps, batch = 150, 2
    net, inputs = given_spikes(random_network(seed), random_inputs(seed, steps, batch), steps, batch)
    compared = check(net, inputs, steps)
    ref = ns.simulate(net, inputs, steps)
    for pop in ("alif", "lif", "if"):
        assert len(ref.spikes[pop]) > 0, f"{pop} is silent: the comparison would prove nothing"
    assert compared > 500


@pytest.mark.parametrize("model", [
    ns.LIF(beta=0.9, alpha=0.5, theta=[0.8, 1.0, 1.2, 0.9, 1.1], bias=0.05, gain=1.3, refractory=2),
    ns.LIF(beta=0.7, theta=1.0, refractory=[0, 1, 3, 0, 2], reset="zero"),
    ns.ALIF(beta=0.95, rho=[0.8, 0.9, 0.95, 0.99, 0.9], adapt=0.7, alpha=0.2, adapt_gain=0.3,
            gain=0.8, bias=-0.02, refractory=1),
    ns.ALIF(beta=0.9, rho=0.9, adapt=1.5, reset="zero", refractory=[3, 0, 0, 1, 2]),
    ns.IF(theta=[1.0, 2.0, 0.5, 1.5, 1.0], bias=0.1, gain=[1, 0.5, 2, 1, 1], refractory=1),
    ns.IF(reset="zero"),
    ns.LI(beta=[0.9, 0.8, 0.95, 0.5, 1.0], alpha=0.6, bias=0.01, gain=2.0),
], ids=["lif-subtract", "lif-zero", "alif-subtract", "alif-zero", "if-subtract", "if-zero", "li"])
def test_each_model_exact(model) -> None:
    """One population per model (fed by an input and by a recurrent LIF), every trace."""
    r = np.random.default_rng(7)
    pops = [ns.Population("p", 5, model, v0=r.uniform(0, 0.5, 5), i0=r.normal(0, 0.1, 5), a0=r.uniform(0, 0.2, 5)),
            ns.Population("drive", 6, ns.LIF(beta=0.8))]
    projs = [ns.Projection("in_p", "in", "p", r.normal(0.5, 0.4, (4, 5)), delay=r.integers(1, 4, (4, 5))),
             ns.Projection("in_d", "in", "drive", r.uniform(0.3, 1.2, (4, 6))),
             ns.Projection("d_p", "drive", "p", ns.CSR.from_dense(r.normal(0.1, 0.5, (6, 5))), delay=3)]
    net = ns.Network(dt=1e-3, populations=pops, projections=projs, inputs=[ns.SpikeInput("in", 4)])
    inputs = {"in": r.random((120, 2, 4)) < 0.3}
    check(net, inputs, 120)
    if not isinstance(model, ns.LI):
        assert len(ns.simulate(net, inputs, 120).spikes["p"]) > 10


# ------------------------------------------------------------------ delays: closed form


@pytest.mark.parametrize("delay", [1, 2, 3, 4, 5])
def test_scalar_delay_acts_at_t_plus_d(delay: int) -> None:
    """An input spike at step 4 with weight 1.5 makes an IF neuron (theta 1) spike at 4 + delay."""
    net = ns.Network(dt=1e-3, populations=[ns.Population("p", 1, ns.IF(reset="zero"))],
                     projections=[ns.Projection("w", "in", "p", [[1.5]], delay=delay)],
                     inputs=[ns.SpikeInput("in", 1)])
    spikes = np.zeros((12, 1), bool)
    spikes[4] = True
    res = run_brian2(net, {"in": spikes}, 12)
    np.testing.assert_array_equal(res.spikes["p"].step, [4 + delay])
    np.testing.assert_array_equal(res.spikes["in"].step, [4])
    assert_same(ns.simulate(net, {"in": spikes}, 12), res)


def test_per_synapse_delays_act_at_t_plus_d() -> None:
    """Delays 1..5 in one projection (dense and CSR): neuron k spikes at 2 + delay[k]."""
    delays = np.array([3, 1, 5, 2, 4])
    for weights, d in (([[1.5] * 5], delays[None, :]), (ns.CSR.from_dense(np.full((1, 5), 1.5)), delays)):
        net = ns.Network(dt=1e-3, populations=[ns.Population("p", 5, ns.IF(reset="zero"))],
                         projections=[ns.Projection("w", "in", "p", weights, delay=d)],
                         inputs=[ns.SpikeInput("in", 1)])
        spikes = np.zeros((10, 1), bool)
        spikes[2] = True
        res = run_brian2(net, {"in": spikes}, 10)
        order = np.argsort(res.spikes["p"].index)
        np.testing.assert_array_equal(res.spikes["p"].index[order], np.arange(5))
        np.testing.assert_array_equal(res.spikes["p"].step[order], 2 + delays)


def test_refractory_holds_v_and_blocks_spikes() -> None:
    """Constant drive 0.6 (bias), theta 1, refractory 3, zero reset: spikes every 2 + 3 steps."""
    net = ns.Network(dt=1e-3, populations=[ns.Population("p", 1, ns.IF(bias=0.6, refractory=3, reset="zero"))])
    res = run_brian2(net, {}, 20, traces={"p": ["v"]})
    np.testing.assert_array_equal(res.spikes["p"].step, [1, 6, 11, 16])
    assert_same(ns.simulate(net, {}, 20, traces={"p": ["v"]}), res)


# ------------------------------------------------------------------ batch


def test_batch_trials_are_independent_replicas() -> None:
    """Trial b of a batch-2 run equals a batch-1 run of trial b's inputs; the batch axis comes back."""
    steps = 80
    net, inputs = given_spikes(random_network(5), random_inputs(5, steps, 2, p=0.2), steps, 2)
    both = run_brian2(net, inputs, steps, traces={"alif": ["v"]})
    assert both.batch == 2 and both.traces["alif"]["v"].shape == (steps, 2, net.population("alif").size)
    dense = both.spikes["alif"].dense()
    assert not np.array_equal(dense[:, 0], dense[:, 1])
    for b in range(2):
        one = run_brian2(net, {k: v[:, b] for k, v in inputs.items()}, steps, traces={"alif": ["v"]})
        for name in one.spikes:
            np.testing.assert_array_equal(one.spikes[name].dense()[:, 0], both.spikes[name].dense()[:, b])
        np.testing.assert_array_equal(one.traces["alif"]["v"][:, 0], both.traces["alif"]["v"][:, b])


def test_batch_one_input_broadcasts() -> None:
    net, inputs = given_spikes(random_network(6), random_inputs(6, 60, 1), 60, 1)
    inputs = {k: v[:, 0] for k, v in inputs.items()}
    check(net, inputs, 60, batch=3)


# ------------------------------------------------------------------ the Brian2 objects themselves


def test_to_brian2_builds_a_runnable_network() -> None:
    steps = 60
    net, inputs = given_spikes(random_network(8), random_inputs(8, steps, 2), steps, 2)
    bnet, h = to_brian2(net, inputs, steps, traces={"lif": ["v"]})
    assert isinstance(bnet, b2.Network)
    assert set(h.groups) == {p.name for p in net.populations} and set(h.inputs) == {"in", "poi"}
    assert set(h.synapses) == {p.name for p in net.projections}
    lif = h.groups["lif"]
    assert len(lif) == 2 * net.population("lif").size
    np.testing.assert_array_equal(np.asarray(lif.theta[:]), np.tile(net.population("lif").params.theta, 2))
    syn = h.synapses["in_alif"]  # per-synapse delays, Brian2 one step shorter
    _, delays = net.projections[0].to_csr()
    np.testing.assert_allclose(np.asarray(syn.delay[:]) / net.dt, np.tile(delays - 1, 2), atol=1e-9)
    bnet.run(h.duration)
    ref = ns.simulate(net, inputs, steps, traces={"lif": ["v"]})
    mon = h.spike_monitors["lif"]
    n = net.population("lif").size
    got = np.zeros((steps, 2, n), bool)
    got[np.rint(np.asarray(mon.t_) / net.dt).astype(int), np.asarray(mon.i) // n, np.asarray(mon.i) % n] = True
    np.testing.assert_array_equal(got, ref.spikes["lif"].dense())
    v = np.asarray(h.state_monitors["lif"].v).T.reshape(steps, 2, n)
    np.testing.assert_allclose(v, ref.traces["lif"]["v"], rtol=0, atol=1e-12)


def test_equations_declare_every_lowered_parameter(monkeypatch) -> None:
    """The translation reads exactly NeuronParams' fields, with the lowered values (a new field fails loudly)."""
    net = random_network(0).replace(inputs=[ns.SpikeInput("in", 12), ns.SpikeInput("poi", 7)])
    spec, arrays = be.describe(net)
    for field in NeuronParams._fields:
        name = "refractory_steps" if field == "refractory" else field
        assert f"\n{name} : 1 (constant)" in "\n" + spec["equations"]
        np.testing.assert_array_equal(arrays[f"pop.alif.{name}"], getattr(net.population("alif").params, field))
    monkeypatch.setattr(be, "_PARAMS", be._PARAMS[:-1])
    with pytest.raises(ExportError, match="NeuronParams"):
        be.describe(net)


def test_repeated_calls_restore_brian2_state() -> None:
    """Two runs in one process give identical results; prefs and device are as before."""
    net, inputs = given_spikes(random_network(4), random_inputs(4, 40, 1), 40, 1)
    before = {k: b2.prefs[k] for k in ("codegen.target", "codegen.loop_invariant_optimisations",
                                       "codegen.cpp.extra_compile_args_gcc")}
    device = b2.get_device()
    first = run_brian2(net, inputs, 40)
    second = run_brian2(net, inputs, 40)
    assert_same(first, second)
    assert {k: b2.prefs[k] for k in before} == before
    assert b2.get_device() is device


# ------------------------------------------------------------------ compiled targets


def tiny_network() -> tuple[ns.Network, dict]:
    r = np.random.default_rng(0)
    net = ns.Network(dt=1e-3, populations=[ns.Population("h", 6, ns.ALIF(
        beta=r.uniform(0.8, 1, 6), rho=0.9, adapt=0.5, alpha=0.3, refractory=[0, 1, 2, 0, 1, 2], reset="zero"))],
        projections=[ns.Projection("in_h", "in", "h", r.normal(0.8, 0.5, (4, 6)), delay=r.integers(1, 4, (4, 6))),
                     ns.Projection("h_h", "h", "h", r.normal(0, 0.5, (6, 6)), delay=2)],
        inputs=[ns.SpikeInput("in", 4)])
    return net, {"in": r.random((100, 2, 4)) < 0.2}


def test_cython_target_exact_small() -> None:
    """Compiled without -ffast-math: exact. About 3 s with a warm Brian2 cache (~/.cython);
    the first run on a machine compiles ~15 modules (30-80 s on 2 busy cores)."""
    net, inputs = tiny_network()
    t0 = time.perf_counter()
    assert check(net, inputs, 100, target="cython") > 100
    print(f"cython tiny network: {time.perf_counter() - t0:.1f} s")


@pytest.mark.slow
def test_cython_target_exact_random_network() -> None:
    steps = 100
    net, inputs = given_spikes(random_network(1), random_inputs(1, steps, 2), steps, 2)
    assert check(net, inputs, steps, target="cython") > 500


@pytest.mark.slow
def test_cpp_standalone_twice_in_one_process(tmp_path) -> None:
    """Two different networks built in one process (device reinitialised in between), both exact."""
    net, inputs = tiny_network()
    assert check(net, inputs, 100, target="cpp_standalone", directory=str(tmp_path / "a")) > 100
    steps = 60
    net2, inputs2 = given_spikes(random_network(2), random_inputs(2, steps, 2), steps, 2)
    assert check(net2, inputs2, steps, target="cpp_standalone", directory=str(tmp_path / "b")) > 100
    assert type(b2.get_device()).__name__ == "RuntimeDevice"


# ------------------------------------------------------------------ standalone script


def test_script_in_subprocess_gives_neurosim_spikes(tmp_path) -> None:
    steps = 70
    net, inputs = given_spikes(random_network(9), random_inputs(9, steps, 2), steps, 2)
    script, npz = write_brian2_script(net, tmp_path / "model.py")
    assert npz == tmp_path / "model.npz" and npz.exists()
    text = script.read_text()
    assert "import neurosim" not in text and "from neurosim" not in text and "from mapping" not in text
    np.savez(tmp_path / "spikes.npz", **inputs)
    proc = subprocess.run([sys.executable, str(script), "--inputs", "spikes.npz", "--steps", str(steps),
                           "--output", "out.npz"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    ref = ns.simulate(net, inputs, steps)
    for name, s in ref.spikes.items():
        np.testing.assert_array_equal(out[f"{name}.step"], s.step, err_msg=name)
        np.testing.assert_array_equal(out[f"{name}.batch"], s.batch, err_msg=name)
        np.testing.assert_array_equal(out[f"{name}.index"], s.index, err_msg=name)
        assert f"{name:<16} {len(s):>8} spikes" in proc.stdout
    bad = subprocess.run([sys.executable, str(script), "--steps", "5"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode != 0 and "--inputs is required" in bad.stderr


# ------------------------------------------------------------------ errors


def test_poisson_input_exact_mode_gives_neurosims_spikes() -> None:
    """Exported 'exact' (the default), a PoissonInput is neurosim's own draw for the seed: spikes
    of the input and of every population equal neurosim's, for two seeds and a batch of 2."""
    steps = 60
    net, inputs = random_network(0), random_inputs(0, steps, 2)
    assert any(isinstance(s, ns.PoissonInput) for s in net.inputs)
    for seed in (0, 7):
        ref = ns.simulate(net, inputs, steps, batch=2, seed=seed)
        res = run_brian2(net, inputs, steps, batch=2, seed=seed)
        assert res.seed == seed and res.meta["poisson"] == "exact"
        assert len(ref.spikes["poi"]) > 0 and assert_same(ref, res) > 0
    p = be.draw_poisson(np.full(3, 0.25), 5, 1, 40, 2)  # neurosim's draw, the script's copy of it
    only = ns.Network(dt=1e-3, populations=[ns.Population("h", 1, ns.LIF(beta=0.5))],
                      inputs=[ns.SpikeInput("s", 1), ns.PoissonInput("q", 3, 250.0)])
    np.testing.assert_array_equal(ns.simulate(only, {"s": np.zeros((40, 1))}, 40, batch=2, seed=5).spikes["q"].dense(),
                                  p)


def test_poisson_input_statistical_mode_is_a_poisson_group_at_the_same_rates() -> None:
    """'statistical': Brian2's PoissonGroup with neurosim's rate per channel; its spike count over
    40 channels x 500 steps (p = 0.05 and 0.2) is within 5 binomial standard deviations."""
    rates = np.repeat([50.0, 200.0], 20)
    net = ns.Network(dt=1e-3, populations=[ns.Population("h", 2, ns.LIF(beta=0.9))],
                     projections=[ns.Projection("q_h", "q", "h", np.full((40, 2), 0.01))],
                     inputs=[ns.PoissonInput("q", 40, rates)])
    b2.seed(3)
    brian_net, h = to_brian2(net, None, 500, poisson="statistical")
    assert type(h.inputs["q"]).__name__ == "PoissonGroup"
    np.testing.assert_array_equal(np.asarray(h.inputs["q"].rates_[:]), rates)
    brian_net.run(h.duration)
    counts = np.bincount(np.asarray(h.spike_monitors["q"].i[:]), minlength=40)
    for half, p in ((counts[:20], 0.05), (counts[20:], 0.2)):
        n = 20 * 500
        assert abs(half.sum() - n * p) < 5 * np.sqrt(n * p * (1 - p))
    with pytest.raises(ExportError) as err:
        run_brian2(net, None, 5, poisson="drawn")
    assert err.value.field == "poisson" and "exact" in str(err.value)


def test_script_with_a_poisson_input_exact_and_statistical(tmp_path) -> None:
    steps = 50
    net, inputs = random_network(0), random_inputs(0, steps, 2)
    script, _ = write_brian2_script(net, tmp_path / "model.py")
    assert "exported EXACTLY" in script.read_text()
    np.savez(tmp_path / "spikes.npz", **inputs)
    proc = subprocess.run([sys.executable, str(script), "--inputs", "spikes.npz", "--steps", str(steps), "--seed", "4",
                           "--output", "out.npz"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    ref = ns.simulate(net, inputs, steps, seed=4)
    for name, s in ref.spikes.items():
        np.testing.assert_array_equal(out[f"{name}.step"], s.step, err_msg=name)
        np.testing.assert_array_equal(out[f"{name}.index"], s.index, err_msg=name)
    stat, _ = write_brian2_script(net, tmp_path / "stat.py", poisson="statistical")
    text = stat.read_text()
    assert "exported STATISTICALLY" in text and "statistically equal" in text


def test_bad_arguments_name_the_field(tmp_path) -> None:
    net, inputs = tiny_network()
    with pytest.raises(ExportError, match="target.*'numpy', 'cython', 'cpp_standalone'"):
        run_brian2(net, inputs, 10, target="cuda")
    with pytest.raises(ExportError, match="directory"):
        run_brian2(net, inputs, 10, directory=str(tmp_path))
    with pytest.raises(ExportError, match="set_device"):
        to_brian2(net, inputs, 10, target="cpp_standalone")
    with pytest.raises(ExportError, match=r"path.*\.py"):
        write_brian2_script(net, tmp_path / "model.txt")
    with pytest.raises(NetworkError, match="inputs.in"):
        run_brian2(net, {}, 10)
    with pytest.raises(NetworkError, match="traces"):
        run_brian2(net, inputs, 10, traces={"h": ["w"]})
    with pytest.raises(ExportError, match="network"):
        run_brian2("not a network", inputs, 10)  # type: ignore[arg-type]


def test_empty_projection_and_no_inputs() -> None:
    """A projection without synapses is skipped; a network without inputs runs from its bias."""
    net = ns.Network(dt=1e-3, populations=[ns.Population("a", 3, ns.LIF(beta=0.9, bias=[0.2, 0.3, 0.05])),
                                           ns.Population("b", 2, ns.LIF())],
                     projections=[ns.Projection("ab", "a", "b", np.zeros((3, 2)))])
    check(net, {}, 50)

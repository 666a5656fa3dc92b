"""CuPy backend: availability, the kernel source, host-side layout, and parity with NumPy.

Three layers, so that most of it runs on machines without a GPU:
- everywhere: the registry's reason, the clear error, 'auto', the host helpers, the kernel
  source compiled by nvcc for sm_90 (no FMA, no spills) where nvcc is installed;
- with g++: the whole backend (runner, chunking, graphs, overflow reruns) with the kernels
  run by tests/cuda_emulator.py instead of a GPU, against the NumPy reference;
- on a GPU (marker gpu): the same parity on the device, and proof that it ran there.

Parity contract (see cupy_backend's docstring): 'gather' is bitwise equal to NumPy; 'event'
(the default) and 'matmul' add simultaneous inputs in another order, so traces agree to
1e-12 (float64) or 1e-4 (float32) relative, and spikes agree until a neuron sits on its
threshold within that error (a tie), after which its trial is no longer compared. Ties are
counted and bounded: none in float64, at most helpers.TIES_FLOAT32 trials in float32. The check
itself (helpers.mode_parity) is shared with bench/gpu_accept.py.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import TOL, assert_bitwise, cupy_pair, mode_parity, parted_at_ties, random_inputs, random_network

import cuda_emulator
import neurosim as ns
from neurosim import backends
from neurosim.backends import cupy_backend
from neurosim.models import NeuronParams, NeuronState
from neurosim.plan import lower

GPU_REASON = backends.available()["cupy"]
needs_gpu = pytest.mark.skipif(bool(GPU_REASON), reason=f"no usable CUDA device through CuPy: {GPU_REASON}")
DTYPES = ["float64", "float32"]


def _check_modes(mode: str, dtype: str) -> None:
    """20 random networks in `mode`: bitwise ('gather') or up to counted ties (helpers.mode_parity)."""
    found = mode_parity(mode, dtype, {"graph_steps": 8})
    assert found.networks == 20 and found.trials == 39 and len(found.devices) == 1
    assert (found.graph_replays > 0) == (mode != "matmul")  # matmul launches directly
    problems = found.problems(min_spikes=10000)
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ without a GPU: availability


def test_registry_reports_cupy_unavailable_with_a_reason():
    if not GPU_REASON:
        pytest.skip("a CUDA device is usable here")
    assert GPU_REASON.startswith("backend 'cupy'")
    assert "Traceback" not in GPU_REASON


def test_simulate_with_cupy_raises_backend_unavailable_with_that_reason():
    if not GPU_REASON:
        pytest.skip("a CUDA device is usable here")
    with pytest.raises(ns.BackendUnavailable) as exc:
        ns.simulate(random_network(0), random_inputs(0, 10, 1), 10, backend="cupy")
    assert str(exc.value) == GPU_REASON


def test_auto_does_not_pick_cupy_without_a_device():
    if not GPU_REASON:
        pytest.skip("a CUDA device is usable here: auto picks cupy")
    assert backends.resolve("auto") != "cupy"
    assert ns.simulate(random_network(0), random_inputs(0, 10, 1), 10, backend="auto").backend != "cupy"


def test_backends_without_options_refuse_them():
    with pytest.raises(ns.NetworkError, match=r"backend_options.propagation: backend 'numpy' has no option"):
        ns.simulate(random_network(0), random_inputs(0, 10, 1), 10, backend_options={"propagation": "gather"})


# ---------------------------------------------------------------------- the kernel source


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_source_compiles_for_sm90_without_fma_or_spills(dtype, tmp_path):
    nvcc = shutil.which("nvcc")
    if not nvcc:
        pytest.skip("nvcc is not installed")
    src = tmp_path / "k.cu"
    src.write_text(cupy_backend.kernel_source(dtype))
    opts = list(cupy_backend.NVRTC_OPTIONS)
    subprocess.run([nvcc, "-arch=sm_90", *opts, "-ptx", str(src), "-o", str(tmp_path / "k.ptx")],
                   check=True, capture_output=True, text=True)
    ptx = (tmp_path / "k.ptx").read_text()
    for name in cupy_backend.KERNELS:
        assert re.search(rf"\.entry {name}\(", ptx), f"kernel {name} missing from the PTX"
    assert "fma." not in ptx, "a multiply-add was contracted: the reference rounds products and sums apart"
    usage = subprocess.run([nvcc, "-arch=sm_90", *opts, "-cubin", "--resource-usage", str(src), "-o",
                            str(tmp_path / "k.cubin")], check=True, capture_output=True, text=True)
    report = usage.stdout + usage.stderr
    assert report.count("0 bytes spill stores") == len(cupy_backend.KERNELS), report


def test_kernel_field_order_is_that_of_the_models():
    src = cupy_backend.kernel_source("float64")
    enums = re.findall(r"enum \{([^}]*)\}", src)
    params = [x.strip()[2:].lower() for x in enums[0].split(",")]
    state = [x.strip()[2:].lower() for x in enums[1].split(",")]
    assert params == [*NeuronParams._fields, "params"]
    assert state == [*NeuronState._fields, "state"]


def test_kernel_source_refuses_other_dtypes():
    with pytest.raises(ns.NetworkError, match="float32 or float64"):
        cupy_backend.kernel_source("float16")


# -------------------------------------------------------------------------- host helpers


def test_initial_state_matches_the_reference_runner():
    from neurosim.backends.numpy_backend import Runner

    plan = lower(random_network(3), "float64")
    s = cupy_backend.initial_state(plan, 2)
    ref = Runner(plan, 2, np.zeros(0, np.int64), ()).state
    for k, name in enumerate(NeuronState._fields):
        np.testing.assert_array_equal(s[k], getattr(ref, name), err_msg=name)


def test_decode_events_gives_the_reference_events_back():
    from neurosim.backends.numpy_backend import Runner

    plan = lower(random_network(4), "float64")
    batch, steps, t0 = 3, 60, 100
    src = np.random.default_rng(0).random((steps, batch, plan.n_sources)) < 0.2
    t, b, j, _ = Runner(plan, batch, np.zeros(0, np.int64), ()).run(t0, src)
    assert len(t) > 100
    codes = ((t - t0) * batch + b) * plan.n_neurons + j
    got = cupy_backend.decode_events(np.sort(np.random.default_rng(1).permutation(codes)), t0, batch, plan.n_neurons)
    for want, have in zip((t, b, j), got):
        np.testing.assert_array_equal(have, want)
        assert have.dtype == want.dtype


def test_incoming_synapses_are_in_the_reference_summation_order():
    plan = lower(random_network(5), "float64")
    in_ptr, pre, w, d = cupy_backend.incoming(plan)
    all_pre = cupy_backend.presynaptic(plan)
    assert in_ptr[-1] == len(plan.indices)
    for post in range(plan.n_neurons):
        lo, hi = in_ptr[post], in_ptr[post + 1]
        key = list(zip(-d[lo:hi], pre[lo:hi]))
        assert key == sorted(key), f"target {post}: not (delay descending, presynaptic) order"
        mine = sorted(zip(pre[lo:hi], d[lo:hi], w[lo:hi]))
        sel = plan.indices == post
        theirs = sorted(zip(all_pre[sel], plan.delays[sel], plan.weights[sel]))
        assert mine == theirs


def test_dense_by_delay_holds_every_synapse_once():
    plan = lower(random_network(6), "float64")
    mats = cupy_backend.dense_by_delay(plan)
    assert [d for d, _ in mats] == sorted({int(x) for x in plan.delays}, reverse=True)
    pre = cupy_backend.presynaptic(plan)
    for d, w in mats:
        want = np.zeros_like(w)
        sel = plan.delays == d
        np.add.at(want, (pre[sel], plan.indices[sel]), plan.weights[sel])
        np.testing.assert_array_equal(w, want)


def test_uniform_delay():
    assert cupy_backend.uniform_delay(np.broadcast_to(np.int32(3), (10**9,))) == 3
    assert cupy_backend.uniform_delay(np.full(5, 2, np.int32)) == 2
    assert cupy_backend.uniform_delay(np.array([1, 2], np.int32)) == 0
    assert cupy_backend.uniform_delay(np.zeros(0, np.int32)) == 0


# ----------------------------------------------- the whole backend, kernels on the host emulator


@pytest.fixture
def emulated():
    """backend='cupy' runs here, its kernels executed by tests/cuda_emulator.py (cuda_emulator.installed)."""
    if cuda_emulator.available():
        pytest.skip(cuda_emulator.available())
    with cuda_emulator.installed() as made:
        yield made


@pytest.mark.parametrize("dtype", DTYPES)
def test_emulated_gather_is_bitwise_equal_to_numpy_on_20_networks(emulated, dtype):
    _check_modes("gather", dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["event", "matmul"])
def test_emulated_event_and_matmul_equal_numpy_up_to_counted_ties(emulated, mode, dtype):
    _check_modes(mode, dtype)


def test_emulated_graphs_and_direct_launches_agree(emulated):
    _, ref, direct = cupy_pair(7, "float64", {"propagation": "gather", "graph_steps": 0})
    _, _, graphed = cupy_pair(7, "float64", {"propagation": "gather", "graph_steps": 7})
    assert_bitwise(ref, direct, "direct")
    assert_bitwise(ref, graphed, "graphs")
    assert direct.meta["backend_stats"]["graph_replays"] == 0
    stats = graphed.meta["backend_stats"]
    # chunks of 50, 50, 20 steps: the runner's first step is direct, then whole graphs of 7, the rest direct
    assert stats["graph_replays"] == 7 + 7 + 2 and "graph_error" not in stats
    assert stats["kernel_launches"] < direct.meta["backend_stats"]["kernel_launches"] / 10


def test_emulated_event_overflow_reruns_the_chunk(emulated):
    net, ref, got = cupy_pair(8, "float64", {"propagation": "gather", "event_capacity": 16}, steps=120, chunk=60)
    assert got.meta["backend_stats"]["reruns"] >= 1
    assert_bitwise(ref, got, "after reruns")


@pytest.mark.parametrize("mode", ["event", "gather"])
def test_emulated_propagation_never_adds_the_rows_of_silent_neurons(emulated, mode):
    """NaN weights on every row of a neuron that never spikes leave the traces finite and equal."""
    net = random_network(5)
    inp = random_inputs(5, 100, 2)
    res = ns.simulate(net, inp, 100, seed=5, traces={p.name: ["v"] for p in net.populations})
    plan = lower(net, "float64")
    silent = [plan.slices[p.name][0] + j for p in net.populations
              for j in np.nonzero(res.spikes[p.name].counts().sum(axis=0) == 0)[0]]
    assert silent, "the test needs silent neurons"
    w = plan.weights.copy()
    for j in silent:
        w[plan.indptr[j]:plan.indptr[j + 1]] = np.nan
    poisoned = plan.__class__(**{**plan.__dict__, "weights": w})
    src = np.concatenate([res.spikes[s.name].dense() for s in net.inputs], axis=2)
    runner = cupy_backend.Runner(poisoned, 2, np.arange(plan.n_neurons), ["v"], propagation=mode)
    _, _, _, tr = runner.run(0, src)
    ref = np.concatenate([res.traces[p.name]["v"] for p in net.populations], axis=2)
    assert np.all(np.isfinite(tr["v"]))
    np.testing.assert_allclose(tr["v"], ref, rtol=TOL["float64"], atol=TOL["float64"])


def test_emulated_kernel_arguments_are_type_checked(emulated):
    dev = cuda_emulator.HostDevice("float64")
    clk = np.zeros(2, np.int64)
    with pytest.raises(TypeError, match=r"advance\(steps: int\): expected a int32 scalar, got int64"):
        dev.launch("advance", 1, (clk, np.int64(1)))
    with pytest.raises(TypeError, match=r"set_clock\(clk: i64\*\): expected an array of int64"):
        dev.launch("set_clock", 1, (clk.astype(np.int32), np.int64(0)))
    dev.launch("advance", 1, (clk, np.int32(5)))
    assert clk[0] == 5


def test_emulated_bad_options_name_the_field(emulated):
    net, inp = random_network(0), random_inputs(0, 10, 1)
    for opts, field in (({"propagation": "scatter"}, "propagation"), ({"graph_steps": -1}, "graph_steps"),
                        ({"event_capacity": 0}, "event_capacity"), ({"colour": 1}, "colour")):
        with pytest.raises(ns.NetworkError, match=rf"^backend_options\.{field}: "):
            ns.simulate(net, inp, 10, backend="cupy", backend_options=opts)


def test_emulated_cli_passes_backend_options(emulated, tmp_path, capsys):
    from neurosim.cli import main

    net = random_network(9)
    model, out, npz = tmp_path / "m.h5", tmp_path / "o.h5", tmp_path / "in.npz"
    ns.save(net, str(model))
    np.savez(npz, **random_inputs(9, 40, 2))
    assert main(["simulate", str(model), "--steps", "40", "--input", str(npz), "--backend", "cupy",
                 "--backend-option", "propagation=gather", "--backend-option", "graph_steps=4",
                 "--no-progress", "--out", str(out)]) == 0
    got = ns.load_result(str(out))
    ref = ns.simulate(net, random_inputs(9, 40, 2), 40)
    assert got.backend == "cupy" and got.meta["backend_stats"]["graph_steps"] == 4
    assert_bitwise(ref, got, "cli")
    capsys.readouterr()
    assert main(["simulate", str(model), "--steps", "40", "--input", str(npz), "--backend", "cupy",
                 "--backend-option", "propagation=fast", "--no-progress", "--out", str(out)]) == 2
    assert "--backend-option propagation: expected one of" in capsys.readouterr().err


# ------------------------------------------------------------------------------ on a GPU


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_event_default_equals_numpy_up_to_counted_ties(dtype):
    _check_modes("event", dtype)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["gather", "matmul"])
def test_gpu_gather_bitwise_and_matmul_up_to_ties(mode, dtype):
    _check_modes(mode, dtype)


@pytest.mark.gpu
@needs_gpu
def test_gpu_fast_path_really_ran_on_the_device():
    import cupy

    res = ns.simulate(random_network(1), random_inputs(1, 300, 2), 300, backend="cupy")
    stats = res.meta["backend_stats"]
    assert res.backend == "cupy" and stats["propagation"] == "event"
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    assert stats["device"] == (name.decode() if isinstance(name, bytes) else name)
    assert "graph_error" not in stats, stats.get("graph_error")
    assert stats["graph_replays"] >= 4 and stats["kernel_launches"] > 0
    assert cupy_backend._kernels.cache_info().currsize >= 1


@pytest.mark.gpu
@needs_gpu
def test_gpu_overflow_rerun_and_a_cuba_network_bitwise_in_gather_mode():
    from assets.cuba import cuba_network

    net, ref, got = cupy_pair(8, "float64", {"event_capacity": 16}, chunk=60)
    assert got.meta["backend_stats"]["reruns"] >= 1
    assert parted_at_ties(net, ref, got, TOL["float64"], "rerun") == 0
    net = cuba_network(4000, seed=3)
    ref = ns.simulate(net, steps=1500, traces={"exc": ["v"]})
    got = ns.simulate(net, steps=1500, traces={"exc": ["v"]}, backend="cupy", backend_options={"propagation": "gather"})
    assert len(ref.spikes["exc"]) > 1000
    assert_bitwise(ref, got, "cuba")


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuba_plan_is_the_lowered_cuba_network(dtype):
    """bench/gpu.py builds CUBA directly as a plan (10^9 synapses); it is the very network."""
    from assets.cuba import cuba_network, cuba_plan

    for seed, (n, k, rows) in enumerate([(700, 30, 50), (300, 290, 32768), (2000, 80, 333)]):
        want = lower(cuba_network(n, k, seed=seed), dtype)
        got = cuba_plan(n, k, seed=seed, dtype=dtype, rows_per_block=rows)
        assert got.dtype == want.dtype and got.ring == want.ring and got.slices == want.slices
        for f in ("v0", "i0", "a0", "indptr", "indices", "weights", "delays"):
            np.testing.assert_array_equal(getattr(got, f), getattr(want, f), err_msg=f"seed {seed} {f}")
        for f in NeuronParams._fields:
            np.testing.assert_array_equal(getattr(got.params, f), getattr(want.params, f), err_msg=f)
            assert getattr(got.params, f).dtype == np.dtype(dtype)
        assert got.indices.dtype == np.int32 and got.weights.dtype == np.dtype(dtype)


# ------------------------------------------------------------- the probe compiles before auto picks cupy


_find = importlib.util.find_spec


class _FakeCupy:
    """A cupy whose runtime reports a usable device (driver 12.0, compute capability 9.0) and whose
    NVRTC fails as cupy-cuda12x does on a driver-only host (no libnvrtc), or, with `compiles`,
    whose test kernel runs through the host emulator's arithmetic (x[i] = 2 i + 1)."""

    float64 = np.float64

    def __init__(self, compiles: bool, wrong: bool = False) -> None:
        class Runtime:
            driverGetVersion = staticmethod(lambda: 12000)
            runtimeGetVersion = staticmethod(lambda: 12000)
            getDeviceCount = staticmethod(lambda: 1)

        class Cuda:
            runtime = Runtime
            Device = staticmethod(lambda i: type("D", (), {"compute_capability": "90"})())

        self.cuda, self.compiles, self.wrong = Cuda, compiles, wrong

    def RawKernel(self, source, name, options=()):  # noqa: N802 (cupy's name)
        if not self.compiles:
            raise RuntimeError("CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: cannot open shared "
                               "object file: No such file or directory")
        assert name in source and "-fmad=false" in options

        def run(grid, block, args):
            (x,) = args
            x[:] = 2.0 * np.arange(block[0]) + (2.0 if self.wrong else 1.0)
        return run

    zeros = staticmethod(np.zeros)
    asnumpy = staticmethod(np.asarray)


@pytest.mark.parametrize("compiles,wrong,expect", [(False, False, "libnvrtc"), (True, True, "wrong values"),
                                                   (True, False, "")])
def test_auto_picks_cupy_only_when_a_test_kernel_compiles_and_runs(monkeypatch, capsys, compiles, wrong, expect):
    """A device that answers is not enough: before 'auto' picks cupy the probe compiles and runs a
    tiny kernel; when that fails, auto falls back and the CLI says why in its one backend line."""
    from neurosim.backends import cupy_backend
    from neurosim.cli.common import resolve_backend

    monkeypatch.setitem(sys.modules, "cupy", _FakeCupy(compiles, wrong))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "cupy" else _find(name, *a))
    cupy_backend._probe.cache_clear()
    try:
        reason = cupy_backend._probe()
        if not expect:
            assert reason == "" and backends.resolve("auto") == "cupy"
            return
        assert reason.startswith("backend 'cupy': ") and expect in reason and "\n" not in reason
        assert backends.resolve("auto") == "numba"
        assert resolve_backend("auto") == "numba"
        line = capsys.readouterr().out.strip()
        assert line == f"backend: auto -> numba (not cupy: {reason})"
    finally:
        cupy_backend._probe.cache_clear()

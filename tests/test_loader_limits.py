"""Loader blow-ups (issue 17, item 5): the NIR importer is polynomial in the graph and sparse on
1:1 and diagonal paths; every loader checks the sizes a file declares against a memory budget
before it allocates.

Before the fix: a NIR 'diamond' of k layers of two Scale nodes was walked path by path (2**k
paths: 29 s at k = 14, k = 20 never finished); Input -> LIF of n neurons built a dense n x n
identity (2.1 GB at n = 8000); a 2.77 MB compressed native file declaring 2**25 neurons made
``neurosim info`` decompress and allocate 8 GB for 44 s. Each test below fails on that code.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

import neurosim as ns
from neurosim.errors import ExportError, FileFormatError
from neurosim.h5read import BUDGET_ENV, memory_budget

nir = pytest.importorskip("nir")
from mapping import from_nir, read_nir, write_nir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LIF = dict(tau=np.full(2, 1e-2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2))


def diamond(k: int, n: int = 2, scale: float = 0.5) -> "nir.NIRGraph":
    """Input -> k layers of two parallel Scale nodes (each layer fed by both nodes of the one
    before) -> LIF: 2**k paths, each of weight scale**k."""
    nodes = {"in": nir.Input(np.array([n])), "out": nir.Output(np.array([n])),
             "lif": nir.LIF(tau=np.full(n, 1e-2), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n))}
    edges, prev = [], ["in"]
    for layer in range(k):
        cur = [f"s{layer}a", f"s{layer}b"]
        for c in cur:
            nodes[c] = nir.Scale(np.full(n, scale))
            edges += [(p, c) for p in prev]
        prev = cur
    edges += [(p, "lif") for p in prev] + [("lif", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def timed_import(k: int) -> tuple[float, "ns.Network"]:
    graph = diamond(k)
    t0 = time.perf_counter()
    net = from_nir(graph, dt=1e-3)
    return time.perf_counter() - t0, net


def test_nir_diamond_is_polynomial():
    """k = 20 (2**20 paths) imports in well under 2 s, as fast as k = 10 up to the 2k extra sums,
    and gives the sum over all paths: 2**k * 0.5**k = 1 on the diagonal. Before the fix k = 14
    took 29 s (path enumeration)."""
    t10, _ = timed_import(10)
    t20, net = timed_import(20)
    assert t20 < 2.0, f"k = 20 took {t20:.2f} s"
    assert t20 < 4 * t10 + 0.5, f"k = 20 took {t20:.3f} s against {t10:.3f} s at k = 10: not linear in k"
    (proj,) = net.projections
    np.testing.assert_allclose(np.asarray(proj.weights), np.eye(2), rtol=1e-12)
    assert proj.delay == 1


def test_nir_diamond_simulates_like_the_summed_network():
    """Parallel paths summed into one projection simulate as the explicit network does."""
    graph = diamond(6, scale=1.5)  # 64 paths of weight 1.5**6: total 64 * 11.39 per synapse
    net = from_nir(graph, dt=1e-3)
    x = np.zeros((20, 2))
    x[[0, 5, 9], 0] = 1
    ref = ns.Network(dt=1e-3, populations=[ns.Population("lif", 2, net.populations[0].model)],
                     inputs=[ns.SpikeInput("in", 2)],
                     projections=[ns.Projection("p", "in", "lif", np.eye(2) * 64 * 1.5**6)])
    a = ns.simulate(net, {"in": x}, 20, backend="numpy", traces={"lif": ["v"]})
    b = ns.simulate(ref, {"in": x}, 20, backend="numpy", traces={"lif": ["v"]})
    np.testing.assert_allclose(a.traces["lif"]["v"], b.traces["lif"]["v"], rtol=1e-12)


def _one_to_one_nir(path: Path, n: int, scale: bool) -> None:
    nodes = {"in": nir.Input(np.array([n])),
             "lif": nir.LIF(tau=np.full(n, 1e-2), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n)),
             "out": nir.Output(np.array([n]))}
    edges = [("in", "lif"), ("lif", "out")]
    if scale:
        nodes["s"] = nir.Scale(np.linspace(0.5, 1.5, n))
        edges = [("in", "s"), ("s", "lif"), ("lif", "out")]
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges))


# Peak resident memory of this process: VmHWM, the high-water mark of its own address space. Not
# getrusage's ru_maxrss: Linux carries that over exec from the forking parent, so a child of a
# pytest process that has grown to 900 MB reports 900 MB before it has read anything.
PEAK_SCRIPT = textwrap.dedent("""
    import resource, sys, time
    import numpy as np
    from mapping import read_nir

    def peak_kib():
        try:
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        except (OSError, StopIteration):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    t0 = time.perf_counter()
    before = peak_kib()
    net = read_nir(sys.argv[1], dt=1e-3)
    took = time.perf_counter() - t0
    peak = peak_kib()
    (p,) = net.projections
    print(peak * 1024, (peak - before) * 1024, took, type(p.weights).__name__, p.weights.nnz)
""")


@pytest.mark.parametrize("scale", [False, True], ids=["input-lif", "input-scale-lif"])
def test_one_to_one_nir_of_100k_neurons_imports_sparse_under_500_mb(tmp_path, scale):
    """Input -> [Scale ->] LIF of 100k neurons: a CSR of 100k synapses, peak resident memory
    of the whole process (Python, numpy, h5py, nir included) under 500 MB. Before the fix the
    importer built a dense 100k x 100k identity (80 GB)."""
    n = 100_000
    path = tmp_path / "one_to_one.nir"
    _one_to_one_nir(path, n, scale)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(path)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    peak, grown, took, kind, nnz = out.stdout.split()
    assert kind == "CSR" and int(nnz) == n
    assert int(peak) < 500 * 2**20, f"peak resident memory {int(peak) / 2**20:.0f} MiB"


def test_one_to_one_nir_weights_are_the_scales(tmp_path):
    """The sparse path keeps the numbers: weight of synapse (j, j) = r * (1 - beta) folded into
    the neuron, the Scale on the synapse; every other pair has no synapse."""
    n = 5000
    path = tmp_path / "s.nir"
    _one_to_one_nir(path, n, scale=True)
    net = read_nir(path, dt=1e-3)
    (p,) = net.projections
    assert isinstance(p.weights, ns.CSR) and p.weights.shape == (n, n)
    np.testing.assert_array_equal(p.weights.indices, np.arange(n))
    np.testing.assert_array_equal(p.weights.indptr, np.arange(n + 1))
    np.testing.assert_allclose(p.weights.values, np.linspace(0.5, 1.5, n), rtol=1e-15)


def test_nir_budget_refuses_a_dense_product(tmp_path):
    """A Linear node whose dense product exceeds the budget is refused naming the node."""
    n = 1500
    graph = nir.NIRGraph(nodes={"in": nir.Input(np.array([n])), "w": nir.Linear(np.ones((n, n))),
                                "lif": nir.LIF(**{k: np.resize(v, n) for k, v in LIF.items()})},
                         edges=[("in", "w"), ("w", "lif")])
    with pytest.raises(ExportError, match=r"nodes\.w\.weight: .*would need 18000000 bytes.*memory budget of 1000000 bytes"):
        from_nir(graph, dt=1e-3, memory_budget=1_000_000)
    assert from_nir(graph, dt=1e-3, memory_budget="1G").projections[0].weights.shape == (n, n)


# ---------------------------------------------------------------------- native files


def write_bomb(path: Path, n: int = 2**25, chunk: int = 2**20) -> None:
    """A network file of one LIF population declaring `n` neurons whose datasets are gzip chunks
    of one constant (the issue's file: 2.77 MB on disk, 2.4 GB of float64 data)."""
    net = ns.Network(dt=1e-3, populations=[ns.Population("p", 4, ns.LIF())], inputs=[], projections=[])
    ns.save(net, path)
    with h5py.File(path, "r+") as f:
        g = f["populations/p"]
        g.attrs["size"] = n
        for name in list(g.keys()):
            value = float(np.ravel(g[name][()])[0])  # stored as one value or one per neuron
            del g[name]
            d = g.create_dataset(name, shape=(n,), dtype="f8", chunks=(chunk,), compression="gzip")
            raw = zlib.compress(np.full(chunk, value).tobytes(), 9)
            for k in range(n // chunk):
                d.id.write_direct_chunk((k * chunk,), raw)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    path = tmp_path_factory.mktemp("bomb") / "bomb.h5"
    write_bomb(path)
    return path


def test_compressed_bomb_is_refused_fast_with_one_line(bomb):
    """2**25 neurons in a few MB: refused before any data is read, in well under 2 s (before the
    fix: 8 GB and 44 s), naming the file, the field, the bytes needed and the budget."""
    assert bomb.stat().st_size < 5 * 2**20
    t0 = time.perf_counter()
    with pytest.raises(FileFormatError) as err:
        ns.load(bomb, memory_budget="2G")
    took = time.perf_counter() - t0
    assert took < 2.0, f"refusal took {took:.2f} s"
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{bomb}:populations/p/")
    need = 3 * 8 * 9 * 2**25  # nine float64 datasets of 2**25 values, counted three times
    assert f"would need {need} bytes" in msg and f"memory budget of {2 * 2**30} bytes" in msg


def test_info_refuses_the_bomb_with_exit_2(bomb):
    """`neurosim info BOMB` (budget from the environment): one line, exit 2, under 2 s of CPU."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), BUDGET_ENV: "1G"}
    out = subprocess.run([sys.executable, "-m", "neurosim", "info", str(bomb)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{bomb}:populations/p/" in lines[0] and "memory budget of 1073741824 bytes" in lines[0]


def test_budget_admits_what_fits(tmp_path):
    """The same check lets a real network through when the budget covers it. Declared: the
    200 x 300 weights twice (2*8*60000), the scalar delay twice (16), the nine per-neuron
    datasets of 300 LIF neurons three times (3*8*9*300): 1024816 bytes."""
    net = ns.Network(dt=1e-3, populations=[ns.Population("p", 300, ns.LIF())], inputs=[ns.SpikeInput("in", 200)],
                     projections=[ns.Projection("w", "in", "p", np.ones((200, 300)))])
    path = tmp_path / "net.h5"
    ns.save(net, path)
    assert ns.load(path, memory_budget=10**7).projections[0].weights.shape == (200, 300)
    with pytest.raises(FileFormatError, match=r"net\.h5:projections/w/weights: .*would need 1024816 bytes .*budget of 900000 bytes"):
        ns.load(path, memory_budget=900_000)


def test_memory_budget_sources(monkeypatch):
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    default = memory_budget()
    assert 0 < default < os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert memory_budget("2G") == 2 * 2**30 and memory_budget(1234) == 1234 and memory_budget("512k") == 512 * 1024
    monkeypatch.setenv(BUDGET_ENV, "3M")
    assert memory_budget() == 3 * 2**20
    for bad in ("lots", -5, 0, "nanG"):
        with pytest.raises(ValueError, match="expected a positive number of bytes"):
            memory_budget(bad)


def test_netx_layer_sizes_are_checked_against_the_budget(tmp_path):
    """A NetX layer declaring 60000 x 60000 synapses (weights of one value, gzip) is refused
    before its weights are read."""
    path = tmp_path / "big.net"
    with h5py.File(path, "w") as f:
        f["layer/0/type"] = np.bytes_("input")
        f["layer/0/shape"] = np.array([60000])
        f["layer/1/type"] = np.bytes_("dense")
        f["layer/1/shape"] = np.array([60000])
    from mapping.netx import read_netx
    with pytest.raises(FileFormatError, match=r"/layer/1/shape: a layer of 60000 x 60000 synapses .*would need "
                                               r"864000000\d\d bytes"):
        read_netx(path, dt=1e-3, memory_budget="4G")


def test_nir_file_roundtrip_unchanged_with_budget(tmp_path):
    """Our own export still reads back exactly (per-synapse delays, CSR, Affine bias)."""
    rng = np.random.default_rng(3)
    w = rng.normal(size=(6, 5)) * (rng.random((6, 5)) < 0.5)
    net = ns.Network(dt=1e-3, populations=[ns.Population("a", 5, ns.LIF(alpha=0.5, beta=0.9))],
                     inputs=[ns.SpikeInput("in", 6)],
                     projections=[ns.Projection("p", "in", "a", ns.CSR.from_dense(w),
                                                rng.integers(1, 4, size=int(np.count_nonzero(w))))])
    path = tmp_path / "rt.nir"
    write_nir(net, path)
    back = read_nir(path, dt=1e-3, memory_budget="100M")
    (p,) = back.projections
    np.testing.assert_array_equal(np.asarray(p.weights.to_dense()), w)
    np.testing.assert_array_equal(p.delay, net.projections[0].delay)

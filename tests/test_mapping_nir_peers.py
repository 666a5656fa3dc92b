"""NIR with the peers themselves: snnTorch and Norse graphs run in neurosim, our graphs run in
snnTorch and Norse (the conventions applied: tests/test_mapping_nir.py's docstring)."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns

nir = pytest.importorskip("nir")
from mapping.nir_graph import from_nir, to_nir  # noqa: E402


# ------------------------------------------------------------------------- peers' graphs -> neurosim
def _snntorch_layers(seed: int, reset: str, recurrent: bool):
    import snntorch as snn
    import torch
    from nir_peers import f64_from_f32, heaviside

    r = np.random.default_rng(seed)
    n_h, n_o = 20, 6
    tt = lambda a: torch.tensor(f64_from_f32(a))  # noqa: E731

    def linear(i: int, o: int, mean: float, sd: float) -> torch.nn.Linear:
        layer = torch.nn.Linear(i, o, bias=False)
        layer.weight.data = tt(r.normal(mean, sd, (o, i)))
        return layer

    common = dict(init_hidden=True, reset_delay=False, spike_grad=heaviside, reset_mechanism=reset)
    if recurrent:
        n_in = 10
        hidden = snn.RLeaky(beta=tt(r.uniform(0.5, 0.95, n_h)), threshold=tt(r.uniform(0.5, 1.5, n_h)),
                            linear_features=n_h, **common)
        hidden.recurrent.weight.data = tt(r.normal(0, 0.3, (n_h, n_h)))
        hidden.recurrent.bias.data.zero_()  # a bias on a zero-latency layer is not a pure time shift
        out = snn.Synaptic(alpha=tt(r.uniform(0.2, 0.8, n_o)), beta=tt(r.uniform(0.5, 0.95, n_o)),
                           threshold=tt(r.uniform(0.5, 1.5, n_o)), **common)
        layers = [linear(n_in, n_h, 0.1, 0.4), hidden, linear(n_h, n_o, 0.1, 0.4), out]
    else:  # many small inputs: one step rarely lifts v by more than theta
        n_in = 40
        hidden = snn.Leaky(beta=tt(r.uniform(0.5, 0.95, n_h)), threshold=tt(r.uniform(0.8, 1.2, n_h)), **common)
        out = snn.Leaky(beta=tt(r.uniform(0.5, 0.95, n_o)), threshold=tt(r.uniform(0.8, 1.2, n_o)), **common)
        layers = [linear(n_in, n_h, 0.06, 0.06), hidden, linear(n_h, n_o, 0.08, 0.08), out]
    model = torch.nn.Sequential(*layers).double()
    x = r.random((300, 4 if recurrent else 32, n_in)) < 0.15
    return model, x


def test_snntorch_export_runs_identically_in_neurosim_zero_reset():
    """snnTorch 1.0 Linear -> RLeaky -> Linear -> Synaptic (reset to zero, reset_delay=False,
    per-neuron beta and threshold): every layer's spikes equal, shifted by the layer's depth."""
    pytest.importorskip("snntorch")
    import torch
    from nir_peers import run_layers
    from snntorch.export_nir import export_to_nir

    model, x = _snntorch_layers(0, "zero", recurrent=True)
    theirs = run_layers(list(model), x, [1, 3])
    graph = export_to_nir(model, torch.zeros(10, dtype=torch.float64))
    net = from_nir(graph, dt=1e-4, reset="zero")
    assert {j.name: (j.pre, j.post) for j in net.projections}["_1_w_rec"] == ("_1_lif", "_1_lif")
    ours = ns.simulate(net, {"input": x}, 300).spikes
    compared = 0
    for layer, pop, depth in ((1, "_1_lif", 1), (3, "_3", 2)):
        z = ours[pop].dense()
        np.testing.assert_array_equal(z[depth:], theirs[layer][:300 - depth] > 0, err_msg=pop)
        compared += int(z[depth:].sum())
    assert compared > 5000
    print("snnTorch export (RLeaky, Synaptic, zero reset) -> neurosim", "spikes compared:", compared)


def test_snntorch_export_subtract_reset_agrees_until_double_threshold():
    """snnTorch's Leaky with reset_delay=False subtracts theta*H(v[t-1] - theta) before its spike
    test and adds it back after, so a neuron whose membrane is still above theta after a reset
    tests ``beta*v + x - theta > theta`` next step, where neurosim tests ``beta*v + x > theta``.
    Spikes are identical up to the first step after which some neuron's post-reset membrane
    exceeds theta (per trial, all layers); before that the two maps are the same."""
    pytest.importorskip("snntorch")
    import torch
    from nir_peers import run_layers
    from snntorch.export_nir import export_to_nir

    model, x = _snntorch_layers(1, "subtract", recurrent=False)
    theirs = run_layers(list(model), x, [1, 3])
    net = from_nir(export_to_nir(model, torch.zeros(40, dtype=torch.float64)), dt=1e-4, reset="subtract")
    res = ns.simulate(net, {"input": x}, 300, traces={"_1": ["v"], "_3": ["v"]})
    theta = {p.name: p.params.theta for p in net.populations}
    above = np.zeros(x.shape[:2], bool)
    for pop in ("_1", "_3"):
        above |= np.any(res.traces[pop]["v"] > theta[pop], axis=2)
    compared = steps = 0
    for b in range(x.shape[1]):
        hits = np.flatnonzero(above[:, b])
        stop = int(hits[0]) + 1 if hits.size else 300  # steps <= the violating step are equal
        for layer, pop, depth in ((1, "_1", 1), (3, "_3", 2)):
            z = res.spikes[pop].dense()[depth:stop, b]
            np.testing.assert_array_equal(z, theirs[layer][:stop - depth, b] > 0, err_msg=f"{pop} trial {b}")
            compared += int(z.sum())
        steps += stop
    assert compared > 3000
    print("snnTorch export (Leaky, subtract reset) -> neurosim, before double threshold", "spikes compared:",
          compared, f"in {steps} of {above.size} trial-steps")


def _norse_model(seed: int, dt: float):
    import norse.torch as norse
    import torch
    from nir_peers import f64_from_f32
    from norse.torch.functional.iaf import IAFParameters
    from norse.torch.functional.lif import LIFParameters
    from norse.torch.functional.lif_box import LIFBoxParameters

    r = np.random.default_rng(seed)
    t = lambda a: torch.tensor(np.asarray(a, np.float64))  # noqa: E731
    zeros = lambda n: t(np.zeros(n))  # noqa: E731
    pow2 = lambda n: t(2.0 ** r.integers(7, 10, n))  # noqa: E731  (tau_inv = 128..512 /s, exact)

    def linear(i: int, o: int, mean: float) -> torch.nn.Linear:
        layer = torch.nn.Linear(i, o, bias=False)
        layer.weight.data = t(f64_from_f32(r.normal(mean, 0.4, (o, i))))
        return layer

    layers = [
        linear(10, 20, 0.3),
        norse.LIFBoxCell(LIFBoxParameters(tau_mem_inv=pow2(20), v_leak=zeros(20), v_reset=zeros(20),
                                          v_th=t(f64_from_f32(r.uniform(0.1, 0.3, 20)))), dt=dt),
        linear(20, 8, 0.2),
        norse.IAFCell(IAFParameters(v_th=t(f64_from_f32(r.uniform(0.5, 2, 8))), v_reset=zeros(8)), dt=dt),
        linear(8, 6, 0.5),
        norse.LIFCell(LIFParameters(tau_mem_inv=pow2(6), tau_syn_inv=pow2(6), v_leak=zeros(6),
                                    v_th=t(np.full(6, 0.25)), v_reset=zeros(6)), dt=dt),
    ]
    return layers, r.random((300, 4, 10)) < 0.15


def test_norse_export_runs_identically_in_neurosim():
    """Norse 1.1 Linear -> LIFBoxCell -> Linear -> IAFCell -> Linear -> LIFCell, exported with
    ``norse.torch.to_nir(dt=dt)`` and read at dt**2 (Norse writes tau = dt/tau_inv):
    - LIFBoxCell (NIR LIF) and IAFCell (NIR IF) give Norse's own spikes, shifted by depth;
    - LIFCell (NIR CubaLIF, w_in = 1) gives exactly what Norse's own ``from_nir`` makes of the graph;
      Norse's LIFCell itself adds its input to the current unscaled, where NIR's CubaLIF (and
      Norse's importer) scale it by dt/tau_syn = 1 - alpha: the native spikes are neurosim's with
      the imported gain divided by (1 - alpha), and that is asserted too."""
    pytest.importorskip("norse")
    import norse.torch as norse
    import torch
    from nir_peers import norse_import, run_layers, run_stateful

    dt = 2.0 ** -10
    layers, x = _norse_model(0, dt)
    theirs = run_layers(layers, x, [1, 3, 5])
    graph = norse.to_nir(norse.SequentialState(*layers), torch.zeros(1, 10, dtype=torch.float64), dt=dt)
    assert type(graph.nodes["5"]) is nir.CubaLIF
    net = from_nir(graph, dt=dt ** 2, reset="zero")
    ours = ns.simulate(net, {"input": x}, 300).spikes
    compared = 0
    for layer, pop, depth in ((1, "_1", 1), (3, "_3", 2)):
        z = ours[pop].dense()
        np.testing.assert_array_equal(z[depth:], theirs[layer][:300 - depth] > 0, err_msg=pop)
        compared += int(z[depth:].sum())
    z5 = ours["_5"].dense()
    np.testing.assert_array_equal(z5[3:], run_stateful(norse_import(graph, dt ** 2), x, ["5"])["5"][:297] > 0)
    p = net.population("_5")
    native = ns.Population("_5", p.size, ns.LIF(beta=p.params.beta, alpha=p.params.alpha, theta=p.params.theta,
                                                 gain=p.params.gain / (1 - p.params.alpha), reset="zero"))
    fixed = net.replace(populations=[q if q.name != "_5" else native for q in net.populations])
    zf = ns.simulate(fixed, {"input": x}, 300).spikes["_5"].dense()
    np.testing.assert_array_equal(zf[3:], theirs[5][:297] > 0)
    assert not np.array_equal(z5, zf)
    compared += int(z5[3:].sum() + zf[3:].sum())
    assert compared > 5000
    print("Norse export (LIFBox, IAF, LIFCell) -> neurosim", "spikes compared:", compared)


# -------------------------------------------------------------------------- our graphs -> peers
def _float32_net(seed: int, dt: float, hidden: ns.LIF, out: ns.LIF, n_h: int, n_o: int,
                 recurrent: bool, middle: ns.IF | None = None) -> ns.Network:
    from nir_peers import f64_from_f32

    r = np.random.default_rng(seed)
    pops = [ns.Population("h", n_h, hidden)]
    projs = [ns.Projection("w1", "in", "h", f64_from_f32(r.normal(0.3, 0.4, (10, n_h))))]
    last = "h"
    if middle is not None:
        pops.append(ns.Population("m", 8, middle))
        projs.append(ns.Projection("wm", "h", "m", f64_from_f32(r.normal(0.2, 0.4, (n_h, 8)))))
        last = "m"
    pops.append(ns.Population("o", n_o, out))
    projs.append(ns.Projection("w2", last, "o", f64_from_f32(r.normal(0.2, 0.4, (pops[-2].size, n_o)))))
    if recurrent:
        projs.append(ns.Projection("wr", "h", "h", f64_from_f32(r.normal(0, 0.3, (n_h, n_h)))))
    return ns.Network(dt=dt, inputs=[ns.SpikeInput("in", 10)], populations=pops, projections=projs)


def test_export_runs_identically_in_snntorch():
    """Our LIF -> CubaLIF graph (reset to zero, gain 1, one threshold per layer, dt = 1e-4, which
    is what snnTorch's importer reads: it asserts r = tau/dt and resets to zero) in snnTorch."""
    pytest.importorskip("snntorch")
    from nir_peers import run_stateful, snntorch_import

    r = np.random.default_rng(5)
    net = _float32_net(5, 1e-4, ns.LIF(beta=r.uniform(0.5, 0.95, 20), theta=0.75, reset="zero"),
                       ns.LIF(beta=r.uniform(0.5, 0.95, 6), alpha=r.uniform(0.2, 0.8, 6), reset="zero"),
                       20, 6, recurrent=False)
    x = r.random((300, 4, 10)) < 0.15
    theirs = run_stateful(snntorch_import(to_nir(net, extensions=True)), x)
    z = ns.simulate(net, {"in": x}, 300).spikes["o"].dense()
    np.testing.assert_array_equal(z[2:], theirs[:298] > 0)
    assert z.sum() > 1000
    print("neurosim export -> snnTorch import (LIF, CubaLIF)", "spikes compared:", int(z[2:].sum()))


def test_recurrent_export_in_snntorch_routes_input_through_w_rec():
    """snnTorch 1.0's import_from_nir wraps a LIF <-> Linear loop in a sub-graph whose input edge
    goes to the recurrent Linear (``(input, w_rec)`` in ``_create_rnn_subgraph``), so it computes
    ``LIF(W_rec (W_in x + z[t-1]))``. Our recurrent export therefore runs differently there; what
    snnTorch computes is exactly neurosim's network with input weights ``W_in @ W_rec``."""
    pytest.importorskip("snntorch")
    from nir_peers import run_stateful, snntorch_import

    r = np.random.default_rng(6)
    net = _float32_net(6, 1e-4, ns.LIF(beta=r.uniform(0.5, 0.95, 20), theta=0.75, reset="zero"),
                       ns.LIF(beta=r.uniform(0.5, 0.95, 6), alpha=r.uniform(0.2, 0.8, 6), reset="zero"),
                       20, 6, recurrent=True)
    x = r.random((300, 4, 10)) < 0.15
    theirs = run_stateful(snntorch_import(to_nir(net, extensions=True)), x) > 0
    w_in, w_rec = net.projections[0].weights, net.projections[-1].weights
    as_run = net.replace(projections=[ns.Projection("w1", "in", "h", w_in @ w_rec), *net.projections[1:]])
    z_run = ns.simulate(as_run, {"in": x}, 300).spikes["o"].dense()
    z_net = ns.simulate(net, {"in": x}, 300).spikes["o"].dense()
    np.testing.assert_array_equal(z_run[2:], theirs[:298])
    assert not np.array_equal(z_net[2:], theirs[:298])
    print("neurosim recurrent export -> snnTorch (as snnTorch wires it)", "spikes compared:", int(z_run[2:].sum()))


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_export_runs_identically_in_norse(reset):
    """Our LIF (gain = 1 - beta, i.e. r = 1, which Norse assumes) -> IF -> CubaLIF graph with a
    recurrent hidden layer in ``norse.torch.from_nir(dt=network.dt)``; every layer compared.
    Norse resets LIF and IF to v_reset; its CubaLIF takes ``reset_method`` (reset_subtract for the
    subtractive reset), so the subtract case uses subtraction on the CubaLIF layer only."""
    pytest.importorskip("norse")
    from nir_peers import f64_from_f32, norse_import, run_stateful
    from norse.torch.functional.reset import reset_subtract

    dt = 2.0 ** -10
    r = np.random.default_rng(7)
    bh = 1 - 2.0 ** -r.integers(1, 5, 20)
    bo, ao = 1 - 2.0 ** -r.integers(1, 5, 6), 1 - 2.0 ** -r.integers(1, 4, 6)
    net = _float32_net(7, dt, ns.LIF(beta=bh, gain=1 - bh, theta=f64_from_f32(r.uniform(0.1, 0.3, 20)), reset="zero"),
                       ns.LIF(beta=bo, alpha=ao, gain=4 * (1 - ao) * (1 - bo), theta=1.0, reset=reset),
                       20, 6, recurrent=True, middle=ns.IF(theta=f64_from_f32(r.uniform(0.5, 2, 8)), reset="zero"))
    x = r.random((300, 4, 10)) < 0.15
    import norse.torch as norse

    kw = {"reset_method": reset_subtract} if reset == "subtract" else {}
    module = norse.from_nir(to_nir(net, extensions=True), dt=dt, **kw).double() if kw else norse_import(to_nir(net, extensions=True), dt)
    ours = ns.simulate(net, {"in": x}, 300).spikes
    theirs = run_stateful(module, x, ["h", "m", "o"])
    compared = 0
    for pop, depth in (("h", 1), ("m", 2), ("o", 3)):
        z = ours[pop].dense()
        np.testing.assert_array_equal(z[depth:], theirs[pop][:300 - depth] > 0, err_msg=pop)
        compared += int(z[depth:].sum())
    assert compared > 3000
    print(f"neurosim export -> Norse import ({reset} reset on CubaLIF)", "spikes compared:", compared)

"""Parameters and inputs are checked like the network is (issue 25, item 5): decays outside
[0, 1] and non-positive thresholds under the subtractive reset are refused by the model record,
naming the field; a batch-first input is named as such; repr of a network fits on a screen."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim.errors import NetworkError
from neurosim.models import model_from_params


@pytest.mark.parametrize("make,field,needle", [
    (lambda: ns.LIF(beta=-0.1), "LIF.beta",
     "a decay must lie in [0, 1] (a factor per step such as exp(-dt/tau)), got -0.1"),
    (lambda: ns.LIF(alpha=[0.5, 1.5]), "LIF.alpha", "got 1.5"),
    (lambda: ns.ALIF(rho=1.01), "ALIF.rho", "in [0, 1]"),
    (lambda: ns.LI(beta=2.0), "LI.beta", "in [0, 1]"),
    (lambda: ns.LIF(theta=0), "LIF.theta", "expected a threshold > 0 with reset='subtract'"),
    (lambda: ns.ALIF(theta=[1.0, -0.5]), "ALIF.theta", "got -0.5"),
    (lambda: ns.IF(theta=0.0), "IF.theta", "reset='zero' allows theta <= 0"),
])
def test_bad_parameters_are_refused_by_the_model_naming_the_field(make, field, needle):
    with pytest.raises(NetworkError) as err:
        make()
    assert err.value.field == field and needle in err.value.message
    assert "\n" not in str(err.value)


def test_legitimate_edges_are_accepted():
    ns.LIF(beta=1.0, alpha=0.0)  # no leak, no synaptic filter
    ns.LIF(beta=0.0, theta=1e-9)
    ns.LIF(theta=0.0, reset="zero")  # spike whenever v > 0, then v = 0
    ns.IF(theta=-1.0, reset="zero")
    ns.LI(beta=1.0)  # LI has no threshold
    ns.LIF.from_tau(1e-3, tau_mem=1e-3, method="euler")  # beta = 1 - dt/tau = 0


def test_loaders_name_where_the_parameters_came_from():
    with pytest.raises(NetworkError) as err:
        model_from_params("lif", dict(beta=-0.5, alpha=0.0, theta=1.0, bias=0.0, gain=1.0, refractory=0),
                          where="populations.h.model")
    assert err.value.field == "populations.h.model.beta"


def _net(size=100, batch_steps=None):
    return ns.Network(dt=1e-3, populations=[ns.Population("h", 3, ns.LIF())],
                      projections=[ns.Projection("p", "in", "h", np.ones((size, 3)) * 0.1)],
                      inputs=[ns.SpikeInput("in", size)])


def test_batch_first_input_is_named_as_such():
    net = _net()
    x = np.zeros((32, 200, 100), bool)  # (B, T, n) as a DataLoader yields it
    with pytest.raises(NetworkError) as err:
        ns.simulate(net, {"in": x}, 200)
    msg = str(err.value)
    assert err.value.field == "inputs.in" and "looks batch-first, (B, T, n) = (32, 200, 100)" in msg
    assert "x.transpose(1, 0, 2)" in msg and "\n" not in msg
    ok = ns.simulate(net, {"in": x.transpose(1, 0, 2)}, 200)  # the advice works
    assert ok.batch == 32
    with pytest.raises(NetworkError, match=r"looks like \(n, T\) = \(100, 300\).*x\.T"):
        ns.simulate(net, {"in": np.zeros((100, 300))}, 300)


@pytest.mark.parametrize("shape,steps", [((200, 32, 100), 200), ((200, 100), 150), ((50, 1, 100), 50)])
def test_time_first_shapes_still_run_without_a_hint(shape, steps):
    assert ns.simulate(_net(), {"in": np.zeros(shape, bool)}, steps).steps == steps


@pytest.mark.parametrize("shape,steps", [((10, 32, 100), 200), ((200, 32, 99), 200)])
def test_other_bad_shapes_get_no_batch_first_hint(shape, steps):
    with pytest.raises(NetworkError) as err:
        ns.simulate(_net(), {"in": np.zeros(shape, bool)}, steps)
    assert "batch-first" not in str(err.value) and "expected shape" in str(err.value)


def test_repr_of_the_cuba_network_fits_on_a_screen():
    from neurosim.cli.examples import build_cuba

    net = build_cuba(4000, 80, 0)
    text = repr(net)
    lines = text.splitlines()
    assert len(text) < 2000 and len(lines) <= 25 and max(len(line) for line in lines) <= 120
    assert "4000 neurons" in text and "projection ee" in text
    many = ns.Network(dt=1e-3, populations=[ns.Population(f"p{k}", 2, ns.LIF()) for k in range(40)])
    assert len(repr(many).splitlines()) == 25 and "more (net.summary() lists all)" in repr(many)
    pop_text = repr(net.populations[0])
    assert len(pop_text) < 400 and "3200" in pop_text
    assert len(repr(net.projections[0])) < 200

"""Traces of some neurons every k-th step (POP:VAR[:NEURONS][:STRIDE]): the kept values are
exactly the full recording's rows and steps; a recording over --trace-limit is refused before
the run; `neurosim plot-traces` draws a result file's traces."""
from __future__ import annotations

import numpy as np
import pytest

import neurosim as ns
from neurosim import storage
from neurosim.cli import main
from neurosim.errors import NetworkError
from neurosim.traces import TraceSelection, format_neurons, parse_neurons, parse_size

STEPS = 97


@pytest.fixture(scope="module")
def net() -> ns.Network:
    from neurosim.cli.examples import build_cuba

    return build_cuba(120, 20, 2)


@pytest.fixture(scope="module")
def full(net):
    return ns.simulate(net, None, STEPS, batch=2, traces=["exc:v", "exc:i", "inh:v", "inh:threshold"], chunk=9)


@pytest.mark.parametrize("backend", ["numpy", "numba", "cupy", "partitioned"])
def test_selected_traces_equal_the_full_recordings_rows_and_steps(net, full, backend):
    """Every backend records the selected columns (any index list) at every step and simulate
    keeps every k-th row; compared bitwise with numpy's full recording."""
    from neurosim import backends

    if backend in ("numba", "cupy") and backends.available().get(backend):
        pytest.skip(f"{backend}: {backends.available()[backend]}")
    kwargs = {"partitions": 2} if backend == "partitioned" else {"backend": backend}
    if backend == "cupy":
        kwargs["backend_options"] = {"propagation": "gather"}  # bitwise equal to numpy
    sel = ns.simulate(net, None, STEPS, batch=2, chunk=9, traces=["exc:v:0-9,20,30-40:10", "exc:i:0-9,20,30-40:10",
                                                                  "inh:v::3", "inh:threshold::3"], **kwargs)
    cols = [*range(10), 20, *range(30, 41)]
    for var in ("v", "i"):  # steps 0, 10, ..., 90: the chunks of 9 steps do not line up with the stride
        np.testing.assert_array_equal(sel.traces["exc"][var], full.traces["exc"][var][0::10][:, :, cols])
    for var in ("v", "threshold"):
        np.testing.assert_array_equal(sel.traces["inh"][var], full.traces["inh"][var][0::3])
    assert sel.trace_selection == {"exc": TraceSelection(tuple(cols), 10), "inh": TraceSelection(None, 3)}
    for pop in sel.spikes:  # spikes are not affected
        np.testing.assert_array_equal(sel.spikes[pop].step, full.spikes[pop].step)


def test_selection_survives_the_result_file_and_the_mapping_form(net, full, tmp_path):
    sel = ns.simulate(net, None, STEPS, batch=2, chunk=50, traces={"exc": ["v:5,7-8:4"]})
    np.testing.assert_array_equal(sel.traces["exc"]["v"], full.traces["exc"]["v"][::4][:, :, [5, 7, 8]])
    storage.save_result(sel, tmp_path / "r.h5")
    back = storage.load_result(tmp_path / "r.h5")
    assert back.trace_selection == sel.trace_selection
    np.testing.assert_array_equal(back.traces["exc"]["v"], sel.traces["exc"]["v"])


def test_neuron_ranges_parse_and_print():
    assert parse_neurons("30-32,0-2,5,2", 40, "x") == (0, 1, 2, 5, 30, 31, 32)
    assert format_neurons((0, 1, 2, 5, 30, 31, 32)) == "0-2,5,30-32"
    assert parse_neurons("", 4, "x") is None
    for bad, needle in (("3-1", "low <= high"), ("a", "ranges such as"), ("0-40", "out of range")):
        with pytest.raises(NetworkError, match=needle):
            parse_neurons(bad, 40, "x")
    assert parse_size("500MB") == 5 * 10**8 and parse_size("2GiB") == 2 * 2**30 and parse_size("4096") == 4096


@pytest.mark.parametrize("traces,needle", [
    (["exc:v:0-9:1", "exc:i:0-4:1"], "one choice of neurons and stride per population"),
    (["exc:v:0-200"], "out of range"),
    (["exc:v::0"], "stride as a whole number of steps >= 1"),
    (["exc:v:1:2:3"], r"population:variable\[:neurons\]\[:stride\]"),
])
def test_bad_selections_are_refused_naming_the_population(net, traces, needle):
    with pytest.raises(NetworkError, match=needle):
        ns.simulate(net, None, 5, traces=traces)


def test_runners_that_record_everything_refuse_a_selection(net):
    from neurosim.run import describe_run

    with pytest.raises(NetworkError, match="records every neuron every step"):
        describe_run(net, None, 5, traces=["exc:v:0-3"])


def test_a_large_recording_is_estimated_and_refused_above_the_limit(tmp_path, net, capsys):
    model = tmp_path / "m.h5"
    storage.save(net, model)
    out = tmp_path / "o.h5"
    # 96 excitatory neurons x 2000 steps x 8 bytes = 1.536 MB
    assert main(["simulate", str(model), "--steps", "2000", "--trace", "exc:v", "--trace-limit", "1MB",
                 "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "about 1.54 MB, more than the limit of 1 MB" in err
    assert "--trace-limit" in err and "exc:v:0-99:10" in err and not out.exists()
    assert main(["simulate", str(model), "--steps", "2000", "--trace", "exc:v:0-9:10", "--trace-limit", "1MB",
                 "--no-progress", "--out", str(out)]) == 0
    assert storage.load_result(out).traces["exc"]["v"].shape == (200, 1, 10)
    assert main(["simulate", str(model), "--steps", "14000", "--trace", "exc:v", "--no-progress",
                 "--out", str(out)]) == 0
    assert "traces: about 10.8 MB" in capsys.readouterr().out  # the estimate, printed before the run


def test_plot_traces_writes_a_png(tmp_path, net, capsys):
    model, out, png = tmp_path / "m.h5", tmp_path / "o.h5", tmp_path / "t.png"
    storage.save(net, model)
    assert main(["simulate", str(model), "--steps", "50", "--trace", "exc:v:3-5:2", "exc:threshold:3-5:2",
                 "--no-progress", "--out", str(out)]) == 0
    assert main(["info", str(out)]) == 0
    assert "traces: exc:v:3-5:2, exc:threshold:3-5:2" in capsys.readouterr().out
    assert main(["plot-traces", str(out), "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot-traces", str(out), "--png", str(png), "--neurons", "3"]) == 2
    assert "holds 3 recorded neurons of exc" in capsys.readouterr().err
    assert main(["plot-traces", str(out), "--png", str(png), "--var", "i"]) == 2
    assert "--var i:" in capsys.readouterr().err

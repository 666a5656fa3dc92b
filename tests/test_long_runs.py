"""Long runs say how long they take and refuse what cannot fit: `--steps` also in exponent form
(1e12), the progress bar's estimate of the whole run in words, and a run whose recorded spikes,
projected from its first chunk, exceed the memory available is refused in one line at once.

Before the fix `--steps 1e12` was a usage error ('expected a whole number'), and
`--steps 1000000000000` ran with tqdm's ETA in hours (491818:11:19 for CUBA) until it ran out of
memory."""
from __future__ import annotations

import argparse
import re
import time

import pytest

import neurosim as ns
from neurosim.cli import main
from neurosim.cli.common import int_at_least


@pytest.mark.parametrize("text,value", [("1e12", 10**12), ("2.5E3", 2500), ("10", 10), ("1e0", 1)])
def test_steps_in_exponent_form(text, value):
    assert int_at_least(1)(text) == value


@pytest.mark.parametrize("text", ["1.5", "1e100", "0e3", "nan", "inf", "x", "1e-3"])
def test_steps_that_are_not_whole_numbers_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected a whole number >= 1"):
        int_at_least(1)(text)


def test_cuba_with_1e12_steps_is_refused_at_once(tmp_path, capsys):
    """10**12 CUBA steps would record terabytes of spikes: one line naming --steps, within the
    first chunk, and the output directory is removed."""
    out = tmp_path / "cuba"
    t0 = time.perf_counter()
    code = main(["cuba", "--n", "200", "--steps", "1e12", "--backend", "numpy", "--no-progress", "--out", str(out)])
    seconds = time.perf_counter() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("neurosim: error: --steps 1000000000000: would record about ") and "GB" in err[0]
    assert "memory available" in err[0]
    # the run's duration in words, from the first chunk's speed: 10**12 steps at any speed a CPU
    # reaches for 200 neurons (between 1e2 and 1e7 steps/s) is between 1.2 days and 317 years
    took = re.search(r"the run would take about ([0-9.]+) (days|years)\)$", err[0])
    assert took, err[0]
    days = float(took.group(1)) * (365.25 if took.group(2) == "years" else 1.0)
    assert 1e12 / 1e7 / 86400 <= days <= 1e12 / 1e2 / 86400, err[0]
    assert seconds < 60 and not out.exists()


def test_the_progress_bar_estimates_the_whole_run(capsys):
    """20 updates of the bar (tqdm redraws at most every 0.1 s): the estimate is drawn."""
    from assets.cuba import cuba_network

    res = ns.simulate(cuba_network(200, seed=0), None, 10_000, progress=True, chunk=500)
    assert res.steps == 10_000
    err = capsys.readouterr().err
    assert "whole run about" in err and " s" in err

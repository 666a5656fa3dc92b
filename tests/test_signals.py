"""SIGTERM is treated like Ctrl-C by every command (neurosim.cli.app installs the one handler):
what the run created is removed, one line on stderr, exit code 143 (128 + SIGTERM).

Before the fix the default action killed the process outright (return code -15): `train`
killed before its first epoch left an empty run directory and `cuba` its --out directory
(Ctrl-C, by contrast, cleaned both up)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neurosim.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "neurosim", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc: subprocess.Popen, seconds: float = 180.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, f"ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _terminate(proc: subprocess.Popen, before: tuple[str, ...] = ()) -> str:
    """SIGTERM `proc`: exit 143, stderr the lines `before` (a resume hint) and the one error line."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, err[-2000:])
    lines = err.strip().splitlines()
    assert lines == [*before, "neurosim: error: terminated by SIGTERM (no partial output files were written)"], \
        err[-2000:]
    return err


def test_sigterm_before_the_first_epoch_removes_the_run_directory(tmp_path):
    run = tmp_path / "runs" / "a"
    proc = _start(["train", "--task", "digits", "--hidden", "64", "--n-train", "1024", "--n-test", "16",
                   "--epochs", "2", "--no-progress", "--out", str(run)])
    _wait_for(run.is_dir, proc)  # made by the trainer once torch and the task are loaded
    time.sleep(0.5)
    assert not (run / "checkpoint.pt").exists()  # still before the first checkpoint
    _terminate(proc, ("no epoch finished: nothing to resume (start the run again)",))
    assert not (tmp_path / "runs").exists()  # the run directory and the parent it made are gone


def test_sigterm_during_cuba_removes_its_directory(tmp_path):
    out = tmp_path / "cuba"
    proc = _start(["cuba", "--n", "200", "--steps", "100000000", "--backend", "numpy", "--no-progress",
                   "--out", str(out)])
    _wait_for(out.is_dir, proc)
    time.sleep(1.0)  # inside the simulation
    _terminate(proc)
    assert not out.exists()


def test_sigterm_during_simulate_writes_nothing(tmp_path):
    model = tmp_path / "model.h5"
    assert main(["example", "cuba", "--n", "200", "--out", str(model)]) == 0
    out = tmp_path / "out"
    out.mkdir()
    proc = _start(["simulate", str(model), "--steps", "100000000", "--backend", "numpy", "--out", str(out / "r.h5")])
    seen = ""
    while "simulate (numpy)" not in seen:  # the progress bar: the simulation runs
        c = proc.stderr.read(1)
        assert c, f"ended early ({proc.wait()}): {seen[-2000:]}"
        seen += c
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, err[-2000:])
    assert err.rstrip().endswith("neurosim: error: terminated by SIGTERM (no partial output files were written)")
    assert os.listdir(out) == []


def test_main_restores_the_previous_sigterm_handler(tmp_path):
    """main() in a process of its own (a test runner, a notebook) leaves SIGTERM as it found it."""
    before = signal.getsignal(signal.SIGTERM)
    assert main(["example", "small_lif", "--out", str(tmp_path / "m.h5")]) == 0
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_inside_main_is_exit_143(tmp_path, capsys):
    """In process: a SIGTERM while a command runs raises Terminated there and main returns 143
    (SIGINT keeps 130: tests/test_cli.py), and the output is not written."""
    import neurosim.cli.simulate as simulate_cli

    real = simulate_cli.examples.build_cuba

    def build(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1.0)  # the handler raises as soon as the interpreter checks for signals
        return real(*args)

    caught = []  # a handler of the test's own: without main's, the signal must not end pytest
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: caught.append(signum))
    simulate_cli.examples.build_cuba = build
    try:
        assert main(["example", "cuba", "--n", "100", "--out", str(tmp_path / "c.h5")]) == 143
    finally:
        simulate_cli.examples.build_cuba = real
        signal.signal(signal.SIGTERM, previous)
    assert caught == []  # main's handler took it
    assert "terminated by SIGTERM" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_sigterm_that_a_library_turns_into_its_own_error_still_terminates(monkeypatch, capsys):
    """A SIGTERM landing inside numpy's import comes out as an ImportError ('Error importing numpy:
    you should not try to import numpy from its source directory'), which the digits task then
    reported as a missing scikit-learn (exit 2). Whatever unwinds once the signal arrived is a
    termination: 143 and the one line."""
    def signalled_then_import_error(args):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler raises Terminated here ...
        raise AssertionError("not reached")

    def swallowed(args):  # ... which a library catches and re-raises as its own error
        try:
            signalled_then_import_error(args)
        except KeyboardInterrupt as e:
            raise ImportError("Error importing numpy") from e

    import neurosim.cli.app as app

    parser = app.build_parser()
    args = parser.parse_args(["backends"])
    monkeypatch.setattr(app, "build_parser", lambda: _Fixed(args, swallowed))
    assert main(["backends"]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.strip().splitlines() == [
        "neurosim: error: terminated by SIGTERM (no partial output files were written)"]


class _Fixed:
    """A parser stand-in whose one command is `func`."""

    def __init__(self, args, func):
        self.args, self.func = args, func

    def parse_args(self, argv):
        self.args.func = self.func
        return self.args

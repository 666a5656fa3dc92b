"""bench/gpu_accept.py (issue 23 item 4) without a GPU: its --dry-run runs the CuPy backend's
kernels on tests/cuda_emulator.py and must pass; a corrupted comparison must be reported as
FAIL with exit code 1; bad arguments exit 2. The GPU run itself needs a lent device."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import TIES_FLOAT32

import cuda_emulator

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_accept.py"
needs_gxx = pytest.mark.skipif(bool(cuda_emulator.available()), reason=f"the dry run needs the emulator: "
                                                                         f"{cuda_emulator.available()}")


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _report(out: Path) -> tuple[dict, str]:
    return json.loads((out / "gpu_accept.json").read_text()), (out / "gpu_accept.md").read_text()


def _parity_lines(report: dict) -> dict[tuple[str, str, bool], dict]:
    """Part (a)'s lines by (dtype, mode, with graphs)."""
    out = {}
    for line in report["parts"]["a"]["lines"]:
        dtype, mode = line["check"].split(",")[0].split()
        out[(dtype, mode, "CUDA graphs" in line["check"])] = line
    return out


@needs_gxx
def test_dry_run_passes_and_writes_json_and_markdown(tmp_path):
    proc = _run("--dry-run", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report, md = _report(tmp_path)
    assert report["mode"] == "dry-run (emulator)" and report["exit_code"] == 0
    assert report["versions"]["numpy"] == np.__version__ and "torch" in report["versions"]
    assert report["gpu"] == (report["gpu_meta"].get("device") or "none")
    assert set(report["parts"]) == {"a", "b", "c"}
    lines = [r for p in report["parts"].values() for r in p["lines"]]
    assert report["summary"] == {"PASS": 14, "FAIL": 0, "NOT RUN": 0, "NOT CHECKED": 2}
    assert sum(r["status"] == "PASS" for r in lines) == 14

    parity = _parity_lines(report)  # (a): 2 dtypes x (gather, event with and without graphs; matmul direct)
    assert len(parity) == 10 and ("float64", "matmul", True) not in parity
    for (dtype, mode, graphs), line in parity.items():
        assert line["status"] == "PASS" and line["problems"] == []
        assert line["networks"] == 20 and line["trials"] == 39 and line["spikes"] >= 10000
        allowed = 0 if dtype == "float64" or mode == "gather" else TIES_FLOAT32
        assert line["ties_allowed"] == allowed and 0 <= line["parted"] <= allowed
        assert (line["graph_replays"] > 0) == graphs
        assert line["bar"] == (dtype == "float64" and mode in ("gather", "event"))

    b = report["parts"]["b"]  # (b): two emulated CUBA rows; the GPU thresholds are reported, not checked
    assert [(r["n"], r["syn_per_neuron"]) for r in b["rows"]] == [(2000, 80), (2000, 1000)]
    for r in b["rows"]:
        assert r["gpu_steps"] == r["steps"] == 200 and r["gpu_stats"]["device"] == "host emulator (g++)"
        assert r["gpu_stats"]["graph_replays"] > 0 and r["gpu_spikes"] > 50
        assert r["numpy_steps"] == 200 and abs(r["gpu_spikes"] - r["numpy_spikes"]) <= 0.02 * r["numpy_spikes"]
        assert 1.0 < r["rate_hz"] < 50.0 and r["fraction_of_copy_bw"] is None  # no bandwidth measured here
    figures = [r for r in b["lines"] if r["bar"]]
    assert len(figures) == 2 and all(r["status"] == "NOT CHECKED" and "not a GPU figure" in r["value"]
                                     for r in figures)
    assert any(line.startswith("| 2000 | 1000 |") for line in b["tables"])

    c = report["parts"]["c"]["lines"]  # (c): one epoch on the CPU, the fused path counted
    assert [r["status"] for r in c] == ["PASS", "PASS"]
    epoch = c[0]["epoch"]
    assert epoch["epoch"] == 0 and math.isfinite(epoch["train_loss"]) and 0 < epoch["train_loss"] < 10
    assert c[0]["device"] == "cpu"
    if c[0]["task"] == "digits":  # 10 classes: one epoch lifts test accuracy well above chance (0.1)
        assert c[0]["samples"] == 1437 and 0.2 < epoch["test_acc"] <= 1.0
    assert c[1]["fused_calls"] == math.ceil(c[0]["samples"] / 32)  # every batch of bptt ran fused

    assert md.startswith("# GPU acceptance (issue 23 item 4): dry-run (emulator)")
    assert "| part | check | result | status | bar |" in md
    for r in lines:
        assert f"| {r['part']} | {r['check']} | " in md and f" | {r['status']} | " in md
    assert "exit code 0" in proc.stdout


@needs_gxx
def test_injected_fault_is_reported_as_fail_with_exit_1(tmp_path):
    """--inject-fault flips numpy's inputs of network 0 (trial 0, step 60): every parity line
    must FAIL, naming that network and no other."""
    proc = _run("--dry-run", "--parts", "a", "--inject-fault", "--out", str(tmp_path))
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-4000:]
    report, md = _report(tmp_path)
    assert set(report["parts"]) == {"a"} and report["exit_code"] == 1
    assert report["summary"] == {"PASS": 0, "FAIL": 10, "NOT RUN": 0, "NOT CHECKED": 0}
    for line in _parity_lines(report).values():
        assert line["status"] == "FAIL" and line["networks"] == 20
        assert len(line["problems"]) == 1 and line["problems"][0].startswith("seed 0")
        assert f"| {line['check']} | " in md
    assert md.count(" | FAIL | ") == 10
    assert "[a] FAIL" in proc.stdout and "exit code 1" in proc.stdout


@pytest.mark.parametrize("args,error", [(["--parts", "d"], "--parts: letters a, b, c"),
                                        (["--parts", "b", "--inject-fault"], "--inject-fault corrupts part (a)"),
                                        (["--dry-run"], "the following arguments are required: --out")])
def test_bad_arguments_exit_2_and_write_nothing(args, error, tmp_path):
    out = tmp_path / "out"
    proc = _run(*args, *(["--out", str(out)] if "--dry-run" not in args else []), timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert error in proc.stderr and not out.exists()

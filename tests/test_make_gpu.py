"""`make` builds a GPU user's environment where nvidia-smi lists a GPU (dry runs, make -n): the
lock, then cupy-cuda12x swapped for requirements-gpu.txt, then `neurosim backends` to say what
it found; without a GPU the lock alone. The pins of requirements-gpu.txt match the lock's torch."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _dry_run(tmp_path: Path, smi: str | None, *args: str) -> list[str]:
    """`make -n venv` in a copy of the build files, with a fake nvidia-smi printing `smi` (None:
    no nvidia-smi on PATH)."""
    for f in ("Makefile", "requirements.lock", "requirements-nodeps.txt", "requirements-gpu.txt", "pyproject.toml"):
        shutil.copy(ROOT / f, tmp_path / f)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if smi is not None:
        fake = bin_dir / "nvidia-smi"
        fake.write_text(f"#!/bin/sh\nprintf '%s\\n' '{smi}'\n")
        fake.chmod(0o755)
    path = os.pathsep.join([str(bin_dir), *(p for p in os.environ["PATH"].split(os.pathsep)
                                             if not (Path(p) / "nvidia-smi").exists())])
    # a clean make: under `make test` the parent's MAKEFLAGS/MAKELEVEL would make this one print
    # "make[1]: Entering directory" lines around the recipe
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    proc = subprocess.run(["make", "--no-print-directory", "-n", "venv", *args], cwd=tmp_path, capture_output=True,
                          text=True, env=dict(env, PATH=path), timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


H200 = "GPU 0: NVIDIA H200 (UUID: GPU-00000000-0000-0000-0000-000000000000)"


def test_a_listed_gpu_adds_cuda_cupy_and_reports(tmp_path):
    lines = _dry_run(tmp_path, H200)
    lock = next(i for i, s in enumerate(lines) if "-r requirements.lock" in s)
    gpu = next(i for i, s in enumerate(lines) if "-r requirements-gpu.txt" in s)
    assert lock < gpu and "uninstall --quiet -y cupy-cuda12x" in lines[gpu]
    assert any(s.endswith("-m neurosim backends") for s in lines[gpu:])
    assert lines[-1] == "touch .venv/.installed-gpu"


@pytest.mark.parametrize("smi", [None, "No devices were found"])
def test_no_gpu_builds_from_the_lock_alone(tmp_path, smi):
    lines = _dry_run(tmp_path, smi)
    assert any("-r requirements.lock" in s for s in lines)
    assert not any("requirements-gpu.txt" in s or "cupy-cuda12x" in s for s in lines)
    assert lines[-1] == "touch .venv/.installed"


def test_gpu_can_be_forced_either_way(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert any("requirements-gpu.txt" in s for s in _dry_run(tmp_path / "a", None, "GPU=1"))
    assert not any("requirements-gpu.txt" in s for s in _dry_run(tmp_path / "b", H200, "GPU=0"))


def test_gpu_pins_match_the_locks_torch():
    """torch 2.13.0's Linux wheel is the CUDA 13.0 build (it requires cuda-toolkit==13.0.3): the GPU
    file's CuPy is the CUDA 13 one and its NVRTC the same toolkit release; CuPy 13.6 is the last
    that accepts the lock's numpy 1.26."""
    lock = (ROOT / "requirements.lock").read_text()
    gpu = (ROOT / "requirements-gpu.txt").read_text()
    assert re.search(r"^torch==2\.13\.0$", lock, re.M)
    assert re.search(r"^numpy==1\.26\.\d+$", lock, re.M)
    assert re.search(r"^cupy-cuda13x==13\.6\.0$", gpu, re.M)
    assert re.search(r"^cuda-toolkit\[nvrtc\]==13\.0\.3$", gpu, re.M)

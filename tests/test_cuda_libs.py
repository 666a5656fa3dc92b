"""NVRTC from pip made visible to CuPy (neurosim.backends.cuda_libs), without a GPU.

NVRTC is a compiler library: it loads and compiles without a driver, so the soname preload is
checked on the real library wherever a wheel of it is installed (``pip install --target DIR
nvidia-cuda-nvrtc-cu12`` or ``cuda-toolkit[nvrtc]==13.*`` and DIR on PYTHONPATH)."""
from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from neurosim.backends import cuda_libs


def _loader_has(major: int) -> bool:
    try:
        ctypes.CDLL(cuda_libs.soname(major))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("major,sub", [(12, "nvidia/cuda_nvrtc/lib"), (13, "nvidia/cu13/lib")])
def test_the_wheel_copy_is_found_where_each_cuda_major_puts_it(tmp_path, major, sub):
    lib = tmp_path / sub / f"libnvrtc.so.{major}"
    assert cuda_libs.wheel_nvrtc(major, [str(tmp_path)]) is None
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"")
    assert cuda_libs.wheel_nvrtc(major, ["/nonexistent", str(tmp_path)]) == lib
    other = 25 - major  # 12 <-> 13: the other major's directory holds nothing for this one
    assert cuda_libs.wheel_nvrtc(other, [str(tmp_path)]) is None


@pytest.mark.parametrize("major,package", [(12, "nvidia-cuda-nvrtc-cu12"), (13, "cuda-toolkit[nvrtc]==13.*")])
def test_without_any_nvrtc_the_reason_names_what_to_install(tmp_path, major, package):
    if _loader_has(major):
        pytest.skip(f"the loader finds libnvrtc.so.{major} here")
    reason = cuda_libs.preload_nvrtc(major, [str(tmp_path)])
    assert package in reason and "make GPU=1" in reason and "\n" not in reason


def test_a_file_that_is_no_library_is_reported_not_raised(tmp_path):
    if _loader_has(13):
        pytest.skip("the loader finds libnvrtc.so.13 here")
    lib = tmp_path / "nvidia/cu13/lib/libnvrtc.so.13"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"not an ELF file")
    assert cuda_libs.preload_nvrtc(13, [str(tmp_path)]).startswith(f"{lib} would not load")


@pytest.mark.parametrize("major", [12, 13])
def test_pips_nvrtc_is_then_found_by_its_soname_as_cupy_opens_it(major):
    """With a real NVRTC wheel on sys.path: before the preload dlopen by soname fails, after it
    succeeds and the library compiles nothing but answers its version (nvrtcVersion)."""
    lib = cuda_libs.wheel_nvrtc(major)
    if lib is None:
        pytest.skip(f"no NVRTC wheel for CUDA {major} on sys.path ({cuda_libs.WHEEL_NAMES[major]})")
    fresh = subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL('libnvrtc.so.{major}')"],
                           capture_output=True, text=True)
    if fresh.returncode == 0:
        pytest.skip(f"the loader finds libnvrtc.so.{major} by itself here")
    assert "cannot open shared object file" in fresh.stderr
    assert cuda_libs.preload_nvrtc(major) == ""
    nvrtc = ctypes.CDLL(cuda_libs.soname(major))  # the name CuPy uses, no path
    got_major, got_minor = ctypes.c_int(), ctypes.c_int()
    assert nvrtc.nvrtcVersion(ctypes.byref(got_major), ctypes.byref(got_minor)) == 0
    assert got_major.value == major, (got_major.value, got_minor.value, sys.path)

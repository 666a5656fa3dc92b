"""The CUDA runtime compiler (NVRTC) that pip installs, made visible to CuPy.

CuPy 13 compiles its kernels with NVRTC, which it opens by name (``libnvrtc.so.<major>``): the
loader finds a CUDA toolkit on its path (``/usr/local/cuda``, ``LD_LIBRARY_PATH``), but not the
copy pip installs beside torch's CUDA build (torch 2.13's Linux wheel pulls
``cuda-toolkit[nvrtc]``): ``site-packages/nvidia/cu13/lib`` for CUDA 13,
``site-packages/nvidia/cuda_nvrtc/lib`` for CUDA 12. On such a driver-only host CuPy imports
and sees the GPU, and then fails at its first compile. :func:`preload_nvrtc` loads pip's copy
first, globally; glibc's ``dlopen`` then matches CuPy's request by the library's soname.
"""
from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from typing import Optional, Sequence

# where the NVRTC wheels put the library, per CUDA major version
WHEEL_DIRS = {12: ("nvidia/cuda_nvrtc/lib",), 13: ("nvidia/cu13/lib",)}
# what to install when neither the loader nor a wheel has it
WHEEL_NAMES = {12: "nvidia-cuda-nvrtc-cu12", 13: "cuda-toolkit[nvrtc]==13.*"}


def soname(major: int) -> str:
    """The name CuPy opens NVRTC by: ``libnvrtc.so.<major>``."""
    return f"libnvrtc.so.{major}"


def wheel_nvrtc(major: int, paths: Optional[Sequence[str]] = None) -> Optional[Path]:
    """The NVRTC library of CUDA `major` that a pip wheel installed under one of `paths`
    (default ``sys.path``), or None."""
    for root in (sys.path if paths is None else paths):
        for sub in WHEEL_DIRS.get(major, ()):
            lib = Path(root or ".") / sub / soname(major)
            if lib.is_file():
                return lib
    return None


def preload_nvrtc(major: int, paths: Optional[Sequence[str]] = None) -> str:
    """Make ``dlopen(libnvrtc.so.<major>)`` succeed: '' when the loader finds it already or pip's
    copy (:func:`wheel_nvrtc`) was loaded (RTLD_GLOBAL), else one line saying what to install."""
    try:
        ctypes.CDLL(soname(major))
        return ""
    except OSError:
        pass
    lib = wheel_nvrtc(major, paths)
    if lib is None:
        return (f"{soname(major)} (CUDA {major}'s runtime compiler) is neither on the loader's path nor in "
                f"a pip wheel: pip install '{WHEEL_NAMES.get(major, 'the CUDA toolkit')}' (make GPU=1 does)")
    try:
        ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        return f"{lib} would not load ({exc})"
    return ""

"""The CuPy backend's CUDA kernels run on the host, so their logic is tested without a GPU.

The kernel source (neurosim/backends/cupy_kernels.cu) is compiled by g++ behind a small shim
(threadIdx/blockIdx as globals, atomics as plain read-modify-writes, no FMA contraction,
-Bsymbolic so a kernel named like a libc function, e.g. advance, stays ours);
a launch runs every (block, thread) one after another. The kernels never cooperate inside a
block, so this is one legal execution of the GPU program: with few blocks the grid-stride
loops wrap, and the spike list is then not in presynaptic order, as with atomics on a GPU.

:class:`HostDevice` implements ``cupy_backend.Device`` over NumPy arrays. Every launch checks
each argument against the kernel's C signature (element type and contiguity of arrays, exact
scalar types): a cupy RawKernel launch passes raw pointers and bytes and checks neither.
Capture records launches with their arguments fixed, as a CUDA graph does, and replays them.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Optional

import numpy as np

from neurosim.backends import cupy_backend

SHIM = """
#include <cstddef>
struct ns_dim3 { unsigned int x, y, z; };
static ns_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
template <typename T> static inline T atomicAdd(T* p, T v) { T old = *p; *p = old + v; return old; }
"""
_SIGNATURE = re.compile(r'extern "C" __global__ void (\w+)\s*\(([^)]*)\)', re.S)
_POINTERS = {"real": None, "i64": np.int64, "int": np.int32, "unsigned char": np.uint8,
             "unsigned int": np.uint32, "unsigned long long": np.uint64}
_SCALARS = {"int": (np.int32, ctypes.c_int32), "i64": (np.int64, ctypes.c_int64)}


def available() -> str:
    """'' if g++ is here, else the reason the emulator cannot run."""
    return "" if shutil.which("g++") else "g++ is not installed"


@contextlib.contextmanager
def installed(max_blocks: int = 2, block: int = 64) -> Iterator[list["HostDevice"]]:
    """Inside the block backend 'cupy' runs here: ``cupy_backend.check`` passes and every runner
    gets a new ``HostDevice(dtype, max_blocks, block)``, appended to the list yielded. Few
    blocks, so grid-stride loops wrap and spike lists leave presynaptic order (as atomics do on a
    GPU). Restores the backend on exit; callers check :func:`available` first."""
    made: list[HostDevice] = []

    def device(dtype: Any) -> HostDevice:
        made.append(HostDevice(dtype, max_blocks=max_blocks, block=block))
        return made[-1]

    saved = cupy_backend.check, cupy_backend._device
    cupy_backend.check, cupy_backend._device = (lambda: None), device
    try:
        yield made
    finally:
        cupy_backend.check, cupy_backend._device = saved


def signatures(source: str) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Kernel name -> (parameter text, [(normalised C type, name)]) of each extern "C" __global__ kernel."""
    out = {}
    for name, params in _SIGNATURE.findall(source):
        args = []
        for p in params.split(","):
            ctype, pname = " ".join(p.replace("__restrict__", " ").replace("const ", " ").split()).rsplit(" ", 1)
            args.append((ctype.replace(" *", "*"), pname))
        out[name] = (params, args)
    return out


@functools.lru_cache(maxsize=None)
def _compiled(dtype_name: str) -> tuple[ctypes.CDLL, dict[str, list[tuple[str, str]]]]:
    """The kernels of `dtype_name` in a shared library, each behind ns_launch_<name>(grid, block, ...)."""
    source = cupy_backend.kernel_source(dtype_name)
    sigs = signatures(source)
    launchers = [
        f'extern "C" void ns_launch_{name}(unsigned int grid, unsigned int block, {params}) {{\n'
        f"  gridDim.x = grid; blockDim.x = block; gridDim.y = gridDim.z = blockDim.y = blockDim.z = 1;\n"
        f"  for (unsigned int bi = 0; bi < grid; ++bi) for (unsigned int ti = 0; ti < block; ++ti) {{\n"
        f"    blockIdx.x = bi; threadIdx.x = ti; {name}({', '.join(a[1] for a in args)});\n  }}\n}}\n"
        for name, (params, args) in sigs.items()]
    folder = Path(tempfile.mkdtemp(prefix="ns_cuda_emu_"))
    atexit.register(shutil.rmtree, folder, True)
    (folder / "k.cpp").write_text(SHIM + source + "\n" + "".join(launchers))
    subprocess.run(["g++", "-O2", "-std=c++14", "-ffp-contract=off", "-shared", "-fPIC", "-Wl,-Bsymbolic", "-o",
                    str(folder / "k.so"), str(folder / "k.cpp")], check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(folder / "k.so")), {name: args for name, (_, args) in sigs.items()}


class HostDevice:
    """cupy_backend.Device on the host: NumPy arrays, kernels compiled by g++."""

    xp = np

    def __init__(self, dtype: Any, max_blocks: int = 2, block: int = 64) -> None:
        self.dtype = np.dtype(dtype)
        self.name = "host emulator (g++)"
        self.block, self.max_blocks = block, max_blocks
        self.launches = 0
        self.graph_replays = 0
        self._lib, self._sigs = _compiled(self.dtype.name)
        self._recording: Optional[list] = None
        real_ct = ctypes.c_float if self.dtype == np.float32 else ctypes.c_double
        self._scalars = dict(_SCALARS, real=(self.dtype.type, real_ct))

    def _checked(self, kernel: str, args: tuple) -> list:
        sig = self._sigs[kernel]
        if len(args) != len(sig):
            raise TypeError(f"{kernel}: {len(args)} arguments for {len(sig)} parameters")
        out = []
        for value, (ctype, pname) in zip(args, sig):
            where = f"{kernel}({pname}: {ctype})"
            if ctype.endswith("*"):
                want = _POINTERS[ctype[:-1]] or self.dtype
                if not isinstance(value, np.ndarray) or value.dtype != np.dtype(want):
                    raise TypeError(f"{where}: expected an array of {np.dtype(want)}, got {_describe(value)}")
                if value.size and not value.flags.c_contiguous:
                    raise TypeError(f"{where}: array is not C-contiguous")
                out.append(ctypes.c_void_p(value.ctypes.data))
            else:
                want_t, ct = self._scalars[ctype]
                if type(value) is not want_t:
                    raise TypeError(f"{where}: expected a {want_t.__name__} scalar, got {_describe(value)}")
                out.append(ct(value.item()))
        return out

    def launch(self, kernel: str, grid: int, args: tuple) -> None:
        cargs = self._checked(kernel, args)
        if self._recording is not None:
            self._recording.append((kernel, grid, cargs, args))  # args keep the arrays alive
            return
        getattr(self._lib, f"ns_launch_{kernel}")(ctypes.c_uint(grid), ctypes.c_uint(self.block), *cargs)
        self.launches += 1

    def capture(self, fn: Callable[[], None]) -> Callable[[], None]:
        self._recording = []
        try:
            fn()
        finally:
            recorded, self._recording = self._recording, None

        def replay() -> None:
            for kernel, grid, cargs, _ in recorded:
                getattr(self._lib, f"ns_launch_{kernel}")(ctypes.c_uint(grid), ctypes.c_uint(self.block), *cargs)
            self.graph_replays += 1

        return replay

    def upload(self, dst: np.ndarray, host: np.ndarray) -> None:
        dst[...] = host

    def to_host(self, a: np.ndarray) -> np.ndarray:
        return np.array(a, copy=True)

    def activate(self) -> ContextManager[Any]:
        return contextlib.nullcontext()

    def free_bytes(self) -> int:
        return 8 << 30


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of {value.dtype}"
    return type(value).__name__

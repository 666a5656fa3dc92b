"""``simulate --input IN.npz``: reading an archive of spike arrays without trusting it."""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .. import paths
from ..errors import FileFormatError

MAX_INPUT_BYTES = 4 << 30  # largest array `simulate --input` reads from an archive (explicit cap)
_MAX_RATIO = 1100  # deflate cannot compress beyond about 1032:1; a larger claim is not data


def load_inputs(path: str, max_bytes: int = MAX_INPUT_BYTES) -> dict[str, np.ndarray]:
    """The named arrays of an .npz file; simulate() validates them against the network.

    Every member's npy header is read and checked before its data: a plain dtype (no
    pickled objects), a declared size that the member really holds and that does not
    exceed `max_bytes`, so nothing is allocated for a header's mere claim."""
    import zipfile
    import zlib

    problem = paths.file_problem(path)
    if problem == "no such file":
        raise FileNotFoundError(2, "No such file or directory", path)
    if problem:
        raise FileFormatError(path, "", f"{problem}; expected a numpy .npz archive")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError, zlib.error) as exc:
        raise FileFormatError(path, "", f"not a numpy .npz archive ({' '.join(str(exc).split())})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise FileFormatError(path, "", "expected a .npz archive of named arrays (np.savez), got a single array")
    out: dict[str, np.ndarray] = {}
    with archive:
        for info in archive.zip.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            try:
                problem = _member_problem(archive.zip, info, max_bytes)
                if problem is None and key in out:
                    problem = "appears twice in the archive"
                if problem:
                    raise FileFormatError(path, key, problem)
                with archive.zip.open(info) as f:  # the member just checked, not another of its name
                    out[key] = np.lib.format.read_array(f, allow_pickle=False)
            except FileFormatError:
                raise
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError, zlib.error) as exc:
                raise FileFormatError(path, key, f"cannot read the array ({' '.join(str(exc).split())})") from None
    return out


def _member_problem(zf: Any, info: Any, max_bytes: int) -> Optional[str]:
    """Why archive member `info` is not an npy array whose declared size the member holds,
    within `max_bytes`; None when it is one. Reads the npy header only."""
    if not info.filename.endswith(".npy"):
        return f"expected only .npy arrays (np.savez), found member {info.filename!r}"
    if info.compress_type != 0 and info.file_size > _MAX_RATIO * max(info.compress_size, 1):
        return f"claims {info.file_size} bytes from {info.compress_size} compressed, more than deflate can produce"
    import tokenize

    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0), (3, 0)):
            return f"unsupported npy format version {version}"
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        try:  # numpy parses the header dict with its own literal parser, which raises these too
            shape, _, dtype = read(f)
        except (SyntaxError, TypeError, tokenize.TokenError) as exc:
            return f"unreadable npy header ({type(exc).__name__}: {exc})"
        header = f.tell()
    if dtype.hasobject:
        return "expected an array of numbers or booleans, got Python objects (never unpickled)"
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > max_bytes:
        return f"declares shape {shape} of {dtype} ({nbytes} bytes), more than the {max_bytes}-byte limit of an input"
    if header + nbytes != info.file_size:
        return (f"declares shape {shape} of {dtype} ({nbytes} bytes) but the member holds "
                f"{info.file_size - header} bytes of data")
    return None


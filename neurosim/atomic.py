"""Atomic file output: write beside the target, fsync, rename over it in one step.

A crash or Ctrl-C at any point leaves either the old file or the new one, never a partial
file, and no temporary file behind (it is removed on any exception). A process killed outright
(SIGKILL, power loss) cannot remove its temporary file; its name carries the writer's pid and
host (``.NAME.PID@HOST.XXXXXXXX.tmp``), and the next write of NAME removes those of writers on
this host that no longer run.

Every writer ends in :func:`write_bytes` (HDF5 files too: :func:`write_h5` and :func:`h5_image`
build the file in memory first, because the HDF5 library can crash the process when the disk
fills under it), so one place turns a full disk (ENOSPC, EDQUOT) or a file-size limit (EFBIG,
``ulimit -f``; Python ignores SIGXFSZ, so write() fails instead of the process dying) into an
OSError naming the target, with no partial or temporary file left.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import socket
import stat
import tempfile
from typing import Any, Callable, Iterator, Mapping, Union

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[str]:
    """Yield a temporary path in the target's folder; on normal exit it replaces `path` (with
    the target's current permissions, or the umask's for a new file); on error it is deleted."""
    target = os.path.abspath(os.fsdecode(os.fspath(path)))
    directory, name = os.path.split(target)
    _remove_stale(directory, name)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.{os.getpid()}@{_HOST}.", suffix=".tmp")
    except OSError as exc:
        if exc.errno in DISK_ERRORS:
            raise OSError(exc.errno, f"{os.strerror(exc.errno)}; nothing was written", os.fsdecode(path)) from None
        raise
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _file_mode(target))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in DISK_ERRORS and exc.filename in (None, tmp):
            raise OSError(exc.errno, f"{os.strerror(exc.errno)}; nothing was written",
                          os.fsdecode(path)) from None
        raise
    with contextlib.suppress(OSError):  # make the rename durable where directories can be synced
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())


def _remove_stale(directory: str, name: str) -> None:
    """Delete temporary files of `name` left by writers on this host that no longer run."""
    pattern = re.compile(rf"\.{re.escape(name)}\.(\d+)@{re.escape(_HOST)}\.[A-Za-z0-9_]+\.tmp")
    with contextlib.suppress(OSError):
        for entry in os.listdir(directory):
            m = pattern.fullmatch(entry)
            if m and not _running(int(m.group(1))):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, entry))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


DISK_ERRORS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})  # full disk, file-size limit, quota


def write_bytes(path: PathLike, data: bytes) -> None:
    """Atomically replace `path` with `data`; a full disk or file-size limit raises OSError
    naming `path` (errno ENOSPC, EFBIG or EDQUOT) and leaves the old file or none."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_all(files: "Mapping[PathLike, bytes]") -> None:
    """Atomically replace every path of `files` with its bytes: all of them or, on any error, none
    (the renames happen once every temporary file is written)."""
    with contextlib.ExitStack() as stack:
        for path, data in files.items():
            tmp = stack.enter_context(atomic_path(path))
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
            except OSError as exc:
                if exc.errno in DISK_ERRORS:
                    raise OSError(exc.errno, f"{os.strerror(exc.errno)}; nothing was written",
                                  os.fsdecode(path)) from None
                raise


@contextlib.contextmanager
def h5_image(path: PathLike) -> Iterator[io.BytesIO]:
    """Yield an empty in-memory file to write an HDF5 file into (``h5py.File(buf, "w")`` or
    ``nir.write(buf, graph)``); on normal exit its bytes replace `path` via :func:`write_bytes`.
    The HDF5 library never touches the disk, so a full disk cannot crash it."""
    buf = io.BytesIO()
    yield buf
    write_bytes(path, buf.getvalue())


def write_h5(path: PathLike, fill: Callable[[Any], None]) -> None:
    """Atomically replace `path` with the HDF5 file that `fill(f)` writes into the h5py.File `f`
    (built in memory first, see :func:`h5_image`). Object headers in the HDF5 1.10 file format
    (``libver='v110'``: about a third of the 1.8 format's per-dataset overhead; read by any HDF5
    since 1.10, 2018)."""
    import h5py

    with h5_image(path) as buf:
        with h5py.File(buf, "w", libver=("v110", "v110")) as f:
            fill(f)


def write_png(path: PathLike, fig: Any, **savefig: Any) -> None:
    """Atomically replace `path` with the matplotlib figure `fig` as PNG (rendered in memory)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **savefig)
    write_bytes(path, buf.getvalue())


def remove_stale(directory: PathLike) -> None:
    """Delete the temporary files in `directory` of every writer on this host that no longer runs
    (killed outright mid-write); those of running writers are kept."""
    pattern = re.compile(rf"\.(.+)\.(\d+)@{re.escape(_HOST)}\.[A-Za-z0-9_]+\.tmp")
    folder = os.fspath(directory)
    with contextlib.suppress(OSError):
        for entry in os.listdir(folder):
            m = pattern.fullmatch(entry)
            if m and not _running(int(m.group(2))):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, entry))


def write_text(path: PathLike, text: str) -> None:
    """Atomically replace `path` with `text` (UTF-8)."""
    write_bytes(path, text.encode("utf-8"))


def _file_mode(target: str) -> int:
    """The target's current permissions, or what a new file would get under the umask."""
    with contextlib.suppress(OSError):
        return stat.S_IMODE(os.stat(target).st_mode)
    mask = None
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    mask = int(line.split()[1], 8)
    if mask is None:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask

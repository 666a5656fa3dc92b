"""Atomic file output: write beside the target, fsync, rename over it in one step.

A crash or Ctrl-C at any point leaves either the old file or the new one, never a partial
file, and no temporary file behind (it is removed on any exception). A process killed outright
(SIGKILL, power loss) cannot remove its temporary file; its name carries the writer's pid and
host (``.NAME.PID@HOST.XXXXXXXX.tmp``), and the next write of NAME removes those of writers on
this host that no longer run.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import stat
import tempfile
from typing import Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[str]:
    """Yield a temporary path in the target's folder; on normal exit it replaces `path` (with
    the target's current permissions, or the umask's for a new file); on error it is deleted."""
    target = os.path.abspath(os.fsdecode(os.fspath(path)))
    directory, name = os.path.split(target)
    _remove_stale(directory, name)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.{os.getpid()}@{_HOST}.", suffix=".tmp")
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
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
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


def write_bytes(path: PathLike, data: bytes) -> None:
    """Atomically replace `path` with `data`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


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

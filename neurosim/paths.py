"""Input and output paths of the command line: what an input file is, whether an output can be
written, that no output is one of the inputs, and output directories that a failed command
does not leave behind.

Every check raises :class:`~neurosim.errors.NeurosimError` with the option and the path in
the message (the CLI prints it as one line and exits with 2). Nothing here ever deletes
anything that existed before the command ran.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterable, Iterator, Optional, Sequence

from .errors import NeurosimError


def file_problem(path: str) -> Optional[str]:
    """Why `path` cannot be read as a file ('no such file', 'is a directory', 'not a regular
    file'), or None when it is a regular file (or a link to one)."""
    if os.path.isfile(path):
        return None
    if os.path.isdir(path):
        return "is a directory"
    return "no such file" if not os.path.exists(path) else "not a regular file"


def same_file(a: str, b: str) -> bool:
    """True when paths `a` and `b` name one file: os.path.samefile when both exist (hard and
    symbolic links included), else their resolved absolute paths are equal."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_inputs_as_outputs(outputs: Iterable[tuple[str, str]], inputs: Iterable[tuple[str, Optional[str]]]) -> None:
    """Raise when an output would replace an input. `outputs` and `inputs` are (option, path)
    pairs, the option as the user names it (``--out``, ``MODEL.h5``); an input of None is absent."""
    given = [(opt, p) for opt, p in inputs if p]
    for out_opt, out in outputs:
        for in_opt, inp in given:
            if same_file(out, inp):
                raise NeurosimError(f"{out_opt} {out}: is the same file as the input {in_opt} {inp}; writing it "
                                    f"would destroy the input, choose another {out_opt}")


def check_writable(path: str, option: str) -> None:
    """Fail before any work if file `path` cannot be created: it must not be a directory, and
    its directory must exist and be writable."""
    if os.path.isdir(path):
        raise NeurosimError(f"{option} {path}: is a directory, expected a file name")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent or "."):
        blocking = _existing_ancestor(parent)
        if blocking is not None and not os.path.isdir(blocking):
            raise NeurosimError(f"{option} {path}: {blocking} is not a directory")
        raise NeurosimError(f"{option} {path}: directory {parent} does not exist")
    directory = os.path.abspath(parent or ".")
    try:
        fd, probe = tempfile.mkstemp(prefix=".neurosim-probe-", dir=directory)
    except OSError as exc:
        raise NeurosimError(f"{option} {path}: cannot write in {directory} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)


def check_directory(path: str, option: str) -> None:
    """Fail if output directory `path` cannot be a directory: it, or one of its parents, exists
    and is not a directory."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise NeurosimError(f"{option} {path}: exists and is not a directory")
    blocking = _existing_ancestor(path)
    if blocking is not None and blocking != path and not os.path.isdir(blocking):
        raise NeurosimError(f"{option} {path}: {blocking} is not a directory")


def _existing_ancestor(path: str) -> Optional[str]:
    """`path` or its nearest ancestor (as written) that exists; None when none of them does."""
    p = path
    while p and not os.path.exists(p):
        up = os.path.dirname(p)
        if up == p:
            return None
        p = up
    return p or None


@contextlib.contextmanager
def output_directory(path: str, option: str, keep: Sequence[str] = ()) -> Iterator[str]:
    """Create directory `path` (and missing parents) for a command's files and yield it.

    If the block raises (an error, Ctrl-C), what the command created is removed: every entry of
    `path` that was not there before, the directory itself and the parents it made when they
    did not exist, so a failed command leaves nothing behind. When a file named in `keep` (a
    resumable checkpoint) was written among the new entries, nothing is removed. Anything that
    existed before is never deleted (a file it replaced stays replaced)."""
    check_directory(path, option)
    made: list[str] = []  # directories this call creates, deepest first
    p = os.path.abspath(path)
    while not os.path.exists(p):
        made.append(p)
        p = os.path.dirname(p)
    before = set() if made else set(os.listdir(path))
    os.makedirs(path, exist_ok=True)
    try:
        yield path
    except BaseException:
        with contextlib.suppress(OSError):
            _remove_new(os.path.abspath(path), before, made, keep)
        raise


def _remove_new(path: str, before: set[str], made: list[str], keep: Sequence[str]) -> None:
    new = [os.path.join(path, e) for e in os.listdir(path) if e not in before]
    if any(_holds(entry, keep) for entry in new):
        return
    for entry in new:
        with contextlib.suppress(OSError):
            if os.path.isdir(entry) and not os.path.islink(entry):
                shutil.rmtree(entry)
            else:
                os.unlink(entry)
    for directory in made:  # deepest first; rmdir refuses one that something else filled meanwhile
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def _holds(entry: str, names: Sequence[str]) -> bool:
    """True when `entry` is, or (a directory) contains, a file named in `names`."""
    if not names:
        return False
    if os.path.basename(entry) in names:
        return True
    if os.path.isdir(entry) and not os.path.islink(entry):
        return any(n in names for _, _, files in os.walk(entry) for n in files)
    return False

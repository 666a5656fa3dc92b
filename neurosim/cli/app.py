"""The ``neurosim`` command: the parser of every subcommand and the dispatch that turns every
error into one line ``neurosim: error: ...`` and an exit code (see the package docstring)."""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from typing import Any, Iterator, NoReturn, Optional, Sequence

from ..version import __version__
from ..errors import NeurosimError, Terminated
from . import crosscheck, demo, export, simulate, traces, train
from . import map as chip_map
from .common import PROG, SIGTERM_ARRIVED
from .extras import missing_extra_message


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit code 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        where = f"{sub}: " if sub else ""
        self.exit(2, f"{PROG}: error: {where}{message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``neurosim`` command with every subcommand (torch, Brian2 and Lava load
    only when a command that needs them runs)."""
    parser = _Parser(prog=PROG, description="Spiking-network simulator: run saved networks, inspect files, "
                                            "plot rasters. Time unit: seconds; delays in whole steps.",
                     epilog="Errors print one line 'neurosim: error: ...' and exit with code 2.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    simulate.register(sub)  # simulate, info, raster, example, backends, cuba
    traces.register(sub)  # plot-traces
    train.register(sub)
    export.register(sub)  # export, import
    crosscheck.register(sub)
    demo.register(sub)
    chip_map.register(sub)  # map
    return parser


# ------------------------------------------------------------------------------------- entry


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with `argv` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # e.g. for `train --nproc N` to start its ranks
    try:
        with _sigterm_as_interrupt():
            try:
                return int(args.func(args) or 0)
            except Exception as exc:
                if SIGTERM_ARRIVED.is_set():  # the signal surfaced as a library's error (e.g. inside an import)
                    raise Terminated() from exc
                raise
    except ImportError as exc:  # an optional dependency is missing: name the extra that brings it
        line = missing_extra_message(exc, args.command)
        if line is None:
            raise
        _error(line)
        return 2
    except Terminated:  # before KeyboardInterrupt, its base: the same clean-up, its own exit code
        _error("terminated by SIGTERM (no partial output files were written)")
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        _error("interrupted (no partial output files were written)")
        return 130
    except NeurosimError as exc:
        _error(str(exc))
        return 2
    except MemoryError as exc:  # numpy's _ArrayMemoryError too: a size the user asked for does not fit
        text = str(exc).strip()
        _error(f"out of memory: {text.splitlines()[0] if text else type(exc).__name__}; use smaller sizes")
        return 2
    except BrokenPipeError:  # e.g. `neurosim info x.h5 | head -1`: not an error of the user's input
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return 141
    except OSError as exc:
        _error(_os_message(exc))
        return 2


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) in the main
    thread, so it cleans up like Ctrl-C: the one place that handles the signal for every command."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread (e.g. main() called in a worker)
        return

    def raise_terminated(signum: int, frame: Any) -> None:
        SIGTERM_ARRIVED.set()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: a repeat must not cut the clean-up short
        raise Terminated()

    SIGTERM_ARRIVED.clear()
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _error(message: str) -> None:
    line = " ".join(str(message).split())  # exactly one line
    print(f"{PROG}: error: {line}", file=sys.stderr, flush=True)


def _os_message(exc: OSError) -> str:
    if isinstance(exc, FileExistsError) and exc.filename is not None and not os.path.isdir(exc.filename):
        return f"{exc.filename}: exists and is not a directory"  # e.g. a run directory that is a file
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


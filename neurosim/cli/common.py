"""What every command of the CLI shares: the error type, argparse types, the backend choice and
the translation of simulate()'s validation errors into the option or file they came from."""
from __future__ import annotations

import argparse
import threading
from typing import Any, Callable

from .. import backends
from ..errors import FileFormatError, NetworkError, NeurosimError
from ..traces import describe_bytes

PROG = "neurosim"


class CLIError(NeurosimError):
    """A command-line argument or environment problem found by the CLI itself."""


SIGTERM_ARRIVED = threading.Event()
"""Set by the CLI's SIGTERM handler while a command runs. A signal that lands inside a library's
import can come out as that library's own error (numpy turns it into an ImportError): what
unwinds after this is set is a termination, whatever its type."""


# ------------------------------------------------------------------------------ argument types


def int_at_least(lo: int) -> Callable[[str], int]:
    """argparse type: a whole number >= `lo`, also written in exponent form (``1e6``, ``2.5E3``:
    exactly, as a decimal); argparse prefixes the option, so a bad value reads
    ``argument --trial: expected a whole number >= 0, got 'x'``."""
    def parse(text: str) -> int:
        from decimal import Decimal, InvalidOperation

        try:
            value = int(text)
        except ValueError:
            value = None
            try:
                exact = Decimal(text.strip()) if len(text) <= 40 else None
            except InvalidOperation:
                exact = None
            if exact is not None and exact.is_finite() and exact == exact.to_integral_value() and exact.adjusted() < 40:
                value = int(exact)
        if value is None or value < lo:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {lo}, got {text!r}")
        return value

    parse.__name__ = f"whole number >= {lo}"  # argparse names the type in some messages
    return parse


def seed_arg(text: str) -> int:
    """argparse type of every --seed: a whole number, 0 <= seed < 2**63 (neurosim.simulate.check_seed)."""
    from ..simulate import check_seed

    try:
        return check_seed(int(text))
    except (ValueError, NetworkError):  # int() refused it, or check_seed did
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 and < 2**63, got {text!r}") from None


def names_arg(text: str) -> list[str]:
    """argparse type: comma-separated names ('exc,inh' -> ['exc', 'inh']), at least one."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, e.g. exc,inh, got {text!r}")
    return names


def key_value(text: str) -> tuple[str, Any]:
    """'propagation=gather' -> ('propagation', 'gather'); values are Python literals where they
    parse as one (graph_steps=0 -> 0, delay=(2, 4) -> (2, 4)), else strings. The argparse type
    of every KEY=VALUE option (--backend-option, --task-option)."""
    import ast

    key, sep, value = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as name=value, got {text!r}")
    try:
        return key.strip(), ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key.strip(), value


def trace_arg(text: str) -> str:
    """argparse type of --trace: POPULATION:VARIABLE[:NEURONS][:STRIDE] with VARIABLE one of
    neurosim.backends.TRACE_VARS, NEURONS such as 0-9,20,30-40 and STRIDE a whole number >= 1
    (neurosim.traces)."""
    from ..traces import parse_neurons, parse_stride, split_entry

    try:
        pop, var, neurons, stride = split_entry(text)
    except NetworkError:
        raise argparse.ArgumentTypeError(f"expected POPULATION:VARIABLE[:NEURONS][:STRIDE], e.g. exc:v or "
                                         f"exc:v:0-9,20:10, got {text!r}") from None
    try:
        parse_neurons(neurons, None, "neurons")
        parse_stride(stride, "stride")
    except NetworkError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc.message}") from None
    if var not in backends.TRACE_VARS:
        raise argparse.ArgumentTypeError(
            f"expected POPULATION:VARIABLE[:NEURONS][:STRIDE] with VARIABLE one of {', '.join(backends.TRACE_VARS)}, "
            f"got {text!r}")
    return text


def size_arg(text: str) -> int:
    """argparse type of a size in bytes: 500MB, 2GB, 1.5GiB or a number of bytes."""
    from ..traces import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ------------------------------------------------------------------------ shared by the commands


def resolve_backend(name: str) -> str:
    """The backend to use; prints the choice for 'auto'. Unusable backends raise BackendUnavailable."""
    from ..errors import BackendUnavailable

    try:
        chosen = backends.resolve(name)
    except NeurosimError:
        raise
    except Exception as exc:  # e.g. a CUDA driver error while probing the GPU: no traceback for that
        raise BackendUnavailable(f"backend {name!r} cannot run here: {type(exc).__name__}: {exc}") from None
    if name == "auto":
        why = backends.passed_over(chosen)
        print(f"backend: auto -> {chosen}" + (f" (not cupy: {why})" if why else ""))
    return chosen


def argument_error(exc: NetworkError, args: argparse.Namespace) -> NeurosimError:
    """A validation error of simulate() named by the file, key or option it came from (reads
    args.model, args.input, args.batch and args.trace)."""
    field = exc.field
    if field.startswith("inputs"):
        key = field[len("inputs."):]
        if args.input:
            return FileFormatError(args.input, key, exc.message)
        return CLIError(f"{args.model}: {exc.message}; pass --input IN.npz with an array under that key")
    if field.startswith("backend_options."):
        return CLIError(f"--backend-option {field[len('backend_options.'):]}: {exc.message}")
    if field == "steps":
        return CLIError(f"--steps {args.steps}: {exc.message}")
    if field == "batch":
        return CLIError(f"--batch {args.batch}: {exc.message}" + (f" ({args.input})" if args.input else ""))
    if field == "trace_limit":
        return CLIError(f"--trace {' '.join(args.trace)}: {exc.message} with --trace-limit (now "
                        f"{describe_bytes(args.trace_limit)})")
    if field.startswith("traces."):
        pop = field[len("traces."):]
        spec = next((t for t in args.trace if t.partition(":")[0] == pop), pop)
        return CLIError(f"--trace {spec}: {args.model}: {exc.message}")
    return exc

"""The ``neurosim`` command line (also ``python -m neurosim``).

Subcommands: simulate, info, raster, example, backends, demo, train; ``neurosim CMD --help`` explains
each. Bad input (any :class:`~neurosim.errors.NeurosimError`, a missing or unwritable file, a
usage error, a size that does not fit in memory) prints one line ``neurosim: error: ...`` on
stderr and exits with 2; Ctrl-C exits with 130. Every output file is written atomically, so an
interrupted run leaves no partial file; an output that is one of the command's inputs is refused
(neurosim.paths), and `cuba` and `demo` remove what a failed run wrote, with the directory if
they made it (a demo keeps it once training has saved a checkpoint).
Heavy modules (h5py, matplotlib, numba, the example networks) are imported only when needed.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from typing import Any, NoReturn, Optional, Sequence

import numpy as np

from . import __version__, atomic, backends, paths
from .errors import FileFormatError, NetworkError, NeurosimError

PROG = "neurosim"
FORMATS = ("neurosim.network", "neurosim.result")
CUBA_N, CUBA_SYN = 4000, 80  # the CUBA example's default size and mean outgoing synapses per neuron


class CLIError(NeurosimError):
    """A command-line argument or environment problem found by the CLI itself."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit code 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        where = f"{sub}: " if sub else ""
        self.exit(2, f"{PROG}: error: {where}{message} (see '{self.prog} --help')\n")


# ------------------------------------------------------------------------------ argument types


def _int_at_least(lo: int):
    """argparse type: a whole number >= `lo`; argparse prefixes the option, so a bad value reads
    ``argument --trial: expected a whole number >= 0, got 'x'``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < lo:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {lo}, got {text!r}")
        return value

    parse.__name__ = f"whole number >= {lo}"  # argparse names the type in some messages
    return parse


def seed_arg(text: str) -> int:
    """argparse type of every --seed: a whole number, 0 <= seed < 2**63 (neurosim.simulate.check_seed)."""
    from .simulate import check_seed

    try:
        return check_seed(int(text))
    except (ValueError, NetworkError):  # int() refused it, or check_seed did
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 and < 2**63, got {text!r}") from None


def _names(text: str) -> list[str]:
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


def _trace(text: str) -> str:
    pop, sep, var = text.partition(":")
    if not sep or not pop or var not in backends.TRACE_VARS:
        raise argparse.ArgumentTypeError(
            f"expected POPULATION:VARIABLE with VARIABLE one of {', '.join(backends.TRACE_VARS)}, got {text!r}")
    return text


# ------------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Spiking-network simulator: run saved networks, inspect files, "
                                            "plot rasters. Time unit: seconds; delays in whole steps.",
                     epilog="Errors print one line 'neurosim: error: ...' and exit with code 2.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("simulate", help="simulate a saved network and save the result",
                       description="Load MODEL.h5, simulate it for --steps steps of the model's dt, "
                                   "save the spikes (and traces) to --out and print a summary.")
    p.add_argument("model", metavar="MODEL.h5", help="network file written by neurosim.save or 'neurosim example'")
    p.add_argument("--steps", required=True, type=_int_at_least(1), metavar="T",
                   help="number of time steps to simulate (whole number >= 1; duration = steps * dt of the model)")
    p.add_argument("--input", metavar="IN.npz",
                   help="spikes for the model's SpikeInputs: a numpy .npz archive (np.savez) with one array "
                        "per SpikeInput, keyed by its name, shaped (T, n) or (T, B, n) with T >= --steps, "
                        "n the input's size and B trials; values 0/1 or bool. PoissonInputs are drawn from --seed")
    p.add_argument("--backend", default="numpy", choices=("numpy", "numba", "cupy", "auto"),
                   help="simulator: numpy (reference), numba (compiled CPU), cupy (NVIDIA GPU) or auto "
                        "(cupy if a GPU is usable, else numba if installed, else numpy; the choice is printed). "
                        "Default: numpy")
    p.add_argument("--backend-option", metavar="KEY=VALUE", type=key_value, action="append", default=[],
                   help="a setting of the chosen backend (repeatable), e.g. for cupy propagation=gather "
                        "(bitwise equal to numpy), propagation=matmul or graph_steps=0; 'neurosim backends' "
                        "lists each backend's options")
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"),
                   help="floating-point type of the state and weights (default: float64)")
    p.add_argument("--batch", type=_int_at_least(1), default=None, metavar="B",
                   help="number of independent trials B (default: B of the inputs, else 1)")
    p.add_argument("--seed", type=seed_arg, default=0, metavar="S",
                   help="seed of the Poisson inputs (whole number, 0 <= S < 2**63, default 0); the same seed gives "
                        "the same spikes on every backend")
    p.add_argument("--trace", metavar="POP:VAR", type=_trace, nargs="+", action="extend", default=[],
                   help=f"record a state variable of a population every step, e.g. exc:v; VAR is one of "
                        f"{', '.join(backends.TRACE_VARS)}; may be repeated")
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar on stderr")
    p.add_argument("--out", required=True, metavar="OUT.h5",
                   help="result file to write (HDF5; its directory must exist; replaced atomically)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("info", help="describe a network or result file",
                       description="Print what a neurosim HDF5 file holds: for a network, its populations, "
                                   "inputs, projections, dt and counts; for a result, spike counts, rates and "
                                   "timings. The kind is read from the file's root attribute 'format'.")
    p.add_argument("file", metavar="FILE.h5", help="a network (MODEL.h5) or result (OUT.h5) file")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("raster", help="plot a spike raster from a result file",
                       description="Draw the spikes of one trial (time in ms, populations stacked) above the "
                                   "population rates (Hz) and write a PNG.")
    p.add_argument("result", metavar="OUT.h5", help="result file written by 'neurosim simulate'")
    p.add_argument("--png", required=True, metavar="FILE.png", help="image to write (replaced atomically)")
    p.add_argument("--trial", type=_int_at_least(0), default=0, metavar="K",
                   help="which trial of the batch to draw (0-based, default 0)")
    p.add_argument("--populations", type=_names, metavar="A,B",
                   help="comma-separated populations (or inputs) to draw, bottom to top "
                        "(default: every neuron population)")
    p.add_argument("--max-points", type=_int_at_least(1), default=200_000, metavar="N",
                   help="draw at most this many spikes, evenly subsampled beyond it (default 200000)")
    p.set_defaults(func=cmd_raster)

    p = sub.add_parser("example", help="write a bundled example network",
                       description="Write an example network as a MODEL.h5 file. 'cuba': the CUBA benchmark "
                                   "(Vogels and Abbott 2005; 80% excitatory LIF neurons, dt 0.1 ms); "
                                   "'small_lif': the small saved model shipped in assets/small_lif.h5.")
    p.add_argument("name", choices=("cuba", "small_lif"), help="which example: cuba or small_lif")
    p.add_argument("--n", type=_int_at_least(10), default=None,
                   help=f"cuba only: number of neurons (>= 10, default {CUBA_N})")
    p.add_argument("--syn-per-neuron", type=_int_at_least(1), default=None, metavar="K",
                   help=f"cuba only: mean outgoing synapses per neuron, at most --n (default {CUBA_SYN}; "
                        f"weights scale by {CUBA_SYN}/this)")
    p.add_argument("--seed", type=seed_arg, default=None, metavar="S",
                   help="cuba only: seed of the connectivity and initial voltages (default 0)")
    p.add_argument("--out", required=True, metavar="MODEL.h5", help="network file to write (replaced atomically)")
    p.set_defaults(func=cmd_example)

    p = sub.add_parser("backends", help="list the simulation backends and whether each can run here",
                       description="List the backends (numpy, numba, cupy), whether each is usable on this "
                                   "machine (and why not), and which one --backend auto picks.")
    p.set_defaults(func=cmd_backends)

    p = sub.add_parser("cuba", help="build, simulate and plot the CUBA benchmark network in one go",
                       description="Build the CUBA network, simulate it (default 10000 steps of 0.1 ms = 1 s), "
                                   "and write model.h5, result.h5, raster.png and summary.md (rates, timings, "
                                   "backend, synaptic events, versions) into --out. A run that fails removes "
                                   "what it wrote, and the directory if it made it.")
    p.add_argument("--out", default=os.path.join("runs", "cuba"), metavar="DIR",
                   help="output directory, created if missing (default runs/cuba)")
    p.add_argument("--n", type=_int_at_least(CUBA_SYN), default=CUBA_N,
                   help=f"number of neurons (>= {CUBA_SYN}: each sends {CUBA_SYN} synapses on average; "
                        f"default {CUBA_N})")
    p.add_argument("--steps", type=_int_at_least(1), default=10_000, metavar="T",
                   help="number of 0.1 ms steps (default 10000 = 1 s)")
    p.add_argument("--backend", default="auto", choices=("numpy", "numba", "cupy", "auto"),
                   help="simulator (default auto: cupy if a GPU is usable, else numba, else numpy)")
    p.add_argument("--seed", type=seed_arg, default=0, metavar="S",
                   help="seed of the network's connectivity and initial voltages (default 0)")
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar on stderr")
    p.set_defaults(func=cmd_cuba)

    from training.cli_train import register  # defines arguments only; torch loads when it runs

    register(sub, _int_at_least(1))
    from mapping.cli_mapping import register as register_mapping  # peers load only when a command runs

    register_mapping(sub, _int_at_least(1))
    for command in sub.choices.values():  # one check of every --seed, also of the commands defined elsewhere
        for action in command._actions:
            if action.dest == "seed":
                action.type = seed_arg
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
        return int(args.func(args) or 0)
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


def _error(message: str) -> None:
    line = " ".join(str(message).split())  # exactly one line
    print(f"{PROG}: error: {line}", file=sys.stderr, flush=True)


def _os_message(exc: OSError) -> str:
    if isinstance(exc, FileExistsError) and exc.filename is not None and not os.path.isdir(exc.filename):
        return f"{exc.filename}: exists and is not a directory"  # e.g. a run directory that is a file
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------------- commands


def cmd_simulate(args: argparse.Namespace) -> int:
    from . import storage
    from .simulate import simulate

    paths.check_writable(args.out, "--out")
    paths.refuse_inputs_as_outputs([("--out", args.out)], [("MODEL.h5", args.model), ("--input", args.input)])
    network = storage.load(args.model)
    inputs = load_inputs(args.input) if args.input else {}
    name = _resolve_backend(args.backend)
    try:
        result = simulate(network, inputs, args.steps, batch=args.batch, backend=name, dtype=args.dtype,
                          seed=args.seed, traces=args.trace or None, progress=not args.no_progress,
                          backend_options=dict(args.backend_option))
    except NetworkError as exc:  # simulate validates the arguments; say it in the CLI's terms
        raise _argument_error(exc, args) from None
    storage.save_result(result, args.out)
    print(result.summary())
    print(f"wrote {args.out}")
    return 0


def _argument_error(exc: NetworkError, args: argparse.Namespace) -> NeurosimError:
    """A validation error of simulate() named by the file, key or option it came from."""
    field = exc.field
    if field.startswith("inputs"):
        key = field[len("inputs."):]
        if args.input:
            return FileFormatError(args.input, key, exc.message)
        return CLIError(f"{args.model}: {exc.message}; pass --input IN.npz with an array under that key")
    if field.startswith("backend_options."):
        return CLIError(f"--backend-option {field[len('backend_options.'):]}: {exc.message}")
    if field == "batch":
        return CLIError(f"--batch {args.batch}: {exc.message}" + (f" ({args.input})" if args.input else ""))
    if field.startswith("traces."):
        pop = field[len("traces."):]
        spec = next((t for t in args.trace if t.partition(":")[0] == pop), pop)
        return CLIError(f"--trace {spec}: {args.model}: {exc.message}")
    return exc


def cmd_info(args: argparse.Namespace) -> int:
    from . import storage

    kind = peek_format(args.file)
    if kind == "neurosim.network":
        net = storage.load(args.file)
        print(f"{args.file}: neurosim network")
        print(net.summary())
        max_delay = max((p.max_delay for p in net.projections), default=0)
        print(f"dt: {net.dt:g} s ({net.dt * 1e3:g} ms)")
        print(f"counts: {len(net.populations)} populations, {len(net.inputs)} inputs, "
              f"{len(net.projections)} projections, {net.n_neurons} neurons, {net.n_synapses} synapses, "
              f"max delay {max_delay} steps")
    else:
        res = storage.load_result(args.file)
        print(f"{args.file}: neurosim result")
        print(res.summary())
        print(f"dt: {res.dt:g} s; duration {res.steps * res.dt:g} s; seed {res.seed}")
        traced = [f"{p}:{v}" for p, vs in res.traces.items() for v in vs]
        print(f"traces: {', '.join(traced) if traced else 'none'}")
    return 0


def cmd_raster(args: argparse.Namespace) -> int:
    from . import plot, storage

    if os.path.splitext(args.png)[1].lower() != ".png":
        raise CLIError(f"--png {args.png}: expected a file name ending in .png (the image is written as PNG)")
    paths.check_writable(args.png, "--png")
    paths.refuse_inputs_as_outputs([("--png", args.png)], [("OUT.h5", args.result)])
    res = storage.load_result(args.result)
    if args.trial >= res.batch:
        raise CLIError(f"--trial {args.trial}: {args.result} has {res.batch} trial(s), expected 0..{res.batch - 1}")
    unknown = [p for p in args.populations or () if p not in res.spikes]
    if unknown:
        raise CLIError(f"--populations: {args.result} has no population or input named {unknown[0]!r} "
                       f"(has {', '.join(res.spikes)})")
    plot.raster(res, args.png, populations=args.populations, trial=args.trial, max_points=args.max_points,
                title=os.path.basename(args.result))
    print(f"wrote {args.png}")
    return 0


def cmd_example(args: argparse.Namespace) -> int:
    from . import storage

    given = [f"--{k.replace('_', '-')}" for k in ("n", "syn_per_neuron", "seed") if getattr(args, k) is not None]
    if args.name != "cuba" and given:
        raise CLIError(f"{given[0]}: example {args.name} takes no options but --out "
                       f"(--n, --syn-per-neuron and --seed are for cuba)")
    paths.check_writable(args.out, "--out")
    if args.name == "cuba":
        n = CUBA_N if args.n is None else args.n
        k = CUBA_SYN if args.syn_per_neuron is None else args.syn_per_neuron
        if k > n:
            default = " (the default)" if args.syn_per_neuron is None else ""
            raise CLIError(f"--syn-per-neuron {k}{default}: more than --n {n}, the number of neurons each neuron "
                           f"can connect to; expected at most {n}")
        net = _cuba(n, k, 0 if args.seed is None else args.seed)
    else:
        asset = _asset_path("small_lif.h5")
        paths.refuse_inputs_as_outputs([("--out", args.out)], [("the bundled example", asset)])
        net = storage.load(asset)
    storage.save(net, args.out)
    print(net.summary())
    print(f"wrote {args.out}")
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    status = backends.available()
    width = max(len(n) for n in status)
    for name, reason in status.items():
        print(f"{name:<{width}}  {'usable' if not reason else 'unavailable: ' + reason}")
    for name in status:
        try:
            options = getattr(backends.load(name), "OPTIONS", {})
        except NeurosimError:
            options = {}
        for key, text in options.items():
            print(f"{name} option {key}: {text}")
    print(f"auto -> {backends.resolve('auto')}")
    return 0


def cmd_cuba(args: argparse.Namespace) -> int:
    from . import plot, storage
    from .simulate import simulate

    out = args.out
    paths.check_directory(out, "--out")  # every check before the directory is made
    name = _resolve_backend(args.backend)
    files = {k: os.path.join(out, f) for k, f in
             (("model", "model.h5"), ("result", "result.h5"), ("raster", "raster.png"), ("summary", "summary.md"))}
    with paths.output_directory(out, "--out"):  # removed again, with what it got, if the run fails
        paths.check_writable(files["summary"], "--out")
        t0 = time.perf_counter()
        net = _cuba(args.n, CUBA_SYN, args.seed)
        t_build = time.perf_counter() - t0
        print(f"network: {net.n_neurons} neurons, {net.n_synapses} synapses, dt {net.dt * 1e3:g} ms")
        result = simulate(net, None, args.steps, backend=name, seed=args.seed, progress=not args.no_progress)
        t1 = time.perf_counter()  # files are written once the simulation has run
        storage.save(net, files["model"])
        storage.save_result(result, files["result"])
        plot.raster(result, files["raster"], title=f"CUBA, {net.n_neurons} neurons, {name}")
        events = synaptic_events(net, result)
        t_files = time.perf_counter() - t1
        stages = {"build network": t_build, "save model and result, plot raster": t_files,
                  "cuba wall clock": time.perf_counter() - t0}
        atomic.write_text(files["summary"], cuba_summary(net, result, events, stages, files))
    print(result.summary())
    print(f"synaptic events: {events} ({events / max(result.timings['run'], 1e-12):.3g} per second of run time)")
    for key in ("model", "result", "raster", "summary"):
        print(f"wrote {files[key]}")
    return 0


# ----------------------------------------------------------------------------------- helpers


def peek_format(path: str) -> str:
    """The root attribute 'format' of a neurosim HDF5 file ('neurosim.network' or 'neurosim.result')."""
    import h5py

    from .storage import attr_text

    problem = paths.file_problem(path)
    if problem:
        raise FileFormatError(path, "", problem)
    try:
        with h5py.File(path, "r") as f:
            return attr_text(path, f, "format", FORMATS)  # type-checked before it is read
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        if isinstance(exc, FileFormatError):
            raise
        raise FileFormatError(path, "", f"not a readable HDF5 file ({' '.join(str(exc).split())})") from None


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


def synaptic_events(network: Any, result: Any) -> int:
    """Synapses driven by the spikes of the run: sum over spikes of the sender's out-degree."""
    total = 0
    for proj in network.projections:
        spikes = result.spikes.get(proj.pre)
        if spikes is None or not len(spikes):
            continue
        csr, _ = proj.to_csr()
        degree = np.diff(np.asarray(csr.indptr))
        total += int(degree[np.asarray(spikes.index)].sum())
    return total


def cuba_summary(net: Any, result: Any, events: int, stages: dict[str, float], files: dict[str, str]) -> str:
    """summary.md of `neurosim cuba`: the run, rates per population, timings, versions."""
    import h5py

    sim_s = result.steps * result.dt
    run = result.timings.get("run", float("nan"))
    lines = [
        f"# neurosim cuba: CUBA network, {net.n_neurons} neurons, {sim_s:g} s",
        "",
        f"- network: `{net.name}`, {net.n_neurons} LIF neurons, {net.n_synapses} synapses, "
        f"dt = {net.dt * 1e3:g} ms ({os.path.basename(files['model'])})",
        f"- simulation: {result.steps} steps ({sim_s:g} s of model time), {result.batch} trial(s), "
        f"backend **{result.backend}** ({result.dtype}), seed {result.seed} ({os.path.basename(files['result'])})",
        f"- synaptic events: {events} ({events / max(run, 1e-12):.3g} per second of run time); "
        f"steps per second: {result.steps / max(run, 1e-12):.3g}",
        f"- raster: {os.path.basename(files['raster'])}",
        "",
        "## Rates per population",
        "",
        "| population | neurons | spikes | rate (Hz) |",
        "|---|---:|---:|---:|",
    ]
    for name, spikes in result.spikes.items():
        lines.append(f"| {name} | {spikes.size} | {len(spikes)} | {spikes.rate_hz(result.dt):.2f} |")
    lines += ["", "## Timings (wall clock, seconds)", "", "| stage | s |", "|---|---:|"]
    for key in ("setup", "run", "record", "total"):
        if key in result.timings:
            lines.append(f"| simulate: {key} | {result.timings[key]:.3f} |")
    lines += [f"| {key} | {value:.3f} |" for key, value in stages.items()]
    lines += ["", "## Versions", "",
              f"- neurosim {__version__}, Python {platform.python_version()}, numpy {np.__version__}, "
              f"h5py {h5py.__version__}" + _numba_version(result.backend),
              f"- machine: {platform.machine()}, {platform.system()} {platform.release()}, "
              f"{os.cpu_count()} CPUs", ""]
    return "\n".join(lines)


def _numba_version(backend: str) -> str:
    if backend != "numba":
        return ""
    try:
        import numba

        return f", numba {numba.__version__}"
    except ImportError:  # pragma: no cover - the backend would not have run
        return ""


def _resolve_backend(name: str) -> str:
    """The backend to use; prints the choice for 'auto'. Unusable backends raise BackendUnavailable."""
    from .errors import BackendUnavailable

    try:
        chosen = backends.resolve(name)
    except NeurosimError:
        raise
    except Exception as exc:  # e.g. a CUDA driver error while probing the GPU: no traceback for that
        raise BackendUnavailable(f"backend {name!r} cannot run here: {type(exc).__name__}: {exc}") from None
    if name == "auto":
        print(f"backend: auto -> {chosen}")
    return chosen


def _cuba(n: int, syn_per_neuron: int, seed: int) -> Any:
    try:
        from assets.cuba import cuba_network
    except ImportError as exc:
        raise CLIError(f"the CUBA example needs the 'assets' package of neurosim (assets/cuba.py): {exc}") from None
    return cuba_network(n=n, syn_per_neuron=syn_per_neuron, seed=seed)


def _asset_path(name: str) -> str:
    try:
        import assets
    except ImportError as exc:
        raise CLIError(f"the examples need the 'assets' package of neurosim: {exc}") from None
    path = os.path.join(os.path.dirname(os.path.abspath(assets.__file__)), name)
    if not os.path.exists(path):
        raise CLIError(f"{path}: bundled example file is missing from this installation")
    return path


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

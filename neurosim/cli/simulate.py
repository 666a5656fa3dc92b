"""The simulator's commands: simulate, info, raster, example, backends and cuba (their arguments
and what they run). Heavy modules (h5py, matplotlib, numba, the example networks) load only
when a command runs."""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from .. import atomic, backends, paths
from ..errors import FileFormatError, NetworkError, NeurosimError
from . import examples
from .common import (CLIError, argument_error, int_at_least, key_value, names_arg, resolve_backend, seed_arg,
                     size_arg, trace_arg)
from .examples import CUBA_N, CUBA_SYN
from .inputs import load_inputs

FORMATS = ("neurosim.network", "neurosim.result")
EXAMPLE_STEPS, EXAMPLE_RATE = 1000, 50.0  # the default input of an example with SpikeInputs
TRACE_LIMIT = 10**9  # bytes of traces `simulate --trace` records without --trace-limit


def register(sub: Any) -> None:
    """Add simulate, info, raster, example, backends and cuba to `sub` (argparse subparsers of the CLI)."""
    p = sub.add_parser("simulate", help="simulate a saved network and save the result",
                       description="Load MODEL.h5, simulate it for --steps steps of the model's dt, "
                                   "save the spikes (and traces) to --out and print a summary.")
    p.add_argument("model", metavar="MODEL.h5", help="network file written by neurosim.save or 'neurosim example'")
    p.add_argument("--steps", required=True, type=int_at_least(1), metavar="T",
                   help="number of time steps to simulate (whole number >= 1; duration = steps * dt of the model)")
    p.add_argument("--input", metavar="IN.npz",
                   help="spikes for the model's SpikeInputs: a numpy .npz archive (np.savez) with one array "
                        "per SpikeInput, keyed by its name, shaped (T, n) or (T, B, n) with T >= --steps, "
                        "n the input's size and B trials; values 0/1 or bool. PoissonInputs are drawn from --seed")
    p.add_argument("--backend", default="auto", choices=("numpy", "numba", "cupy", "auto"),
                   help="simulator: numpy (reference), numba (compiled CPU), cupy (NVIDIA GPU) or auto "
                        "(cupy if a GPU is usable, else numba if installed, else numpy; the choice is printed). "
                        "Default: auto, as for cuba and demo")
    p.add_argument("--backend-option", metavar="KEY=VALUE", type=key_value, action="append", default=[],
                   help="a setting of the chosen backend (repeatable), e.g. for cupy propagation=gather "
                        "(bitwise equal to numpy), propagation=matmul or graph_steps=0; 'neurosim backends' "
                        "lists each backend's options")
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"),
                   help="floating-point type of the state and weights (default: float64)")
    p.add_argument("--batch", type=int_at_least(1), default=None, metavar="B",
                   help="number of independent trials B (default: B of the inputs, else 1)")
    p.add_argument("--seed", type=seed_arg, default=0, metavar="S",
                   help="seed of the Poisson inputs (whole number, 0 <= S < 2**63, default 0); the same seed gives "
                        "the same spikes on every backend")
    p.add_argument("--trace", metavar="POP:VAR[:NEURONS][:STRIDE]", type=trace_arg, nargs="+", action="extend",
                   default=[],
                   help=f"record a state variable of a population, e.g. exc:v (every neuron, every step), "
                        f"exc:v:0-9,20,30-40 (those neurons) or exc:v:0-99:10 (every 10th step from step 0; "
                        f"exc:v::10 for every neuron); VAR is one of {', '.join(backends.TRACE_VARS)}; one choice "
                        f"of neurons and stride per population; may be repeated. 'neurosim plot-traces' draws them")
    p.add_argument("--trace-limit", type=size_arg, default=TRACE_LIMIT, metavar="SIZE",
                   help="refuse, before running, traces that would take more than SIZE, e.g. 500MB or 4GB "
                        f"(default {TRACE_LIMIT // 10**9} GB); the estimate is printed for recordings over 10 MB")
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar on stderr")
    p.add_argument("--metrics", nargs="?", const="-", default=None, metavar="FILE.json",
                   help="print NeuroBench's metrics of the run (synaptic operations, activation and "
                        "connection sparsity, parameters, footprint; neurosim.metrics) and, given a "
                        "file, write them there as JSON")
    p.add_argument("--out", required=True, metavar="OUT.h5",
                   help="result file to write (HDF5; its directory must exist; replaced atomically)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("info", help="describe a network, result, NIR or NetX file",
                       description="Print what a neurosim HDF5 file holds: for a network, its populations, "
                                   "inputs, projections, dt and counts; for a result, spike counts, rates and "
                                   "timings. The kind is read from the file's root attribute 'format'. A NIR "
                                   "graph (/node group) lists its nodes and edges, a lava-dl NetX file (/layer "
                                   "group) its layers.")
    p.add_argument("file", metavar="FILE", help="a network (MODEL.h5), result (OUT.h5), NIR or NetX file")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("raster", help="plot a spike raster from a result file",
                       description="Draw the spikes of one trial (time in ms, populations stacked) above the "
                                   "population rates (Hz) and write a PNG.")
    p.add_argument("result", metavar="OUT.h5", help="result file written by 'neurosim simulate'")
    p.add_argument("--png", required=True, metavar="FILE.png", help="image to write (replaced atomically)")
    p.add_argument("--trial", type=int_at_least(0), default=0, metavar="K",
                   help="which trial of the batch to draw (0-based, default 0)")
    p.add_argument("--populations", type=names_arg, metavar="A,B",
                   help="comma-separated populations (or inputs) to draw, bottom to top "
                        "(default: every neuron population)")
    p.add_argument("--max-points", type=int_at_least(1), default=200_000, metavar="N",
                   help="draw at most this many spikes, evenly subsampled beyond it (default 200000)")
    p.set_defaults(func=cmd_raster)

    p = sub.add_parser("example", help="write a bundled example network",
                       description="Write an example network as a MODEL.h5 file. 'cuba': the CUBA benchmark "
                                   "(Vogels and Abbott 2005; 80% excitatory LIF neurons, dt 0.1 ms; Poisson-free, "
                                   "needs no input); 'small_lif': the small saved model shipped in "
                                   "assets/small_lif.h5, written with a default input beside it, MODEL_input.npz "
                                   f"({EXAMPLE_STEPS} steps of {EXAMPLE_RATE:g} Hz random spikes for each "
                                   "SpikeInput, from --seed), so that 'neurosim simulate MODEL.h5 --steps "
                                   f"{EXAMPLE_STEPS} --input MODEL_input.npz --out OUT.h5' runs it.")
    p.add_argument("name", choices=("cuba", "small_lif"), help="which example: cuba or small_lif")
    p.add_argument("--n", type=int_at_least(10), default=None,
                   help=f"cuba only: number of neurons (>= 10, default {CUBA_N})")
    p.add_argument("--syn-per-neuron", type=int_at_least(1), default=None, metavar="K",
                   help=f"cuba only: mean outgoing synapses per neuron, at most --n (default {CUBA_SYN}, or --n "
                        f"when --n is smaller; weights scale by {CUBA_SYN}/this)")
    p.add_argument("--seed", type=seed_arg, default=None, metavar="S",
                   help="cuba: seed of the connectivity and initial voltages; small_lif: seed of its default "
                        "input's spikes (default 0)")
    p.add_argument("--out", required=True, metavar="MODEL.h5", help="network file to write (replaced atomically)")
    p.set_defaults(func=cmd_example)

    p = sub.add_parser("backends", help="list the simulation backends and whether each can run here",
                       description="List the backends (numpy, numba, cupy), whether each is usable on this "
                                   "machine (and why not), which one --backend auto picks, and where "
                                   "training's --device auto runs (CUDA or the CPU, and why).")
    p.set_defaults(func=cmd_backends)

    p = sub.add_parser("cuba", help="build, simulate and plot the CUBA benchmark network in one go",
                       description="Build the CUBA network, simulate it (default 10000 steps of 0.1 ms = 1 s), "
                                   "and write model.h5, result.h5, raster.png and summary.md (rates, timings, "
                                   "backend, synaptic events, versions) into --out. A run that fails removes "
                                   "what it wrote, and the directory if it made it.")
    p.add_argument("--out", default=os.path.join("runs", "cuba"), metavar="DIR",
                   help="output directory, created if missing (default runs/cuba)")
    p.add_argument("--n", type=int_at_least(CUBA_SYN), default=CUBA_N,
                   help=f"number of neurons (>= {CUBA_SYN}: each sends {CUBA_SYN} synapses on average; "
                        f"default {CUBA_N})")
    p.add_argument("--steps", type=int_at_least(1), default=10_000, metavar="T",
                   help="number of 0.1 ms steps (default 10000 = 1 s)")
    p.add_argument("--backend", default="auto", choices=("numpy", "numba", "cupy", "auto"),
                   help="simulator (default auto: cupy if a GPU is usable, else numba, else numpy)")
    p.add_argument("--seed", type=seed_arg, default=0, metavar="S",
                   help="seed of the network's connectivity and initial voltages (default 0)")
    p.add_argument("--no-progress", action="store_true", help="do not show the progress bar on stderr")
    p.set_defaults(func=cmd_cuba)


def cmd_simulate(args: argparse.Namespace) -> int:
    """`neurosim simulate`: simulate MODEL.h5 and write the result file."""
    from .. import storage
    from ..simulate import simulate

    paths.check_writable(args.out, "--out")
    outputs = [("--out", args.out)] + ([("--metrics", args.metrics)] if args.metrics not in (None, "-") else [])
    for flag, path in outputs[1:]:
        paths.check_writable(path, flag)
    paths.refuse_inputs_as_outputs(outputs, [("MODEL.h5", args.model), ("--input", args.input)])
    network = storage.load(args.model)
    inputs = load_inputs(args.input) if args.input else {}
    name = resolve_backend(args.backend)
    try:
        if args.trace:
            print_trace_estimate(network, inputs, args)
        result = simulate(network, inputs, args.steps, batch=args.batch, backend=name, dtype=args.dtype,
                          seed=args.seed, traces=args.trace or None, progress=not args.no_progress,
                          backend_options=dict(args.backend_option), trace_limit=args.trace_limit)
    except NetworkError as exc:  # simulate validates the arguments; say it in the CLI's terms
        raise argument_error(exc, args) from None
    storage.save_result(result, args.out)
    print(result.summary())
    if args.metrics is not None:
        from ..metrics import neurobench_metrics

        metrics = neurobench_metrics(network, result)
        print("NeuroBench metrics (per trial):")
        print(metrics.table())
        if args.metrics != "-":
            atomic.write_bytes(args.metrics, (json.dumps(metrics.as_dict(), indent=2) + "\n").encode())
            print(f"wrote {args.metrics}")
    print(f"wrote {args.out}")
    return 0


def print_trace_estimate(network: Any, inputs: Any, args: argparse.Namespace) -> None:
    """Print the size the requested traces will take when it is over 10 MB (before the run)."""
    import numpy as np

    from ..run import describe_run, trace_selection
    from ..simulate import check_trace_size
    from ..traces import describe_bytes

    run = describe_run(network, inputs, args.steps, batch=args.batch, traces=args.trace, selectable=True)
    need = check_trace_size(network, run.traces, trace_selection(network.populations, args.trace), run.steps,
                            run.batch, np.dtype(args.dtype).itemsize, None)
    if need > 10**7:
        print(f"traces: about {describe_bytes(need)} ({', '.join(args.trace)}; limit --trace-limit "
              f"{describe_bytes(args.trace_limit)})")


def cmd_info(args: argparse.Namespace) -> int:
    """`neurosim info`: describe a network or result file."""
    from .. import storage
    from .sniff import describe_foreign, file_kind

    kind = file_kind(args.file)
    if kind in ("nir", "netx"):  # read with the mapping package's checked readers

        print(describe_foreign(args.file, kind))
        return 0
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
        traced = [f"{p}:{v}" + (f":{res.trace_selection[p].text()}" if p in res.trace_selection else "")
                  for p, vs in res.traces.items() for v in vs]
        print(f"traces: {', '.join(traced) if traced else 'none'}")
    return 0


def cmd_raster(args: argparse.Namespace) -> int:
    """`neurosim raster`: plot one trial of a result file as a PNG."""
    from .. import plot, storage

    if os.path.splitext(args.png)[1].lower() != ".png":
        raise CLIError(f"--png {args.png}: expected a file name ending in .png (the image is written as PNG)")
    paths.check_writable(args.png, "--png")
    paths.refuse_inputs_as_outputs([("--png", args.png)], [("OUT.h5", args.result)])
    from .sniff import KINDS, file_kind

    kind = file_kind(args.result)
    if kind != "neurosim.result" and kind in KINDS:
        model = args.result if kind == "neurosim.network" else "MODEL.h5"
        first = ("" if kind == "neurosim.network" else
                 f"import it first ('neurosim import {args.result} --from {kind} --dt SECONDS --out MODEL.h5'), then ")
        raise CLIError(f"{args.result}: {KINDS[kind]}, not a result; {first}simulate it with 'neurosim simulate "
                       f"{model} --steps T --out OUT.h5' and draw OUT.h5 with 'neurosim raster OUT.h5 --png "
                       f"{args.png}'")
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
    """`neurosim example`: write a bundled example network."""
    from .. import storage

    given = [f"--{k.replace('_', '-')}" for k in ("n", "syn_per_neuron") if getattr(args, k) is not None]
    if args.name != "cuba" and given:
        raise CLIError(f"{given[0]}: example {args.name} takes no options but --out and --seed "
                       f"(--n and --syn-per-neuron are for cuba)")
    paths.check_writable(args.out, "--out")
    if args.name == "cuba":
        n = CUBA_N if args.n is None else args.n
        k = min(CUBA_SYN, n) if args.syn_per_neuron is None else args.syn_per_neuron
        if k > n:
            default = " (the default)" if args.syn_per_neuron is None else ""
            raise CLIError(f"--syn-per-neuron {k}{default}: more than --n {n}, the number of neurons each neuron "
                           f"can connect to; expected at most {n}")
        net = examples.build_cuba(n, k, 0 if args.seed is None else args.seed)
    else:
        asset = examples.asset_path("small_lif.h5")
        paths.refuse_inputs_as_outputs([("--out", args.out)], [("the bundled example", asset)])
        net = storage.load(asset)
    spikes = examples.default_input(net, EXAMPLE_STEPS, EXAMPLE_RATE, 0 if args.seed is None else args.seed)
    npz = os.path.splitext(args.out)[0] + "_input.npz"
    if spikes:
        paths.check_writable(npz, "--out (its input file)")
        paths.refuse_inputs_as_outputs([("--out (its input file)", npz)], [("--out", args.out)])
    storage.save(net, args.out)
    print(net.summary())
    print(f"wrote {args.out}")
    if spikes:
        import io

        import numpy as np

        buf = io.BytesIO()
        np.savez(buf, **spikes)
        atomic.write_bytes(npz, buf.getvalue())
        print(f"wrote {npz}: default input, {EXAMPLE_STEPS} steps of {EXAMPLE_RATE:g} Hz random spikes for "
              f"{', '.join(spikes)}; run it with: neurosim simulate {args.out} --steps {EXAMPLE_STEPS} "
              f"--input {npz} --out result.h5")
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    """`neurosim backends`: list the backends, their options and what auto picks."""
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
    print(training_device())
    return 0


def training_device() -> str:
    """One line: where ``neurosim train --device auto`` would run, and why not on a GPU."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return "training: torch is not installed (pip install 'neurosim[train]')"
    import torch

    cuda = torch.version.cuda
    if torch.cuda.is_available():
        return f"training: --device auto -> cuda ({torch.cuda.get_device_name(0)}; torch {torch.__version__}, CUDA {cuda})"
    why = (f"torch {torch.__version__} is a CPU build" if cuda is None else
           f"torch {torch.__version__} (CUDA {cuda}) sees no GPU")
    return f"training: --device auto -> cpu ({why})"


def cmd_cuba(args: argparse.Namespace) -> int:
    """`neurosim cuba`: build, simulate and plot the CUBA network into a directory."""
    from .. import plot, storage
    from ..simulate import simulate

    out = args.out
    paths.check_directory(out, "--out")  # every check before the directory is made
    name = resolve_backend(args.backend)
    files = {k: os.path.join(out, f) for k, f in
             (("model", "model.h5"), ("result", "result.h5"), ("raster", "raster.png"), ("summary", "summary.md"))}
    with paths.output_directory(out, "--out"):  # removed again, with what it got, if the run fails
        paths.check_writable(files["summary"], "--out")
        t0 = time.perf_counter()
        net = examples.build_cuba(args.n, CUBA_SYN, args.seed)
        t_build = time.perf_counter() - t0
        print(f"network: {net.n_neurons} neurons, {net.n_synapses} synapses, dt {net.dt * 1e3:g} ms")
        try:
            result = simulate(net, None, args.steps, backend=name, seed=args.seed, progress=not args.no_progress)
        except NetworkError as exc:  # e.g. --steps whose recording would not fit in memory
            raise (CLIError(f"--steps {args.steps}: {exc.message}") if exc.field == "steps" else exc) from None
        t1 = time.perf_counter()  # files are written once the simulation has run
        storage.save(net, files["model"])
        storage.save_result(result, files["result"])
        plot.raster(result, files["raster"], title=f"CUBA, {net.n_neurons} neurons, {name}")
        events = examples.synaptic_events(net, result)
        t_files = time.perf_counter() - t1
        stages = {"build network": t_build, "save model and result, plot raster": t_files,
                  "cuba wall clock": time.perf_counter() - t0}
        atomic.write_text(files["summary"], examples.cuba_summary(net, result, events, stages, files))
    print(result.summary())
    print(f"synaptic events: {events} ({events / max(result.timings['run'], 1e-12):.3g} per second of run time)")
    for key in ("model", "result", "raster", "summary"):
        print(f"wrote {files[key]}")
    return 0


def peek_format(path: str) -> str:
    """The root attribute 'format' of a neurosim HDF5 file ('neurosim.network' or 'neurosim.result')."""
    import h5py

    from ..storage import attr_text

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


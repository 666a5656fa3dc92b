"""`neurosim export`, `neurosim import` and `neurosim crosscheck` (peer packages load only when run)."""
from __future__ import annotations

import argparse
import os
from typing import Any

EXPORT_FORMATS = ("nir", "netx", "brian2")
IMPORT_FORMATS = ("nir", "netx")


def register(sub: Any, positive_int: Any) -> None:
    """Add the mapping subcommands to `sub` (argparse subparsers of the neurosim CLI)."""
    from .agreement import METRICS, TARGETS

    p = sub.add_parser(
        "export", help="export a network to NIR, lava-dl NetX or a Brian2 script",
        description="Write MODEL.h5 in another tool's format. nir: a NIR graph in HDF5 (read by snnTorch, "
                    "Norse, SpikingJelly, lava-dl...), with the discretisation named by --discretization; "
                    "netx: lava-dl NetX HDF5 for Loihi (fixed-point quantised; the quantisation error is "
                    "printed); brian2: a standalone Python script (and an .npz of its data beside it) that "
                    "reproduces neurosim's spikes. Nothing is written when the network cannot be expressed.")
    p.add_argument("model", metavar="MODEL.h5", help="network file written by neurosim")
    p.add_argument("--to", required=True, choices=EXPORT_FORMATS, help="target format")
    p.add_argument("--out", required=True, metavar="PATH", help="file to write (replaced atomically)")
    p.add_argument("--discretization", default="euler", choices=("euler", "exact"),
                   help="nir: how per-step decays become time constants: euler (beta = 1 - dt/tau, as snnTorch "
                        "exports) or exact (beta = exp(-dt/tau)); default euler")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "import", help="import a NIR graph or a NetX file as a neurosim network",
        description="Read a NIR graph (HDF5) or a lava-dl NetX file and write it as a neurosim MODEL.h5. "
                    "NIR has no time step: give the dt the graph was exported with (snnTorch and "
                    "SpikingJelly use 1e-4 s, Norse 1e-3 s).")
    p.add_argument("file", metavar="FILE", help="the NIR graph or NetX HDF5 file")
    p.add_argument("--from", dest="fmt", required=True, choices=IMPORT_FORMATS, help="format of FILE")
    p.add_argument("--dt", required=True, type=float, metavar="SECONDS", help="time step in seconds")
    p.add_argument("--discretization", default="euler", choices=("euler", "exact"),
                   help="nir: how time constants become per-step decays (default euler)")
    p.add_argument("--out", required=True, metavar="MODEL.h5", help="network file to write (replaced atomically)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser(
        "crosscheck", help="run one network on several simulators and report where they disagree",
        description="Simulate MODEL.h5 on neurosim's NumPy backend (float64, the reference) and on every "
                    "target of --against with the same input (Poisson inputs are drawn once and handed "
                    "to every target), then write DIR/report.md, DIR/agreement.csv and one raster and "
                    "membrane overlay PNG per target. lava-fixed is compared bit for bit with neurosim's "
                    "fixed-point mode ('fixed', added automatically) and approximately with the float "
                    "reference. Exit code 1 when the worst --metric agreement is below --min-agreement.")
    p.add_argument("model", metavar="MODEL.h5", help="network file written by neurosim")
    p.add_argument("--against", default="brian2,lava-float,lava-fixed", metavar="T1,T2",
                   help=f"comma-separated targets among {', '.join(TARGETS)} (default brian2,lava-float,lava-fixed)")
    p.add_argument("--steps", required=True, type=positive_int, metavar="T", help="number of steps")
    p.add_argument("--input", metavar="IN.npz", help="spikes for the SpikeInputs, as for 'neurosim simulate'")
    p.add_argument("--seed", type=int, default=0, metavar="S",  # neurosim.cli makes every --seed parse with seed_arg
                   help="seed of the Poisson inputs (whole number, 0 <= S < 2**63, default 0)")
    p.add_argument("--report", required=True, metavar="DIR", help="report directory (created if missing)")
    p.add_argument("--metric", default="bins", choices=METRICS,
                   help="agreement measure for --min-agreement: bins (identical (step, neuron) bins), spikes "
                        "(exact spike-time agreement) or count (spike-count agreement); default bins")
    p.add_argument("--min-agreement", type=float, default=None, metavar="X",
                   help="fail (exit 1) when the worst agreement over the exact comparisons is below X in [0, 1], "
                        "when a target was skipped, or when no exact comparison was made (fixed and the "
                        "comparisons with the float reference of lava-fixed are quantised: reported, not held "
                        "to the bar)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_crosscheck, batch=None, trace=[])  # read by neurosim.cli._argument_error

    from .pipeline import DemoConfig

    d = DemoConfig()
    p = sub.add_parser(
        "demo", help="the main job: train an LSNN, simulate, export, cross-check, write a report",
        description="Train a recurrent ALIF network (LSNN) on a bundled task, simulate the trained network "
                    "on the test set in neurosim (CuPy on a GPU, else numba or NumPy), export it to NIR, "
                    "NetX and a Brian2 script, cross-check it in Brian2 and Lava (floating and fixed point) "
                    "and write DIR/report.md and DIR/report.html (training curve, accuracy, rasters of "
                    "every simulator, agreement table, quantisation error, timings, versions). Exit code 1 "
                    "when the task bar or exact cross-check agreement is not reached (a skipped target, or no "
                    "exact comparison, counts as not reached). A failed run removes the directory it created, "
                    "unless training already saved a checkpoint.")
    p.add_argument("--out", default=os.path.join("runs", "demo"), metavar="DIR",
                   help="run directory, created if missing (default runs/demo)")
    p.add_argument("--task", default=d.task, help=f"bundled task (default {d.task})")
    p.add_argument("--rule", default=d.rule,
                   help=f"learning rule: bptt, ottt, eprop or ratebp, as for 'neurosim train' (default {d.rule})")
    p.add_argument("--hidden", type=positive_int, default=d.hidden, metavar="N",
                   help=f"hidden ALIF neurons (default {d.hidden})")
    p.add_argument("--epochs", type=positive_int, default=d.epochs, metavar="N",
                   help=f"training epochs (default {d.epochs})")
    p.add_argument("--n-train", type=positive_int, default=None, metavar="N",
                   help="training samples (default: 2048 for store_recall, whose 512 overfit; else the task's)")
    p.add_argument("--n-test", type=positive_int, default=None, metavar="N", help="test samples (task default)")
    p.add_argument("--n-check", type=positive_int, default=d.n_check, metavar="N",
                   help=f"test trials run in every cross-check target (default {d.n_check})")
    p.add_argument("--against", default=",".join(d.targets), metavar="T1,T2",
                   help=f"cross-check targets (default {','.join(d.targets)})")
    p.add_argument("--backend", default=d.backend, choices=("numpy", "numba", "cupy", "auto"),
                   help="neurosim backend for the test-set simulation (default auto)")
    p.add_argument("--seed", type=int, default=d.seed, metavar="S",
                   help="seed of data and weights (whole number, 0 <= S < 2**63, default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from neurosim import paths
    from neurosim.cli import _resolve_backend
    from neurosim.errors import NetworkError, NeurosimError

    from .agreement import parse_targets
    from .pipeline import DemoConfig, check_bar, run_demo

    try:
        targets = tuple(parse_targets(args.against))
    except NetworkError as exc:
        raise NeurosimError(f"--against: {exc.message}") from None
    from training.rules import RULE_NAMES
    from training.tasks import TASKS

    if args.task not in TASKS:  # checked before anything is created
        raise NeurosimError(f"--task {args.task}: expected one of {', '.join(sorted(TASKS))}")
    rules = [r for r in RULE_NAMES if r not in ("tbptt", "budgeted")]  # those need --k / --budget
    if args.rule not in rules:
        raise NeurosimError(f"--rule {args.rule}: the demo trains with one of {', '.join(rules)} (for other rules "
                            "use 'neurosim train')")
    paths.check_directory(args.out, "--out")
    _resolve_backend(args.backend)  # an unusable backend fails now, not after training
    defaults = DemoConfig()
    config = DemoConfig(task=args.task, rule=args.rule, hidden=args.hidden, epochs=args.epochs,
                        n_train=args.n_train, n_test=args.n_test, n_check=args.n_check, targets=targets,
                        backend=args.backend, seed=args.seed, lr=defaults.lr)
    # a failure removes what the run created, unless training already saved a checkpoint (resumable)
    with paths.output_directory(args.out, "--out", keep=("checkpoint.pt",)):
        result = run_demo(config, args.out, progress=not args.no_progress)
    problems = check_bar(result)
    for p in problems:
        print(f"demo: {p}")
    return 1 if problems else 0


def cmd_export(args: argparse.Namespace) -> int:
    from neurosim import paths, storage

    paths.check_writable(args.out, "--out")
    outputs = [("--out", args.out)]
    if args.to == "brian2":  # the script's data file is written beside it
        outputs.append(("--out (its .npz)", os.path.splitext(args.out)[0] + ".npz"))
    paths.refuse_inputs_as_outputs(outputs, [("MODEL.h5", args.model)])
    network = storage.load(args.model)
    if args.to == "nir":
        from .nir_graph import write_nir

        write_nir(network, args.out, discretization=args.discretization)
    elif args.to == "netx":
        from .netx import to_netx

        report = to_netx(network, args.out)
        print(report)
    else:
        from .brian2_export import write_brian2_script

        write_brian2_script(network, args.out)
    print(f"wrote {args.out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from neurosim import paths, storage
    from neurosim.errors import NeurosimError

    if not (args.dt > 0 and args.dt < float("inf")):
        raise NeurosimError(f"--dt: expected a time step > 0 in seconds, got {args.dt}")
    paths.check_writable(args.out, "--out")
    paths.refuse_inputs_as_outputs([("--out", args.out)], [("FILE", args.file)])
    if args.fmt == "nir":
        from .nir_graph import read_nir

        network = read_nir(args.file, args.dt, discretization=args.discretization)
    else:
        from .netx import read_netx

        network = read_netx(args.file, args.dt)
    storage.save(network, args.out)
    print(network.summary())
    print(f"wrote {args.out}")
    return 0


def cmd_crosscheck(args: argparse.Namespace) -> int:
    from neurosim import paths, storage
    from neurosim.cli import _argument_error, load_inputs
    from neurosim.errors import NetworkError, NeurosimError

    from .agreement import crosscheck, parse_targets, run_order

    if args.min_agreement is not None and not 0.0 <= args.min_agreement <= 1.0:
        raise NeurosimError(f"--min-agreement: expected a fraction in [0, 1], got {args.min_agreement}")
    try:
        targets = parse_targets(args.against)
    except NetworkError as exc:
        raise NeurosimError(f"--against: {exc.message}") from None
    paths.check_directory(args.report, "--report")
    written = ["report.md", "agreement.csv"] + [f"overlay_{t}.png" for t in run_order(targets)]
    paths.refuse_inputs_as_outputs([("--report", os.path.join(args.report, f)) for f in written],
                                   [("MODEL.h5", args.model), ("--input", args.input)])
    network = storage.load(args.model)
    inputs = load_inputs(args.input) if args.input else {}
    try:
        check = crosscheck(network, inputs, args.steps, targets, seed=args.seed, progress=not args.no_progress)
    except NetworkError as exc:
        raise _argument_error(exc, args) from None
    report = check.write_report(args.report, metric=args.metric)
    print(check.table())
    for name, reason in check.skipped.items():
        print(f"skipped {name}: {reason}")
    print(f"wrote {report['report']}")
    if args.min_agreement is None:
        return 0
    exact, quantised = check.comparisons(exact=True), check.comparisons(exact=False)
    scope = f"; quantised, reported only: {', '.join(quantised)}" if quantised else ""
    print(f"--min-agreement {args.min_agreement} ({args.metric}) holds the exact comparisons: "
          f"{', '.join(exact) or 'none'}{scope}")
    problems = check.shortfalls(args.metric, args.min_agreement, bar=f"--min-agreement {args.min_agreement}")
    for problem in problems:
        print(problem)
    return 1 if problems else 0

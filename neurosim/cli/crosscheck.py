"""`neurosim crosscheck`: one network on several simulators, and where they disagree (mapping.agreement)."""
from __future__ import annotations

import argparse
import os
from typing import Any

from .common import int_at_least, seed_arg


def register(sub: Any) -> None:
    """Add the `crosscheck` subparser to `sub` (argparse subparsers of the neurosim CLI)."""
    from mapping.agreement import METRICS, TARGETS

    positive_int = int_at_least(1)
    p = sub.add_parser(
        "crosscheck", help="run one network on several simulators and report where they disagree",
        description="Simulate MODEL.h5 on neurosim's NumPy backend (float64, the reference) and on every "
                    "target of --against with the same input (Poisson inputs are drawn once and handed "
                    "to every target), then write DIR/report.md, DIR/agreement.csv and one raster and "
                    "membrane overlay PNG per target (shaped populations banded per channel), and for a "
                    "network with shaped (C, H, W) populations activity maps: the reference's spike "
                    "counts per channel and, per target that differs, the count differences. lava-fixed is compared bit for bit with neurosim's "
                    "fixed-point mode ('fixed', added automatically) and approximately with the float "
                    "reference. Exit code 1 when the worst --metric agreement is below --min-agreement.")
    p.add_argument("model", metavar="MODEL.h5", help="network file written by neurosim")
    p.add_argument("--against", default="brian2,lava-float,lava-fixed", metavar="T1,T2",
                   help=f"comma-separated targets among {', '.join(TARGETS)} (default brian2,lava-float,lava-fixed)")
    p.add_argument("--steps", required=True, type=positive_int, metavar="T", help="number of steps")
    p.add_argument("--input", metavar="IN.npz", help="spikes for the SpikeInputs, as for 'neurosim simulate'")
    p.add_argument("--seed", type=seed_arg, default=0, metavar="S",
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
    p.set_defaults(func=cmd_crosscheck, batch=None, trace=[])  # read by argument_error


def cmd_crosscheck(args: argparse.Namespace) -> int:
    """`neurosim crosscheck`: run MODEL.h5 on every target, write the report; 1 below --min-agreement."""
    from mapping.agreement import crosscheck, parse_targets, run_order

    from .. import paths, storage
    from ..errors import NetworkError, NeurosimError
    from .common import argument_error
    from .inputs import load_inputs

    if args.min_agreement is not None and not 0.0 <= args.min_agreement <= 1.0:
        raise NeurosimError(f"--min-agreement: expected a fraction in [0, 1], got {args.min_agreement}")
    try:
        targets = parse_targets(args.against)
    except NetworkError as exc:
        raise NeurosimError(f"--against: {exc.message}") from None
    paths.check_directory(args.report, "--report")
    written = ["report.md", "agreement.csv", "activity_neurosim.png"] + [
        f"{kind}_{t}.png" for t in run_order(targets) for kind in ("overlay", "activity_diff")]
    paths.refuse_inputs_as_outputs([("--report", os.path.join(args.report, f)) for f in written],
                                   [("MODEL.h5", args.model), ("--input", args.input)])
    network = storage.load(args.model)
    inputs = load_inputs(args.input) if args.input else {}
    try:
        check = crosscheck(network, inputs, args.steps, targets, seed=args.seed, progress=not args.no_progress)
    except NetworkError as exc:
        raise argument_error(exc, args) from None
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

"""`neurosim plot-traces`: draw the state traces of a result file (neurosim.plot.traces)."""
from __future__ import annotations

import argparse
import os
from typing import Any

from .. import paths
from .common import CLIError, int_at_least


def register(sub: Any) -> None:
    """Add `plot-traces` to `sub` (argparse subparsers of the CLI)."""
    p = sub.add_parser("plot-traces", help="plot recorded state traces from a result file",
                       description="Draw a recorded state variable of some neurons of one population in one trial "
                                   "(time in ms) and write a PNG. Traces are recorded by "
                                   "'neurosim simulate --trace POP:VAR[:NEURONS][:STRIDE]'.")
    p.add_argument("result", metavar="OUT.h5", help="result file written by 'neurosim simulate --trace ...'")
    p.add_argument("--png", required=True, metavar="FILE.png", help="image to write (replaced atomically)")
    p.add_argument("--population", metavar="POP", default=None,
                   help="traced population to draw (default: the first one in the file)")
    p.add_argument("--var", metavar="VAR", default=None,
                   help="recorded variable to draw (default: v if recorded, else the first one)")
    p.add_argument("--neurons", type=int_at_least(0), nargs="+", default=None, metavar="K",
                   help="positions among the recorded neurons to draw (default: the first three); with a "
                        "recording of some neurons, position 0 is the first of them")
    p.add_argument("--trial", type=int_at_least(0), default=0, metavar="K", help="trial to draw (default 0)")
    p.set_defaults(func=cmd_plot_traces)


def cmd_plot_traces(args: argparse.Namespace) -> int:
    """`neurosim plot-traces`: one population's variable of one trial as a PNG."""
    from .. import plot, storage

    if os.path.splitext(args.png)[1].lower() != ".png":
        raise CLIError(f"--png {args.png}: expected a file name ending in .png (the image is written as PNG)")
    paths.check_writable(args.png, "--png")
    paths.refuse_inputs_as_outputs([("--png", args.png)], [("OUT.h5", args.result)])
    res = storage.load_result(args.result)
    if not res.traces:
        raise CLIError(f"{args.result}: holds no traces; record some with 'neurosim simulate --trace POP:VAR'")
    pop = args.population if args.population is not None else next(iter(res.traces))
    if pop not in res.traces:
        raise CLIError(f"--population {pop}: {args.result} has traces of {', '.join(res.traces)}")
    recorded = res.traces[pop]
    var = args.var if args.var is not None else ("v" if "v" in recorded else next(iter(recorded)))
    if var not in recorded:
        raise CLIError(f"--var {var}: {args.result} has {', '.join(recorded)} of {pop}")
    width = recorded[var].shape[2]
    neurons = args.neurons if args.neurons is not None else list(range(min(3, width)))
    if any(j >= width for j in neurons):
        raise CLIError(f"--neurons: {args.result} holds {width} recorded neurons of {pop}, expected positions "
                       f"0..{width - 1}")
    if args.trial >= res.batch:
        raise CLIError(f"--trial {args.trial}: {args.result} has {res.batch} trial(s), expected 0..{res.batch - 1}")
    plot.traces(res, args.png, pop, var, neurons=neurons, trial=args.trial)
    print(f"wrote {args.png}")
    return 0

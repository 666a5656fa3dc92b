"""`neurosim map`: will a network fit a chip, and what will it cost (mapping.chip_report)."""
from __future__ import annotations

import argparse
import os
from typing import Any

from .common import int_at_least, seed_arg


def register(sub: Any) -> None:
    """Add the `map` subparser to `sub` (argparse subparsers of the neurosim CLI)."""
    p = sub.add_parser(
        "map", help="resource and cost report of a network on a neuromorphic chip",
        description="Place MODEL.h5 on the cores of --chip under its per-core limits (neurons, synaptic memory, "
                    "fan-in and fan-out axons) and say which limit binds; simulate it for --steps steps (with "
                    "--input for its SpikeInputs) and count synaptic operations and neuron updates per inference "
                    "(per trial); estimate energy and latency from published per-operation figures. Every "
                    "constant is printed with its source; figures that are not published are named and left "
                    "out. Convolutions count through their exact lowering. A network that no core can hold "
                    "(e.g. a neuron with more fan-in than a core takes) is refused with the reason (exit 2).")
    p.add_argument("model", metavar="MODEL.h5", help="network file written by neurosim")
    p.add_argument("--chip", default="loihi2", metavar="NAME|FILE.json",
                   help="target chip: a bundled chip file (mapping/chips/*.json; loihi2) or your own JSON chip "
                        "file in the same form (default loihi2)")
    p.add_argument("--steps", required=True, type=int_at_least(1), metavar="T",
                   help="steps of one inference (whole number >= 1)")
    p.add_argument("--input", metavar="IN.npz",
                   help="spikes for the SpikeInputs, as for 'neurosim simulate' ((T, n) or (T, B, n) per input; "
                        "B trials = B inferences, averaged)")
    p.add_argument("--batch", type=int_at_least(1), default=None, metavar="B",
                   help="number of trials (default: B of the inputs, else 1)")
    p.add_argument("--seed", type=seed_arg, default=0, metavar="S", help="seed of the Poisson inputs (default 0)")
    p.add_argument("--backend", default="numpy", choices=("numpy", "numba", "cupy", "auto"),
                   help="simulator of the run that is counted (default numpy)")
    p.add_argument("--out", metavar="REPORT.md|REPORT.json",
                   help="also write the report: markdown (.md) or JSON (.json), replaced atomically")
    p.add_argument("--plot", metavar="CORES.png", help="also draw each core's use of every limit as a PNG")
    p.set_defaults(func=cmd_map, trace=[])  # read by argument_error


def cmd_map(args: argparse.Namespace) -> int:
    """`neurosim map`: print (and write) the resource and cost report of MODEL.h5 on --chip."""
    from mapping.chip_report import chip_report
    from mapping.chips import load_chip

    from .. import atomic, paths, storage
    from ..errors import NetworkError
    from ..simulate import simulate
    from .common import CLIError, argument_error, resolve_backend
    from .inputs import load_inputs

    outputs = []
    if args.out is not None:
        if os.path.splitext(args.out)[1].lower() not in (".md", ".json"):
            raise CLIError(f"--out {args.out}: expected a file name ending in .md or .json")
        outputs.append(("--out", args.out))
    if args.plot is not None:
        if os.path.splitext(args.plot)[1].lower() != ".png":
            raise CLIError(f"--plot {args.plot}: expected a file name ending in .png")
        outputs.append(("--plot", args.plot))
    for flag, path in outputs:
        paths.check_writable(path, flag)
    paths.refuse_inputs_as_outputs(outputs, [("MODEL.h5", args.model), ("--input", args.input)])
    chip = load_chip(args.chip)
    network = storage.load(args.model)
    inputs = load_inputs(args.input) if args.input else {}
    backend = resolve_backend(args.backend)
    try:
        result = simulate(network, inputs, args.steps, batch=args.batch, backend=backend, seed=args.seed)
    except NetworkError as exc:
        raise argument_error(exc, args) from None
    report = chip_report(network, result, chip)
    print("\n".join(f"{k}: {v}" for k, v in report.rows()))
    for note in report.summary["unpriced"]:
        print(f"not priced: {note}")
    if args.out is not None:
        text = report.to_json() if args.out.lower().endswith(".json") else report.markdown()
        atomic.write_text(args.out, text)
        print(f"wrote {args.out}")
    if args.plot is not None:
        report.plot(args.plot)
        print(f"wrote {args.plot}")
    return 0

"""`neurosim export` and `neurosim import`: a network to and from NIR, lava-dl NetX and Brian2
(the peer packages load only when a command runs)."""
from __future__ import annotations

import argparse
import os
from typing import Any

EXPORT_FORMATS = ("nir", "netx", "brian2")
IMPORT_FORMATS = ("nir", "netx")


def register(sub: Any) -> None:
    """Add the `export` and `import` subparsers to `sub` (argparse subparsers of the neurosim CLI)."""
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
    p.add_argument("--poisson", default="exact", choices=("exact", "statistical"),
                   help="brian2: a PoissonInput as neurosim's own draw for the script's --seed, fed through a "
                        "SpikeGeneratorGroup (exact, default: the same spikes as 'neurosim simulate --seed S'), or "
                        "as Brian2's PoissonGroup at the same rates (statistical: statistically equal, other spikes)")
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


def cmd_export(args: argparse.Namespace) -> int:
    """`neurosim export`: write MODEL.h5 as NIR, NetX or a Brian2 script."""
    from .. import paths, storage

    paths.check_writable(args.out, "--out")
    outputs = [("--out", args.out)]
    if args.to == "brian2":  # the script's data file is written beside it
        outputs.append(("--out (its .npz)", os.path.splitext(args.out)[0] + ".npz"))
    paths.refuse_inputs_as_outputs(outputs, [("MODEL.h5", args.model)])
    network = storage.load(args.model)
    if args.poisson != "exact" and args.to != "brian2":
        from .common import CLIError

        raise CLIError(f"--poisson {args.poisson}: only the brian2 export draws Poisson inputs")
    if args.to == "nir":
        from mapping import write_nir

        write_nir(network, args.out, discretization=args.discretization)
    elif args.to == "netx":
        from mapping import to_netx

        report = to_netx(network, args.out)
        print(report)
    else:
        from mapping import write_brian2_script

        write_brian2_script(network, args.out, poisson=args.poisson)
    print(f"wrote {args.out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """`neurosim import`: read a NIR graph or NetX file and write it as MODEL.h5."""
    from .. import paths, storage
    from ..errors import NeurosimError

    if not (args.dt > 0 and args.dt < float("inf")):
        raise NeurosimError(f"--dt: expected a time step > 0 in seconds, got {args.dt}")
    paths.check_writable(args.out, "--out")
    paths.refuse_inputs_as_outputs([("--out", args.out)], [("FILE", args.file)])
    check_import_kind(args.file, args.fmt)
    if args.fmt == "nir":
        from mapping import read_nir

        network = read_nir(args.file, args.dt, discretization=args.discretization)
    else:
        from mapping import read_netx

        network = read_netx(args.file, args.dt)
    storage.save(network, args.out)
    print(network.summary())
    print(f"wrote {args.out}")
    return 0



def check_import_kind(path: str, fmt: str) -> None:
    """Refuse FILE whose root says it is another kind than --from names (neurosim.cli.sniff)."""
    from .common import CLIError
    from .sniff import KINDS, file_kind

    from ..errors import FileFormatError

    try:
        kind = file_kind(path)
    except FileFormatError:  # missing, a directory, not HDF5: the format's own reader says so
        return
    if kind != fmt and kind in KINDS:
        use = f"use --from {kind}" if kind in IMPORT_FORMATS else "nothing to import ('neurosim info' describes it)"
        raise CLIError(f"{path}: this is {KINDS[kind]}, not {KINDS[fmt].split(' (')[0]}; {use}")

"""`neurosim export` and `neurosim import`: a network to and from NIR, lava-dl NetX and Brian2
(the peer packages load only when a command runs)."""
from __future__ import annotations

import argparse
import os
from typing import Any

EXPORT_FORMATS = ("nir", "netx", "brian2")
IMPORT_FORMATS = ("nir", "netx")
NIR_TARGETS = ("neurosim", "nir", "snntorch", "norse", "spikingjelly")  # mapping.nir_graph.targets.TARGETS
NIR_CONVENTIONS = ("snntorch", "norse", "spikingjelly", "nir", "neurosim")  # mapping.nir_graph.conventions.NAMES
_LOADERS = {"neurosim": "neurosim import FILE --from nir", "nir": "nir.read",
            "snntorch": "snntorch.import_from_nir(nir.read(FILE))",
            "norse": "norse.torch.from_nir(nir.read(FILE), dt=1e-3)",
            "spikingjelly": "spikingjelly.activation_based.nir_exchange.import_from_nir(FILE, dt=1e-4)"}


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
    p.add_argument("--discretization", default=None, choices=("euler", "exact"),
                   help="nir, target neurosim or nir: how per-step decays become time constants: euler (beta = "
                        "1 - dt/tau) or exact (beta = exp(-dt/tau)); default: the one each model was built with "
                        "(LIF.from_tau), else euler. The peers' targets use their own importer's formula")
    p.add_argument("--target", default="neurosim", choices=NIR_TARGETS,
                   help="nir: the tool that will read the file: neurosim (default), nir (the NIR reference), "
                        "snntorch, norse or spikingjelly. What the target cannot express is refused with the reason "
                        "and the nearest alternative; the file always passes nir.read")
    p.add_argument("--extensions", action="store_true",
                   help="nir, target neurosim: also write neurosim's extensions (ALIF as node type neurosim.ALIF, "
                        "subtract reset and refractory periods in neurosim.* metadata). Such files are for neurosim "
                        "only: nir.read rejects neurosim.ALIF, and other tools misread the reset as reset to zero")
    p.add_argument("--poisson", default="exact", choices=("exact", "statistical"),
                   help="brian2: a PoissonInput as neurosim's own draw for the script's --seed, fed through a "
                        "SpikeGeneratorGroup (exact, default: the same spikes as 'neurosim simulate --seed S'), or "
                        "as Brian2's PoissonGroup at the same rates (statistical: statistically equal, other spikes)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "import", help="import a NIR graph or a NetX file as a neurosim network",
        description="Read a NIR graph (HDF5) or a lava-dl NetX file and write it as a neurosim MODEL.h5. "
                    "NIR has no time step, reset rule or bias timing: name the tool that wrote the graph "
                    "with --convention (snntorch, norse, spikingjelly, nir, neurosim); files written by "
                    "neurosim say so themselves.")
    p.add_argument("file", metavar="FILE", help="the NIR graph or NetX HDF5 file")
    p.add_argument("--from", dest="fmt", required=True, choices=IMPORT_FORMATS, help="format of FILE")
    p.add_argument("--convention", default=None, choices=NIR_CONVENTIONS,
                   help="nir: the tool that wrote FILE; its dt, discretisation, reset rule (snnTorch's late "
                        "subtract included), bias timing and Cuba order are then used exactly")
    p.add_argument("--dt", default=None, type=float, metavar="SECONDS",
                   help="time step in seconds (netx: required; nir: overrides the convention's)")
    p.add_argument("--reset", default=None, choices=("subtract", "zero", "late_subtract"),
                   help="nir: overrides the convention's reset rule (e.g. snnTorch layers built with "
                        "reset_mechanism='zero')")
    p.add_argument("--discretization", default=None, choices=("euler", "exact"),
                   help="nir: how time constants become per-step decays (default: the convention's)")
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

        write_nir(network, args.out, discretization=args.discretization, target=args.target,
                  extensions=args.extensions)
        if args.extensions:
            print("note: written with neurosim's extensions: for neurosim only (nir.read rejects neurosim.ALIF "
                  "nodes; other tools read a subtract reset as reset to zero)")
        else:
            print(f"NIR for {args.target}: passes nir.read; load it with {_LOADERS[args.target]}")
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

    if args.dt is None and args.fmt == "netx":
        raise NeurosimError("--dt: required for --from netx (the time step in seconds)")
    if args.dt is not None and not (args.dt > 0 and args.dt < float("inf")):
        raise NeurosimError(f"--dt: expected a time step > 0 in seconds, got {args.dt}")
    paths.check_writable(args.out, "--out")
    paths.refuse_inputs_as_outputs([("--out", args.out)], [("FILE", args.file)])
    check_import_kind(args.file, args.fmt)
    if args.fmt == "nir":
        from mapping import read_nir

        notes: list[str] = []
        network = read_nir(args.file, args.dt, discretization=args.discretization, reset=args.reset,
                           convention=args.convention, notes=notes)
        for line in notes:
            print(line)
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

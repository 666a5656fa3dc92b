"""The ``neurosim`` command line (also ``python -m neurosim``).

Subcommands: simulate, info, raster, example, backends, cuba, train, export, import, crosscheck,
demo, map; ``neurosim CMD --help`` explains each. Bad input (any :class:`~neurosim.errors.NeurosimError`,
a missing or unwritable file, a usage error, a size that does not fit in memory) prints one line
``neurosim: error: ...`` on stderr and exits with 2 (a full disk or a file-size limit too); Ctrl-C exits
with 130 and SIGTERM, which cleans up the same way, with 143. Every output file is
written atomically, so an interrupted run leaves no partial file; an output that is one of the
command's inputs is refused (neurosim.paths), and `cuba` and `demo` remove what a failed run
wrote, with the directory if they made it (a demo keeps it once training has saved a checkpoint).
Heavy modules (h5py, matplotlib, numba, torch, Brian2, Lava, the example networks) are imported
only when needed.

The command line is the top layer, the only package that imports neurosim, training and mapping
together (nothing below it imports it):

- :mod:`.app`: the parser and ``main`` (dispatch, errors as one line and an exit code)
- :mod:`.common`: argparse types (``key_value``, ``seed_arg``, ...), ``resolve_backend``, ``argument_error``
- :mod:`.inputs`: ``load_inputs``, the hardened reader of ``--input IN.npz``
- :mod:`.simulate`, :mod:`.examples`: simulate, info, raster, example, backends, cuba
- :mod:`.train`: train (training);  :mod:`.export`, :mod:`.crosscheck`: export, import, crosscheck (mapping)
- :mod:`.demo`, :mod:`.demo_report`: the demo pipeline (train, simulate, export, cross-check, report)
- :mod:`.map`: map (mapping.chip_report: cores, binding limit, synaptic operations, energy on a chip)
"""
from __future__ import annotations

from .app import build_parser, main
from .common import CLIError, key_value
from .inputs import load_inputs

__all__ = ["CLIError", "build_parser", "key_value", "load_inputs", "main"]

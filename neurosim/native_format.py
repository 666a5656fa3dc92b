"""The native HDF5 schema (version 1) of a :class:`Network` and a :class:`SimulationResult`.

Network file (root attrs ``format = "neurosim.network"``, ``schema_version = 2``,
``neurosim_version``, ``dt`` in seconds, ``name``)::

    /populations/<name>/   attrs model ('lif' | 'alif' | 'if' | 'li'), reset (models that have
                           one), discretization (optional: 'exact' | 'euler', how the decays were
                           made from time constants), size, order, shape (shaped nodes only);
                           float64 datasets, one per model parameter (``model.param_names()``)
                           and v0, i0, a0, each of shape (size,), () (one value for all) or (C,)
                           (per channel)
    /inputs/<name>/        attrs kind ('spikes' | 'poisson'), size, order, shape (shaped only);
                           poisson: rate Hz, shape (size,), () or (C,)
    /projections/<name>/   attrs pre, post, format ('dense' | 'csr' | a shaped kind), order;
                           dense: weights (n_pre, n_post) float64;
                           csr: indptr (n_pre + 1,), indices (nnz,) int64, values (nnz,) float64,
                           attr shape (n_pre, n_post);
                           delay: int64, scalar or per synapse ((n_pre, n_post) dense, (nnz,) csr);
                           shaped kinds (conv2d, conv1d, sumpool2d, avgpool2d, flatten) store their
                           kernel and parameters, not the expanded matrix: :mod:`neurosim.native_shapes`

Version 1 files (every per-neuron dataset (size,), no shapes, dense and CSR only) still load.

Result file (root attrs ``format = "neurosim.result"``, schema_version, neurosim_version,
backend, dtype, dt, steps, batch, seed, ``meta`` as a JSON object)::

    /timings               attrs name -> seconds
    /spikes/<name>/        attrs size, order; datasets step (int64), batch (int32), index (int32)
    /traces/<pop>/<var>    float array (steps, batch, size); attr order on groups and datasets

A network's arrays of 256 elements or more are stored chunked, byte-shuffled and deflated
(lossless; :func:`neurosim.native_shapes.write_array`), in the HDF5 1.10 file format.
HDF5 sorts names, so the ``order`` attrs keep the user's order. Writes are atomic (temporary
file in the same directory, then ``os.replace``). Readers check every attribute, dtype and shape
before reading data and raise :class:`FileFormatError` naming the file and the field, an HDF5
path with attributes written ``group@attr`` (``@dt`` for a root attribute).
"""
from __future__ import annotations

SCHEMA_VERSION = 2
OLDEST_SCHEMA = 1  # the oldest schema_version read
NETWORK_FORMAT = "neurosim.network"
RESULT_FORMAT = "neurosim.result"
MAX_SIZE = 2**31 - 1  # neurons per population or channels per input: spike indices are int32
MAX_STEPS = 2**62

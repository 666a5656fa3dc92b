"""lava-dl NetX HDF5: write a network for ``lava.lib.dl.netx.hdf5.Network``, read one back, run it.

Layout (what NetX 0.6 reads, ``lava/lib/dl/netx/hdf5.py``)::

    /layer/0/type = 'input', shape = [n_in] or [C, H, W]      (no neuron: input goes to layer 1)
    /layer/k/type = 'conv', shape = [C, H, W]                  (mapping.netx_conv)
             weight (C, C_in // groups, kh, kw) integers, torch's order; stride, padding,
             dilation [h, w]; groups; bias (C,) or (W, H, C); neuron/ as below
    /layer/k/type = 'flatten'                                  (between the last conv and a dense layer)
    /layer/k/type = 'dense' | 'dense_rec', shape = [n]
             weight (n, n_prev) integers      weight_rec (n, n) for 'dense_rec'
             delay  (optional) extra steps: scalar or (n, n_prev); neurosim delay d -> d - 1
             bias   (optional) (n,) mantissas; NetX uses bias_exp = 6
             neuron/type = 'CUBA', iDecay, vDecay, vThMant, refDelay = 1, gradedSpike = False

NetX builds ``LIF(du=iDecay - 1, dv=vDecay, vth=vThMant, bias_exp=6)`` (so iDecay = du + 1
cancels Lava's +1 offset; each a scalar or one value per neuron, which Lava's LIF applies per
neuron) and ``Dense``/``DelayDense`` whose weight exponent and bit count it
chooses itself (``netx.utils.optimize_weight_bits``); that choice reproduces integer file
weights exactly when they lie in [-256, 254] (mixed signs; it clips beyond), [0, 255]
(excitatory) or [-255, 0] (inhibitory). A conv block is Lava's ``Conv`` synapse (weights used
as written, exponent 0, delay 1) into a LIF of (X, Y, C) = (W, H, C) neurons. So the file
holds the whole input per spike as an integer: :func:`to_netx` quantises with
``weight_exp = 0`` and ``bias_exp = 6`` and refuses what NetX would clip. Float units of
:func:`read_netx` follow SLAYER: weights and bias /64, threshold vThMant / 64 (state scale
4096 = 64 << 6). Which network maps onto which blocks (conv, pooling as a depthwise conv,
Conv1d as a conv of height 1, flatten, dense, dense_rec): :mod:`mapping.netx_chain`.

An LI readout (non-spiking) is written as a CUBA layer with ``vThMant = 131071`` (the largest
threshold, compared as ``v > 131071 << 6``) and the attribute ``neurosim_kind = 'li'``:
:func:`netx_quantize` chooses its scale so that the worst case (every input neuron spiking at
every step) keeps ``|v| <= 131071 << 6``, so Lava's LIF never spikes there and its ``v`` is
the readout (the report's notes give the bound). NetX itself reads every layer as a LIF.

Expressible: one SpikeInput feeding a chain of LIF populations (reset 'zero', zero initial
state; an LI readout may end the chain), each fed by the previous one, optionally with a
self-recurrent dense projection ('dense_rec': then both delays must be 1, as NetX's
RecurrentDense drops the weight exponent and shares one delay matrix when delays are given).
Names are kept in HDF5 attributes, which NetX ignores.
"""
from __future__ import annotations

from .netx_layout import NETX_BIAS_EXP, NETX_LIMITS, NETX_MAX_DELAY, SLAYER_SCALE, TARGET
from .netx_read import NETX, NetxFile, NetxReader, read_netx, read_netx_file, read_netx_fixed
from .netx_run import run_netx
from .netx_write import netx_quantize, to_netx

__all__ = ["NETX", "NETX_BIAS_EXP", "NETX_LIMITS", "NETX_MAX_DELAY", "SLAYER_SCALE", "TARGET", "NetxFile",
           "NetxReader", "netx_quantize", "read_netx", "read_netx_file", "read_netx_fixed", "run_netx", "to_netx"]

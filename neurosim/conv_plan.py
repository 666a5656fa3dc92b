"""Event-driven convolution: the tables a :class:`~neurosim.plan.Plan` carries for its shaped
projections, and the NumPy scatter that the other backends are tested against.

A spike of global presynaptic index j, for every convolution op whose pre range holds j
(ops in projection order), adds the kernel patch it reaches into the ring buffer: with
``q = j - pre_lo``, channel ``c = q // (H*W)``, position ``pos = q % (H*W)``, its group
``g = c // cig`` and local channel ``cl = c % cig``, each tap ``e`` of position pos (kernel
entry ``k = ky*kw + kx`` and output position ``out = oy*W_out + ox``, the pairs with
``oy*s_h - p_h + ky*d_h = y``, ``ox*s_w - p_w + kx*d_w = x``) and each output channel
``co`` of group g::

    ring[(t + delay[w]) % R, b, post_lo + co*H_out*W_out + out] += kernel[w],
    w = kern_off + (co*cig + cl)*kh*kw + k

Each (pre, post) pair is reached by at most one tap, so a target receives one term per spike
and op; the spike's CSR row (dense and CSR projections, Flatten) is added before its patches.
Weights are stored once per kernel entry; the tap tables hold kh*kw*H_out*W_out entries per op.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .conv import ConvGeometry

# columns of ConvTables.ops
PRE_LO, PRE_HI, POST_LO, HW, CIG, COG, HOWO, KK, KERN_OFF, PTR_OFF, TAP_OFF = range(11)


@dataclass(frozen=True, eq=False)
class ConvTables:
    """All convolution ops of a plan. ops: int64 (n_ops, 11), columns named above; kernel
    (dtype) and delay (int32): every op's kernel flattened as (C_out, cig, kh*kw), concatenated;
    tap_ptr: int64, hw + 1 offsets per op (local to the op's taps); tap_k, tap_out: int32."""

    ops: np.ndarray
    kernel: np.ndarray
    delay: np.ndarray
    tap_ptr: np.ndarray
    tap_k: np.ndarray
    tap_out: np.ndarray
    geometries: tuple[tuple[int, int, ConvGeometry], ...]  # (pre_lo, post_lo, geometry) per op

    @property
    def max_delay(self) -> int:
        return int(self.delay.max()) if self.delay.size else 1

    @property
    def n_weights(self) -> int:
        return int(self.kernel.size)

    def lowered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(pre, post, weight (float64), delay) of every synapse the ops reach, global indices,
        op after op (the exact CSR lowering of :meth:`ConvGeometry.to_csr`)."""
        parts = []
        for pre_lo, post_lo, g in self.geometries:
            csr, d = g.to_csr()
            parts.append((csr.rows() + pre_lo, np.asarray(csr.indices) + post_lo, np.asarray(csr.values), d))
        if not parts:
            z = np.zeros(0, np.int64)
            return z, z, np.zeros(0), z
        return tuple(np.concatenate([p[c] for p in parts]) for c in range(4))  # type: ignore[return-value]


def taps(g: ConvGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tap_ptr (H*W + 1,), tap_k, tap_out): for each input position, the (kernel entry,
    output position) pairs that reach it."""
    (_, h, w), (_, ho, wo) = g.in_shape, g.out_shape
    kh, kw = g.kernel.shape[2:]
    ky, kx, oy, ox = np.ix_(np.arange(kh), np.arange(kw), np.arange(ho), np.arange(wo))
    y = oy * g.stride[0] - g.padding[0] + ky * g.dilation[0]
    x = ox * g.stride[1] - g.padding[1] + kx * g.dilation[1]
    full = (kh, kw, ho, wo)
    valid = np.broadcast_to((y >= 0) & (y < h) & (x >= 0) & (x < w), full)
    pos = np.broadcast_to(y * w + x, full)[valid]
    k = np.broadcast_to(ky * kw + kx, full)[valid]
    out = np.broadcast_to(oy * wo + ox, full)[valid]
    order = np.argsort(pos, kind="stable")
    ptr = np.concatenate([[0], np.cumsum(np.bincount(pos, minlength=h * w))]).astype(np.int64)
    return ptr, k[order].astype(np.int32), out[order].astype(np.int32)


def build(ops: Sequence[tuple[int, int, ConvGeometry]], dtype: np.dtype) -> ConvTables:
    """The tables of `ops`, (pre_lo, post_lo, geometry) in projection order."""
    rows, kern, dl, ptrs, ks, outs = [], [], [], [], [], []
    kern_off = ptr_off = tap_off = 0
    for pre_lo, post_lo, g in ops:
        (c, h, w), (co, ho, wo) = g.in_shape, g.out_shape
        cig, kh, kw = g.kernel.shape[1:]
        ptr, k, out = taps(g)
        rows.append((pre_lo, pre_lo + c * h * w, post_lo, h * w, cig, co // g.groups, ho * wo, kh * kw,
                     kern_off, ptr_off, tap_off))
        kern.append(g.kernel.reshape(-1))
        dl.append(np.broadcast_to(np.asarray(g.delay, np.int64), g.kernel.shape).reshape(-1))
        ptrs.append(ptr)
        ks.append(k)
        outs.append(out)
        kern_off, ptr_off, tap_off = kern_off + g.kernel.size, ptr_off + ptr.size, tap_off + k.size
    cat = lambda parts, t: np.ascontiguousarray(np.concatenate(parts).astype(t)) if parts else np.zeros(0, t)  # noqa: E731
    return ConvTables(np.array(rows, np.int64).reshape(-1, 11), cat(kern, dtype), cat(dl, np.int32),
                      cat(ptrs, np.int64), cat(ks, np.int32), cat(outs, np.int32), tuple(ops))


def scatter(tab: ConvTables, b: np.ndarray, j: np.ndarray, t: int, ring: int, batch: int,
            n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the spikes (b, j) of step t add through the ops: (owner (index into the spike
    list), flat ring index ``(slot*batch + b)*n + post``, weight), op after op."""
    own_l, tgt_l, w_l = [], [], []
    for row in tab.ops:
        m = np.nonzero((j >= row[PRE_LO]) & (j < row[PRE_HI]))[0]
        if not m.size:
            continue
        cig, cog, kk = int(row[CIG]), int(row[COG]), int(row[KK])
        c, pos = np.divmod(j[m] - row[PRE_LO], row[HW])
        start = tab.tap_ptr[row[PTR_OFF] + pos]
        count = tab.tap_ptr[row[PTR_OFF] + pos + 1] - start
        total = int(count.sum())
        if not total:
            continue
        e = np.repeat(start - np.cumsum(count) + count, count) + np.arange(total) + row[TAP_OFF]
        who = np.repeat(np.arange(m.size), count)
        # every tap to each of the group's cog output channels
        e, who = np.repeat(e, cog), np.repeat(who, cog)
        co = (c[who] // cig) * cog + np.tile(np.arange(cog), total)
        widx = row[KERN_OFF] + (co * cig + c[who] % cig) * kk + tab.tap_k[e]
        slot = (t + tab.delay[widx]) % ring
        own_l.append(m[who])
        tgt_l.append((slot * batch + b[m][who]) * n + row[POST_LO] + co * row[HOWO] + tab.tap_out[e])
        w_l.append(tab.kernel[widx])
    if not own_l:
        z = np.zeros(0, np.int64)
        return z, z, tab.kernel[:0]
    return np.concatenate(own_l), np.concatenate(tgt_l), np.concatenate(w_l)

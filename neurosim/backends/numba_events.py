"""The compiled chunk loop of the numba backend: a second target of the NumPy reference.

Per step t (one compiled call runs a whole chunk):

1. neuron update of every (trial, neuron) from ring slot ``t mod R``: :func:`lane`, the loop
   form of :func:`neurosim.models.neuron_step` written without branches (selects only), so that
   the compiler vectorises it across neurons, with a population's parameters read as scalars
   when they are all one value (``groups``); the slot is cleared;
2. traces and spike events (t, b, j) of the neurons, trial by trial right after its update;
   only neurons with synapses or patches (``emits``) are queued for propagation;
3. propagation of the neurons' spikes trial by trial, then of the inputs source by source
   over the trials (a row is read once per step and reused across the batch; each trial still
   receives its terms in index order, neurons first, as in the reference), each input with its
   event count: each spike's row segments (:mod:`neurosim.propagation`), each to the slot
   ``t mod R + delay`` (minus R past the end) computed once per segment, a consecutive
   segment as a contiguous (vectorised) add; then its convolution patches
   (:mod:`neurosim.conv_plan`), in op order;
4. the dense blocks switched on for this chunk (``dense_on``): their rows are skipped in 3 and
   their product, computed over the batch before the call (``dense_cur[k]``, one GEMM for the
   chunk), is added to slot ``t mod R + delay`` instead.

With no block switched on, every target receives its terms in the reference order, so spikes
and states equal the NumPy backend's bit for bit (tests/test_backends.py,
tests/test_fast_sim.py). Single-threaded; no fastmath (no contraction into FMA).
"""
from __future__ import annotations

import numba


@numba.njit(cache=True, inline="always")
def lane(x, i, v, a, z, r, alpha, beta, theta, bias, gain, rho, adapt, adapt_gain, refractory, reset_zero,
         spiking):
    """One neuron's canonical step, branch-free (the loop form of neuron_step); returns
    (i, v, a, z, r, u) with u = v~ - A the spike function's argument (before the reset)."""
    i_new = alpha * i + gain * (x + bias)
    a_new = rho * a + adapt_gain * z
    active = r <= 0
    v_up = beta * v + i_new
    v_new = v_up if active else v
    u = v_new - (theta + adapt * a_new)
    fire = active & (spiking > 0) & (u > 0)  # no short-circuit: selects, not branches
    v_reset = v_new - v_new if reset_zero > 0 else v_new - theta
    r_down = r - 1 if r > 0 else r
    return (i_new, v_reset if fire else v_new, a_new, 1.0 if fire else 0.0, refractory if fire else r_down, u)


@numba.njit(cache=True, inline="always")
def lane_without_adaptation(x, i, v, r, alpha, beta, theta, bias, gain, refractory, reset_zero, spiking):
    """:func:`lane` for adapt = 0 (LIF, IF, LI), without the adaptation state: returns (i, v, z, r).
    Same bits: with adapt = 0 the threshold theta + adapt * a is theta, whatever (finite) a is."""
    i_new = alpha * i + gain * (x + bias)
    active = r <= 0
    v_up = beta * v + i_new
    v_new = v_up if active else v
    u = v_new - theta
    fire = active & (spiking > 0) & (u > 0)
    v_reset = v_new - v_new if reset_zero > 0 else v_new - theta
    r_down = r - 1 if r > 0 else r
    return (i_new, v_reset if fire else v_new, 1.0 if fire else 0.0, refractory if fire else r_down)


@numba.njit(cache=True, boundscheck=False)
def uniform_span_without_adaptation(x_row, Ib, Vb, Zb, Rb, al, be, th, bi, ga, rf, rz, sp):
    """Neurons of one trial (the slices given), scalar parameters, adapt = 0, `a` not recorded:
    :func:`lane_without_adaptation` (the adaptation state is neither read nor written)."""
    for j in range(len(x_row)):
        Ib[j], Vb[j], Zb[j], Rb[j] = lane_without_adaptation(x_row[j], Ib[j], Vb[j], Rb[j], al, be, th, bi, ga,
                                                             rf, rz, sp)
        x_row[j] = 0.0


@numba.njit(cache=True, boundscheck=False)
def uniform_span(x_row, Ib, Vb, Ab, Zb, Rb, al, be, th, bi, ga, rh, ad, ag, rf, rz, sp):
    """Neurons of one trial (the slices given), all with the scalar parameters given (:func:`lane`)."""
    for j in range(len(x_row)):
        Ib[j], Vb[j], Ab[j], Zb[j], Rb[j], _ = lane(x_row[j], Ib[j], Vb[j], Ab[j], Zb[j], Rb[j],
                                                    al, be, th, bi, ga, rh, ad, ag, rf, rz, sp)
        x_row[j] = 0.0


@numba.njit(cache=True, boundscheck=False)
def varying_span(x_row, Ib, Vb, Ab, Zb, Rb, alpha, beta, theta, bias, gain, rho, adapt, adapt_gain,
                 refractory, reset_zero, spiking):
    """Neurons of one trial (the slices given), parameters per neuron (:func:`lane`)."""
    for j in range(len(x_row)):
        Ib[j], Vb[j], Ab[j], Zb[j], Rb[j], _ = lane(
            x_row[j], Ib[j], Vb[j], Ab[j], Zb[j], Rb[j], alpha[j], beta[j], theta[j], bias[j],
            gain[j], rho[j], adapt[j], adapt_gain[j], refractory[j], reset_zero[j], spiking[j])
        x_row[j] = 0.0


@numba.njit(cache=True, boundscheck=False)
def spikes_of(z, out):
    """Write the indices j with z[j] > 0 into out (ascending); return how many. Blocks of 16 are
    tested at once (a vectorised count) and scanned one by one only when one of them spiked."""
    count = 0
    n = len(z)
    full = n - n % 16
    for j0 in range(0, full, 16):
        hit = 0
        for q in range(16):
            hit += 1 if z[j0 + q] > 0 else 0
        if hit:
            for q in range(16):
                if z[j0 + q] > 0:
                    out[count] = j0 + q
                    count += 1
    for j in range(full, n):
        if z[j] > 0:
            out[count] = j
            count += 1
    return count


@numba.njit(cache=True, boundscheck=False)
def fill_source_events(src, t0, offset, ev_t, ev_b, ev_j):
    """(step + t0, trial, source + offset) of every nonzero entry of `src` (steps, batch,
    sources) in C order, written into the arrays given (sized by np.count_nonzero): the
    events of neurosim.simulate.source_events in one pass."""
    e = 0
    for t in range(src.shape[0]):
        for b in range(src.shape[1]):
            row = src[t, b]
            for j in range(row.shape[0]):
                if row[j] != 0:
                    ev_t[e] = t + t0
                    ev_b[e] = b
                    ev_j[e] = j + offset
                    e += 1
    return e


@numba.njit(cache=True, boundscheck=False)
def add_into(row, w):
    """row += w, element by element (a contiguous segment: vectorised)."""
    for m in range(len(w)):
        row[m] += w[m]


@numba.njit(cache=True, boundscheck=False)
def add_scaled_into(row, w, c):
    """row += w * c (an input's event count c)."""
    for m in range(len(w)):
        row[m] += w[m] * c


@numba.njit(cache=True, boundscheck=False)
def update_row(groups, x_row, Ib, Vb, Ab, Zb, Rb, alpha, beta, theta, bias, gain, rho, adapt, adapt_gain,
               refractory, reset_zero, spiking):
    """One trial's step of every neuron (:func:`lane`) from its input row `x_row`, which is
    cleared; a group (population) whose parameters are all one value passes them as scalars,
    and skips the adaptation state when its adapt is 0 and `a` is not recorded (``groups[g, 3]``).
    Each span is compiled on its own and indexed from 0 (slices): the compiler then proves the
    indices non-negative, drops numba's wraparound of negative indices and vectorises the loop
    (indexed from a run-time offset it did not: 3-6x slower)."""
    for g in range(groups.shape[0]):
        lo, hi = groups[g, 0], groups[g, 1]
        x, i, v, a, z, r = x_row[lo:hi], Ib[lo:hi], Vb[lo:hi], Ab[lo:hi], Zb[lo:hi], Rb[lo:hi]
        if groups[g, 2] and groups[g, 3]:
            uniform_span_without_adaptation(x, i, v, z, r, alpha[lo], beta[lo], theta[lo], bias[lo], gain[lo],
                                            refractory[lo], reset_zero[lo], spiking[lo])
        elif groups[g, 2]:
            uniform_span(x, i, v, a, z, r, alpha[lo], beta[lo], theta[lo], bias[lo], gain[lo], rho[lo], adapt[lo],
                         adapt_gain[lo], refractory[lo], reset_zero[lo], spiking[lo])
        else:
            varying_span(x, i, v, a, z, r, alpha[lo:hi], beta[lo:hi], theta[lo:hi], bias[lo:hi], gain[lo:hi],
                         rho[lo:hi], adapt[lo:hi], adapt_gain[lo:hi], refractory[lo:hi], reset_zero[lo:hi],
                         spiking[lo:hi])


def run_events(t0, n_steps, src, ring, groups, alpha, beta, theta, bias, gain, rho, adapt, adapt_gain,
               refractory, reset_zero, spiking, I, V, A, Z, R, buf, seg_ptr, seg_start, seg_delay,
               seg_block, seg_lo, indices, weights, dense_on, src_off, dense_tab, dense_cur, pair_b, pair_j, pair_c,
               ev_t, ev_b, ev_j, n_ev, trace_idx, tr_v, tr_i, tr_a, tr_thr,
               c_ops, c_kernel, c_delay, c_ptr, c_k, c_out, emits):
    """Advance n_steps; returns (steps done, events written). Stops early if events may overflow."""
    batch, n = V.shape
    n_src = src.shape[2]
    cap = ev_t.shape[0]
    n_tr = trace_idx.shape[0]
    for k in range(n_steps):
        if n_ev + batch * n > cap:
            return k, n_ev
        t = t0 + k
        base = t % ring
        n_pairs = 0
        for b in range(batch):
            update_row(groups, buf[base, b], I[b], V[b], A[b], Z[b], R[b], alpha, beta, theta, bias, gain, rho,
                       adapt, adapt_gain, refractory, reset_zero, spiking)
            for q in range(n_tr):
                j = trace_idx[q]
                if tr_v.shape[0]:
                    tr_v[k, b, q] = V[b, j]
                if tr_i.shape[0]:
                    tr_i[k, b, q] = I[b, j]
                if tr_a.shape[0]:
                    tr_a[k, b, q] = A[b, j]
                if tr_thr.shape[0]:
                    tr_thr[k, b, q] = theta[j] + adapt[j] * A[b, j]
            # this trial's spikes in index order (Z[b] still in cache): events, and pairs to propagate
            # for the neurons that have synapses or patches (compacted in place: n_pairs <= first + q)
            first = n_pairs
            for q in range(spikes_of(Z[b], pair_j[first:])):
                j = pair_j[first + q]
                ev_t[n_ev] = t
                ev_b[n_ev] = b
                ev_j[n_ev] = j
                n_ev += 1
                if emits[j]:
                    pair_j[n_pairs] = j
                    pair_b[n_pairs] = b
                    pair_c[n_pairs] = 1
                    n_pairs += 1
        for j in range(n, n + n_src):  # then inputs source by source: one row serves every trial in turn
            if src_off[j - n]:  # every synapse of this source runs in a product this chunk
                continue
            for b in range(batch):
                if src[k, b, j - n] != 0:
                    pair_b[n_pairs] = b
                    pair_j[n_pairs] = j
                    pair_c[n_pairs] = src[k, b, j - n]  # an input's event count: cnt * w on each synapse
                    n_pairs += 1
        for e in range(n_pairs):  # per trial, spikes in index order: the reference's order of every sum
            b, j, cnt = pair_b[e], pair_j[e], pair_c[e]
            for s in range(seg_ptr[j], seg_ptr[j + 1]):
                blk = seg_block[s]
                if blk >= 0 and dense_on[blk]:
                    continue
                slot = base + seg_delay[s]
                if slot >= ring:
                    slot -= ring
                row = buf[slot, b]
                lo, q0, q1 = seg_lo[s], seg_start[s], seg_start[s + 1]
                if j < n:  # a spike: w on each synapse
                    if lo >= 0:  # consecutive targets: slices indexed from 0 vectorise
                        add_into(row[lo:lo + q1 - q0], weights[q0:q1])
                    else:
                        for q in range(q0, q1):
                            row[indices[q]] += weights[q]
                elif lo >= 0:
                    add_scaled_into(row[lo:lo + q1 - q0], weights[q0:q1], cnt)
                else:
                    for q in range(q0, q1):
                        row[indices[q]] += weights[q] * cnt
            for o in range(c_ops.shape[0]):
                if j < c_ops[o, 0] or j >= c_ops[o, 1]:
                    continue
                hw, cig, cog, howo, kk = c_ops[o, 3], c_ops[o, 4], c_ops[o, 5], c_ops[o, 6], c_ops[o, 7]
                c = (j - c_ops[o, 0]) // hw
                pos = (j - c_ops[o, 0]) - c * hw
                co0 = (c // cig) * cog
                w0 = c_ops[o, 8] + (co0 * cig + c % cig) * kk  # kernel[co0, c % cig, 0]
                w_step = cig * kk  # to the next output channel
                p0 = c_ops[o, 9] + pos
                d_uniform = c_ops[o, 11]
                c_slot = base + d_uniform
                if c_slot >= ring:
                    c_slot -= ring
                for e in range(c_ptr[p0], c_ptr[p0 + 1]):
                    tap = c_ops[o, 10] + e
                    target = c_ops[o, 2] + co0 * howo + c_out[tap]
                    w = w0 + c_k[tap]
                    for _ in range(cog):
                        if d_uniform == 0:
                            c_slot = base + c_delay[w]
                            if c_slot >= ring:
                                c_slot -= ring
                        if j < n:
                            buf[c_slot, b, target] += c_kernel[w]
                        else:  # an input's event count scales the patch as it scales a CSR row
                            buf[c_slot, b, target] += c_kernel[w] * cnt
                        target += howo
                        w += w_step
        for p in range(dense_tab.shape[0]):  # blocks run as a product: add their precomputed input
            slot = base + dense_tab[p, 3]
            if slot >= ring:
                slot -= ring
            lo, width, col = dense_tab[p, 0], dense_tab[p, 1], dense_tab[p, 2]
            for b in range(batch):
                add_into(buf[slot, b, lo:lo + width], dense_cur[k, b, col:col + width])
    return n_steps, n_ev

"""Source of the fused kernels, specialised by training.fused.kernels: it compiles a copy of this
file whose flag line (KIND, ZERO, REFR, SURROGATE) is replaced by the key's values, so numba sees
the flags as constants and each model's kernel carries only its own arithmetic (no adaptation in
a LIF, no refractory branch without a refractory period). Arithmetic: training.fused.kernels.

Both kernels run batch rows [b0, b1) and release the GIL, so the caller can split the batch
over threads.
"""
import numba
import numpy as np

KIND, ZERO, REFR, SURROGATE = "lif", False, False, "fast_sigmoid"  # FLAGS (replaced per kernel)
ALIF = KIND == "alif"
LI = KIND == "li"
# constants typed float32: exact in either dtype, and they keep a float32 kernel's arithmetic in
# float32 (a float64 literal would promote every expression it touches: float64 division, no
# vectors, 1.7x the backward's time), as the canonical float32 step computes in torch
ONE, ZERO_F, HALF = np.float32(1.0), np.float32(0.0), np.float32(0.5)


@numba.njit(inline="always", cache=True)
def sg(u, p0, p1):  # pragma: no cover (compiled)
    """Pseudo-derivative of the surrogate (training.surrogate): p0, p1 its parameters."""
    if SURROGATE == "fast_sigmoid":
        d = ONE + p0 * abs(u)
        return ONE / (d * d)
    if SURROGATE == "atan":  # p1 = pi/2 * alpha, rounded once by the caller
        w = p1 * u
        return (p0 * HALF) / (ONE + w * w)
    return p0 * max(ONE - abs(u) / p1, ZERO_F) / p1


@numba.njit(nogil=True, cache=True)
def forward(b0, b1, lag, x, bias, gain, alpha, beta, theta, rho, adapt, adapt_gain, refractory,
            i0, v0, a0, z0, r0, h, z, a_seq, act, fin_i, fin_v, fin_a, fin_r):  # pragma: no cover (compiled)
    T, B, N = h.shape
    for b in range(b0, b1):
        i = i0[b].copy()
        v = v0[b].copy()
        a = a0[b].copy()
        zp = z0[b].copy()
        r = r0[b].copy()
        for t in range(T):
            tx = t - lag  # x holds steps lag .. T - 1 (the steps before have no input)
            for n in range(N):
                ii = alpha[n] * i[n] + gain[n] * ((x[tx, b, n] if tx >= 0 else ZERO_F) + bias[n])
                i[n] = ii
                if LI:
                    hv = beta[n] * v[n] + ii
                    h[t, b, n] = hv
                    z[t, b, n] = ZERO_F
                    v[n] = hv
                    continue
                if ALIF:
                    aa = rho[n] * a[n] + adapt_gain[n] * zp[n]
                    a[n] = aa
                    a_seq[t, b, n] = aa
                    thr = theta[n] + adapt[n] * aa
                else:
                    thr = theta[n]
                if REFR:
                    on = r[n] <= 0
                    act[t, b, n] = on
                    hv = beta[n] * v[n] + ii if on else v[n]
                    s = ONE if (on and hv - thr > 0) else ZERO_F
                else:
                    hv = beta[n] * v[n] + ii
                    s = ONE if hv - thr > 0 else ZERO_F
                h[t, b, n] = hv
                z[t, b, n] = s
                if ALIF:
                    zp[n] = s
                if ZERO:
                    v[n] = hv - s * hv
                else:
                    v[n] = hv - s * theta[n]
                if REFR:
                    if s > 0:
                        r[n] = refractory[n]
                    elif r[n] > 0:
                        r[n] = r[n] - ONE
                    else:
                        r[n] = ZERO_F
        fin_i[b] = i
        fin_v[b] = v
        fin_a[b] = a
        fin_r[b] = r


@numba.njit(nogil=True, cache=True)
def backward(b0, b1, lag, gz, gv, gfin, h, z, a_seq, act, v0, gain, alpha, beta, theta, rho, adapt, adapt_gain,
             sp0, sp1, dx, dbias, dbeta, dtheta, d0):  # pragma: no cover (compiled)
    """Carries: pi, pv, pa = gradient reaching i, v, a of step t from later steps (at T - 1: the
    final state's gradients gfin[0:3]); pz = gradient reaching z[t] through a[t + 1]. d0 gets the
    gradients of the initial state (i0, v0, a0, z0)."""
    T, B, N = h.shape
    for b in range(b0, b1):
        pi = gfin[0, b].copy()
        pv = gfin[1, b].copy()
        pa = gfin[2, b].copy()
        pz = np.zeros(N, h.dtype)
        for t in range(T - 1, -1, -1):
            for n in range(N):
                G = gv[t, b, n] + pv[n]
                hv = h[t, b, n]
                on = True
                if LI:
                    dh = G
                else:
                    s = z[t, b, n]
                    dz = gz[t, b, n]
                    if ALIF:
                        dz += pz[n]
                    if ZERO:
                        dh = G * (ONE - s)
                        dz -= hv * G
                    else:
                        dh = G
                        dz -= theta[n] * G
                        dtheta[b, n] -= s * G
                    if REFR:
                        on = act[t, b, n]
                    if on:
                        if ALIF:
                            du = dz * sg(hv - (theta[n] + adapt[n] * a_seq[t, b, n]), sp0, sp1)
                            da = pa[n] - adapt[n] * du
                        else:
                            du = dz * sg(hv - theta[n], sp0, sp1)
                        dh += du
                        dtheta[b, n] -= du
                    elif ALIF:
                        da = pa[n]
                    if ALIF:
                        pa[n] = rho[n] * da
                        pz[n] = adapt_gain[n] * da
                if on:
                    di = pi[n] + dh
                    pv[n] = beta[n] * dh
                    if t > 0:
                        hp = h[t - 1, b, n]
                        if LI:
                            vp = hp
                        elif ZERO:
                            vp = hp - z[t - 1, b, n] * hp
                        else:
                            vp = hp - z[t - 1, b, n] * theta[n]
                    else:
                        vp = v0[b, n]
                    dbeta[b, n] += vp * dh
                else:
                    di = pi[n]
                    pv[n] = dh
                pi[n] = alpha[n] * di
                dxv = gain[n] * di
                dbias[b, n] += dxv
                if t >= lag:
                    dx[t - lag, b, n] = dxv
        d0[0, b] = pi
        d0[1, b] = pv
        d0[2, b] = pa if ALIF else pa * ZERO_F
        d0[3, b] = pz

// Kernels of the CuPy backend; neurosim/backends/cupy_backend.py documents the contract.
//
// `real` (float or double) is typedef'd in front of this text by cupy_backend.kernel_source().
// Compiled with -fmad=false: every a*b + c stays a rounded product and a rounded sum, in the
// order of neurosim.models.neuron_step, so float64 (and float32) arithmetic equals NumPy's.
// Kernels never cooperate inside a block (no shared memory, no __syncthreads, no warp
// shuffles): each thread's work is independent, atomics aside, and grid-stride loops make
// every kernel correct for any grid size.
//
// Layouts (row-major): P (N_PARAMS, n); S (N_STATE, batch, n); buf (ring, batch, n);
// hist (ring, batch, n + n_src) uint8; src (steps, batch, n_src) uint8; spike list entries
// b * (n + n_src) + j; event codes (k * batch + b) * n + j with k the step inside the chunk.
// clk[0] is the first step of the running graph or launch inside the chunk, clk[1] is t0.

typedef long long i64;

// Field order of neurosim.models.NeuronParams and NeuronState (checked by the tests).
enum { P_ALPHA, P_BETA, P_THETA, P_BIAS, P_GAIN, P_RHO, P_ADAPT, P_ADAPT_GAIN, P_REFRACTORY,
       P_RESET_ZERO, P_SPIKING, N_PARAMS };
enum { S_I, S_V, S_A, S_Z, S_R, N_STATE };

// One canonical step of neuron j in state slot s = b * n + j; the loop form of neuron_step.
__device__ __forceinline__ bool neuron_update(const real* __restrict__ P, real* __restrict__ S,
                                              const i64 n, const i64 bn, const int j, const i64 s,
                                              const real x)
{
    const real zero = (real)0;
    const real i = P[P_ALPHA * n + j] * S[S_I * bn + s] + P[P_GAIN * n + j] * (x + P[P_BIAS * n + j]);
    const real a = P[P_RHO * n + j] * S[S_A * bn + s] + P[P_ADAPT_GAIN * n + j] * S[S_Z * bn + s];
    real r = S[S_R * bn + s];
    real v = S[S_V * bn + s];
    const bool active = r <= zero;
    if (active) {
        v = P[P_BETA * n + j] * v + i;
    }
    const real thr = P[P_THETA * n + j] + P[P_ADAPT * n + j] * a;
    real z = zero;
    if (active && P[P_SPIKING * n + j] > zero && v - thr > zero) {
        z = (real)1;
        v = P[P_RESET_ZERO * n + j] > zero ? v - v : v - P[P_THETA * n + j];
        r = P[P_REFRACTORY * n + j];
    } else if (r > zero) {
        r = r - (real)1;
    }
    S[S_I * bn + s] = i;
    S[S_V * bn + s] = v;
    S[S_A * bn + s] = a;
    S[S_Z * bn + s] = z;
    S[S_R * bn + s] = r;
    return z > zero;
}

// x of target `post` (trial offset bofs = b * nt) at step t: its incoming synapses are sorted by
// (delay descending, presynaptic index, CSR position), which is the order in which the NumPy
// reference adds them into its ring buffer, so the sum is the same to the last bit.
__device__ __forceinline__ real gather_input(const i64* __restrict__ in_ptr, const int* __restrict__ in_pre,
                                             const real* __restrict__ in_w, const int* __restrict__ in_d,
                                             const unsigned char* __restrict__ hist, const int hist_ring,
                                             const i64 t, const i64 bnt, const i64 bofs, const int post)
{
    real acc = (real)0;
    for (i64 q = in_ptr[post]; q < in_ptr[post + 1]; ++q) {
        const i64 te = t - in_d[q];
        if (te >= 0 && hist[(te % hist_ring) * bnt + bofs + in_pre[q]]) {
            acc = acc + in_w[q];
        }
    }
    return acc;
}

// One step of every neuron and input channel (thread per (b, j), j < n + n_src).
// x comes from the ring slot t % buf_ring (zeroed after reading) or, with gather != 0, from
// gather_input. Neuron spikes are recorded as event codes; spikes of neurons and inputs go to
// the spike list (use_list != 0, for propagate) and/or the uint8 history (hist_ring > 0).
extern "C" __global__ void update(const real* __restrict__ P, real* __restrict__ S,
                                  real* __restrict__ buf, const int buf_ring,
                                  const i64* __restrict__ in_ptr, const int* __restrict__ in_pre,
                                  const real* __restrict__ in_w, const int* __restrict__ in_d, const int gather,
                                  unsigned char* __restrict__ hist, const int hist_ring,
                                  const unsigned char* __restrict__ src,
                                  i64* __restrict__ spk, unsigned int* __restrict__ n_spk, const int use_list,
                                  i64* __restrict__ ev, unsigned long long* __restrict__ n_ev, const i64 ev_cap,
                                  const i64* __restrict__ clk, const int kk,
                                  const int batch, const int n, const int n_src)
{
    const i64 k = clk[0] + kk;
    const i64 t = clk[1] + k;
    const i64 nt = (i64)n + n_src;
    const i64 bn = (i64)batch * n;
    const i64 total = (i64)batch * nt;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int b = (int)(idx / nt);
        const int j = (int)(idx - (i64)b * nt);
        bool fired;
        if (j < n) {
            const i64 s = (i64)b * n + j;
            real x;
            if (gather) {
                x = gather_input(in_ptr, in_pre, in_w, in_d, hist, hist_ring, t, total, (i64)b * nt, j);
            } else {
                real* slot = buf + (t % buf_ring) * bn + s;
                x = *slot;
                *slot = (real)0;
            }
            fired = neuron_update(P, S, n, bn, j, s, x);
            if (fired) {
                const unsigned long long pos = atomicAdd(n_ev, 1ULL);
                if (pos < (unsigned long long)ev_cap) {
                    ev[pos] = (k * batch + b) * n + j;
                }
            }
        } else {
            fired = src[(k * batch + b) * n_src + (j - n)] != 0;
        }
        if (hist_ring > 0) {
            hist[(t % hist_ring) * total + idx] = fired ? 1 : 0;
        }
        if (fired && use_list) {
            spk[atomicAdd(n_spk + k, 1u)] = idx;
        }
    }
}

// Event-driven propagation: one warp per listed spike, its lanes over the spike's CSR row,
// atomicAdd of each weight into ring slot (t + delay) % ring of the target. d_uniform > 0 is
// the delay of every synapse (the delays array is then not read).
extern "C" __global__ void propagate(const i64* __restrict__ indptr, const int* __restrict__ indices,
                                     const real* __restrict__ weights, const int* __restrict__ delays,
                                     const int d_uniform, const i64* __restrict__ spk,
                                     const unsigned int* __restrict__ n_spk, real* __restrict__ buf,
                                     const int ring, const i64* __restrict__ clk, const int kk,
                                     const int batch, const int n, const int n_src)
{
    const i64 k = clk[0] + kk;
    const int t_mod = (int)((clk[1] + k) % ring);
    const i64 nt = (i64)n + n_src;
    const i64 bn = (i64)batch * n;
    const i64 m = n_spk[k];
    const int lane = threadIdx.x & 31;
    const i64 warps = ((i64)gridDim.x * blockDim.x) >> 5;
    for (i64 e = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5; e < m; e += warps) {
        const i64 code = spk[e];
        const i64 b = code / nt;
        const i64 j = code - b * nt;
        real* base = buf + b * n;
        const i64 end = indptr[j + 1];
        for (i64 q = indptr[j] + lane; q < end; q += 32) {
            const int d = d_uniform > 0 ? d_uniform : delays[q];
            atomicAdd(base + ((t_mod + d) % ring) * bn + indices[q], weights[q]);
        }
    }
}

// Event-driven convolution (neurosim/conv_plan.py states the tables): one warp per listed
// spike; for every op whose pre range holds it, the lanes run over its (tap, output channel)
// pairs and atomicAdd kernel[w] into ring slot (t + delay[w]) % ring of the target.
// ops: n_ops rows of 11 i64 (pre_lo, pre_hi, post_lo, hw, cig, cog, howo, kk, kern_off,
// ptr_off, tap_off).
extern "C" __global__ void propagate_conv(const i64* __restrict__ ops, const int n_ops,
                                          const real* __restrict__ kern, const int* __restrict__ kdelay,
                                          const i64* __restrict__ tap_ptr, const int* __restrict__ tap_k,
                                          const int* __restrict__ tap_out, const i64* __restrict__ spk,
                                          const unsigned int* __restrict__ n_spk, real* __restrict__ buf,
                                          const int ring, const i64* __restrict__ clk, const int kk,
                                          const int batch, const int n, const int n_src)
{
    const i64 k = clk[0] + kk;
    const int t_mod = (int)((clk[1] + k) % ring);
    const i64 nt = (i64)n + n_src;
    const i64 bn = (i64)batch * n;
    const i64 m = n_spk[k];
    const int lane = threadIdx.x & 31;
    const i64 warps = ((i64)gridDim.x * blockDim.x) >> 5;
    for (i64 e = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5; e < m; e += warps) {
        const i64 code = spk[e];
        const i64 b = code / nt;
        const i64 j = code - b * nt;
        real* base = buf + b * n;
        for (int o = 0; o < n_ops; ++o) {
            const i64* op = ops + 11 * (i64)o;
            if (j < op[0] || j >= op[1]) continue;
            const i64 hw = op[3], cig = op[4], cog = op[5], howo = op[6], kkk = op[7];
            const i64 c = (j - op[0]) / hw;
            const i64 pos = (j - op[0]) - c * hw;
            const i64 cl = c % cig;
            const i64 co0 = (c / cig) * cog;
            const i64 first = tap_ptr[op[9] + pos];
            const i64 pairs = (tap_ptr[op[9] + pos + 1] - first) * cog;
            for (i64 q = lane; q < pairs; q += 32) {
                const i64 tap = op[10] + first + q / cog;
                const i64 co = co0 + q % cog;
                const i64 w = op[8] + (co * cig + cl) * kkk + tap_k[tap];
                atomicAdd(base + ((t_mod + kdelay[w]) % ring) * bn + op[2] + co * howo + tap_out[tap], kern[w]);
            }
        }
    }
}

// Traces of the recorded neurons idx_tr (n_tr of them) at step k into tr (4 slots, steps_cap,
// batch, n_tr); a slot index < 0 leaves that variable out.
extern "C" __global__ void record(const real* __restrict__ P, const real* __restrict__ S,
                                  const i64* __restrict__ idx_tr, const int n_tr, real* __restrict__ tr,
                                  const i64 steps_cap, const int slot_v, const int slot_i, const int slot_a,
                                  const int slot_thr, const i64* __restrict__ clk, const int kk,
                                  const int batch, const int n)
{
    const i64 k = clk[0] + kk;
    const i64 bn = (i64)batch * n;
    const i64 total = (i64)batch * n_tr;
    const i64 var_stride = steps_cap * total;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += stride) {
        const i64 b = e / n_tr;
        const i64 j = idx_tr[e - b * n_tr];
        const i64 s = b * n + j;
        const i64 out = k * total + e;
        if (slot_v >= 0) tr[slot_v * var_stride + out] = S[S_V * bn + s];
        if (slot_i >= 0) tr[slot_i * var_stride + out] = S[S_I * bn + s];
        if (slot_a >= 0) tr[slot_a * var_stride + out] = S[S_A * bn + s];
        if (slot_thr >= 0) tr[slot_thr * var_stride + out] = P[P_THETA * n + j] + P[P_ADAPT * n + j] * S[S_A * bn + s];
    }
}

// Chunk clock: set_clock at the start of a chunk, advance after each graph or direct step.
extern "C" __global__ void set_clock(i64* __restrict__ clk, const i64 t0)
{
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        clk[0] = 0;
        clk[1] = t0;
    }
}

extern "C" __global__ void advance(i64* __restrict__ clk, const int steps)
{
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        clk[0] += steps;
    }
}

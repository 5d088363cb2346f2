// bioheat.cu -- explicit (forward Euler) time steps of the Pennes bioheat equation on a 3-D grid.
//
//     rho c dT/dt = div(k grad T) - w_b c_b (T - T_a) + Q
//
// discretised with the conservative 7-point finite-volume stencil (face conductances by the
// harmonic mean of the two voxels' conductivities, so the heat flux is continuous across tissue
// interfaces). Everything that does not change from step to step is folded into per-voxel and
// per-face coefficient arrays by the caller (fus/kernels/bioheat.py), so one step is
//
//     T'[i] = T[i] + a[i] * sum_f g_f (T[nb_f(i)] - T[i])  +  s[i] - p[i] * T[i]
//
//   g0, g1, g2  float32 [n]  conductance of the face between voxel i and its +1 neighbour along
//                            axis 0, 1, 2: k_face / h_axis^2 [W/m^3/K]; the value stored at the
//                            last voxel of an axis must be 0 (it only meets a zero difference);
//   a           float32 [n]  dt / (rho c)                        [m^3 K / J]
//   p           float32 [n]  dt * (w_b c_b + G_fixed) / (rho c)  [1]
//   s           float32 [n]  dt * (w_b c_b T_a + Q + G_fixed T_fixed) / (rho c)   [K]
//
// G_fixed is the conductance to fixed-temperature (Dirichlet) grid faces, whose flux is therefore
// part of p and s; in the stencil the grid boundary carries no flux. The increment is formed from
// differences of neighbouring temperatures and added last, so float32 keeps ~1 ulp of T per step.
//
// One call advances n_steps steps, ping-ponging between two buffers: step number m (1-based)
// reads buffer (m-1)&1 and writes buffer m&1 of {t, tmp}; the result is in t for even n_steps and
// in tmp for odd. Steps are done as a wavefront over the planes of axis 0: step m of plane z only
// needs step m-1 of planes z-1..z+1, so several steps of a few planes are in flight at once and
// their data stays in cache (CPU, temporal blocking) / in one launch (GPU). Writing step m of
// plane z into the buffer of step m-2 is safe once every reader of that plane at step m-2
// (step m-1 of planes z-1..z+1) has finished; each wrapper orders its work so that they have.
//
// Layout (both backends, see fus/backend/signatures.py): C-order arrays of shape (n0, n1, n2),
// axis 2 contiguous; n = n0 * n1 * n2.
//   sync   int32 [1 + n_steps * n0], zero on entry (GPU: block ticket counter and per-step, per-plane
//          completion counters; the CPU ignores it);
//   n_chunks  GPU work items per plane (each a range of rows along axis 1); the CPU ignores it;
//   n_work    n_steps * n0 * n_chunks * BIOHEAT_BLOCK: the GPU launch size (one block per item).
// NaN in T, in a neighbour or in a coefficient makes the voxel NaN (no finite-math tricks).
#include "fus_portable.cuh"

#define BIOHEAT_BLOCK 256

// The update of one voxel from its own and its six neighbours' temperatures and face conductances.
// A missing neighbour (grid boundary) is passed as the voxel's own temperature: zero flux.
FUS_HD float bioheat_point(float t, float t0m, float t0p, float t1m, float t1p, float t2m, float t2p,
                           float g0m, float g0p, float g1m, float g1p, float g2m, float g2p, float a,
                           float p, float s) {
    float f = g2m * (t2m - t);
    f = fmaf(g2p, t2p - t, f);
    f = fmaf(g1m, t1m - t, f);
    f = fmaf(g1p, t1p - t, f);
    f = fmaf(g0m, t0m - t, f);
    f = fmaf(g0p, t0p - t, f);
    float d = fmaf(a, f, s);
    d = fmaf(-p, t, d);
    return t + d;
}

#if FUS_GPU

// One block per work item = (step, plane z, chunk of rows); items are handed out in the order
// step-major by a ticket counter, so a block only waits for items with smaller tickets, i.e. for
// blocks that are already running: the wait cannot deadlock whatever the number of resident blocks.
// Temperatures written in this launch are read with __ldcg (L2, not the incoherent L1).
FUS_GLOBAL void __launch_bounds__(BIOHEAT_BLOCK)
    bioheat_steps(float* FUS_RESTRICT t, float* FUS_RESTRICT tmp, const float* FUS_RESTRICT g0,
                  const float* FUS_RESTRICT g1, const float* FUS_RESTRICT g2,
                  const float* FUS_RESTRICT a, const float* FUS_RESTRICT p,
                  const float* FUS_RESTRICT s, fus_i32* sync, fus_i32 n0, fus_i32 n1, fus_i32 n2,
                  fus_i32 n, fus_i32 n_steps, fus_i32 n_chunks, fus_i32 n_work) {
    (void)n;
    (void)n_work;
    FUS_REQUIRE_BLOCK(BIOHEAT_BLOCK);
    __shared__ fus_i32 ticket_s;
    if (threadIdx.x == 0) ticket_s = atomicAdd(&sync[0], 1);
    __syncthreads();
    const fus_i32 ticket = ticket_s;
    const fus_i32 per_step = n0 * n_chunks;
    if (ticket >= n_steps * per_step) return;
    const fus_i32 step = ticket / per_step + 1;  // 1 .. n_steps
    const fus_i32 rem = ticket - (step - 1) * per_step;
    const fus_i32 z = rem / n_chunks;
    const fus_i32 chunk = rem - z * n_chunks;
    fus_i32* done = sync + 1;  // done[(m - 1) * n0 + z]: finished chunks of step m, plane z

    if (step > 1 && threadIdx.x == 0) {
        const fus_i32 zlo = (z > 0) ? z - 1 : z;
        const fus_i32 zhi = (z < n0 - 1) ? z + 1 : z;
        for (fus_i32 zz = zlo; zz <= zhi; ++zz) {
            fus_i32* flag = done + (step - 2) * n0 + zz;
            while (fus_poll(flag) < n_chunks) __nanosleep(32);
        }
        __threadfence();
    }
    __syncthreads();

    const float* src = ((step - 1) & 1) ? tmp : t;
    float* dst = (step & 1) ? tmp : t;
    const fus_i32 rows = (n1 + n_chunks - 1) / n_chunks;
    const fus_i32 r0 = chunk * rows;
    const fus_i32 r1 = min(n1, r0 + rows);
    const fus_i32 s1 = n2;
    const fus_i32 s0 = n1 * n2;
    const fus_i32 first = z * s0 + r0 * n2;
    const fus_i32 count = (r1 > r0) ? (r1 - r0) * n2 : 0;
    for (fus_i32 k = (fus_i32)threadIdx.x; k < count; k += BIOHEAT_BLOCK) {
        const fus_i32 i = first + k;
        const fus_i32 i2 = k % n2;
        const fus_i32 i1 = r0 + k / n2;
        const fus_i32 j2m = (i2 > 0) ? i - 1 : i;
        const fus_i32 j2p = (i2 < n2 - 1) ? i + 1 : i;
        const fus_i32 j1m = (i1 > 0) ? i - s1 : i;
        const fus_i32 j1p = (i1 < n1 - 1) ? i + s1 : i;
        const fus_i32 j0m = (z > 0) ? i - s0 : i;
        const fus_i32 j0p = (z < n0 - 1) ? i + s0 : i;
        dst[i] = bioheat_point(__ldcg(src + i), __ldcg(src + j0m), __ldcg(src + j0p),
                               __ldcg(src + j1m), __ldcg(src + j1p), __ldcg(src + j2m),
                               __ldcg(src + j2p), g0[j0m], g0[i], g1[j1m], g1[i], g2[j2m], g2[i],
                               a[i], p[i], s[i]);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        atomicAdd(done + (step - 1) * n0 + z, 1);
    }
}

#else  // CPU

// One row along axis 2 (contiguous). The rows of the neighbours along axes 0 and 1 are passed in;
// at a grid boundary the caller passes the row itself (zero flux).
//
// in_memory: the elements just before and just after the row exist in the array (every row but
// the very first and very last). Then the whole row is one vectorised loop: the axis-2
// neighbours are loaded unconditionally and replaced by the voxel itself at the two row ends
// (a select, so a NaN in the adjacent row cannot leak in). Otherwise the two end voxels are peeled.
static inline void bioheat_row(const float* FUS_RESTRICT t, const float* FUS_RESTRICT t0m,
                               const float* FUS_RESTRICT t0p, const float* FUS_RESTRICT t1m,
                               const float* FUS_RESTRICT t1p, const float* FUS_RESTRICT g0m,
                               const float* FUS_RESTRICT g0p, const float* FUS_RESTRICT g1m,
                               const float* FUS_RESTRICT g1p, const float* FUS_RESTRICT g2,
                               const float* FUS_RESTRICT a, const float* FUS_RESTRICT p,
                               const float* FUS_RESTRICT s, fus_i32 n2, bool in_memory,
                               float* FUS_RESTRICT out) {
    const fus_i32 e = n2 - 1;
    if (in_memory) {
        FUS_SIMD
        for (fus_i32 x = 0; x < n2; ++x) {
            const float tc = t[x];
            float tm = t[x - 1];
            float tp = t[x + 1];
            tm = (x == 0) ? tc : tm;
            tp = (x == e) ? tc : tp;
            const float gm = (x == 0) ? 0.0f : g2[x - 1];
            const float gp = (x == e) ? 0.0f : g2[x];
            out[x] = bioheat_point(tc, t0m[x], t0p[x], t1m[x], t1p[x], tm, tp, g0m[x], g0p[x],
                                   g1m[x], g1p[x], gm, gp, a[x], p[x], s[x]);
        }
        return;
    }
    if (n2 == 1) {
        out[0] = bioheat_point(t[0], t0m[0], t0p[0], t1m[0], t1p[0], t[0], t[0], g0m[0], g0p[0],
                               g1m[0], g1p[0], 0.0f, 0.0f, a[0], p[0], s[0]);
        return;
    }
    out[0] = bioheat_point(t[0], t0m[0], t0p[0], t1m[0], t1p[0], t[0], t[1], g0m[0], g0p[0], g1m[0],
                           g1p[0], 0.0f, g2[0], a[0], p[0], s[0]);
    FUS_SIMD
    for (fus_i32 x = 1; x < e; ++x) {
        out[x] = bioheat_point(t[x], t0m[x], t0p[x], t1m[x], t1p[x], t[x - 1], t[x + 1], g0m[x],
                               g0p[x], g1m[x], g1p[x], g2[x - 1], g2[x], a[x], p[x], s[x]);
    }
    out[e] = bioheat_point(t[e], t0m[e], t0p[e], t1m[e], t1p[e], t[e - 1], t[e], g0m[e], g0p[e],
                           g1m[e], g1p[e], g2[e - 1], 0.0f, a[e], p[e], s[e]);
}

#ifndef __CUDACC_RTC__
#include <stdlib.h>
#endif

// One step of row (z, i1) from `t` into `out`. Each buffer holds rows [lo, lo + rn) of every plane
// (the shared grid: lo = 0, rn = n1; a thread's private strip otherwise). Coefficients are indexed
// globally; the grid's own boundaries are zero-flux in the stencil; the neighbour rows of a
// computed row must be in the input buffer.
static inline void bioheat_row_step(const float* t, fus_i32 t_lo, fus_i32 t_rn, const float* g0,
                                    const float* g1, const float* g2, const float* a,
                                    const float* p, const float* s, fus_i32 n0, fus_i32 n1,
                                    fus_i32 n2, fus_i32 z, fus_i32 i1, float* out, fus_i32 o_lo,
                                    fus_i32 o_rn) {
    const size_t s1 = (size_t)n2;
    const size_t gs0 = (size_t)n1 * n2;                    // global plane stride
    const size_t bs0 = (size_t)t_rn * n2;                  // input plane stride
    const size_t gb = ((size_t)z * n1 + i1) * s1;          // global offset of the row
    const fus_i32 brow = z * t_rn + (i1 - t_lo);           // row index inside the input buffer
    const size_t b = (size_t)brow * s1;
    const size_t ob = ((size_t)z * o_rn + (i1 - o_lo)) * s1;
    // Missing neighbours: the row itself (zero difference; its g is finite).
    const size_t b0m = (z > 0) ? b - bs0 : b;
    const size_t b0p = (z < n0 - 1) ? b + bs0 : b;
    const size_t b1m = (i1 > 0) ? b - s1 : b;
    const size_t b1p = (i1 < n1 - 1) ? b + s1 : b;
    const size_t g0m = (z > 0) ? gb - gs0 : gb;
    const size_t g1m = (i1 > 0) ? gb - s1 : gb;
    const bool in_memory = brow > 0 && brow < n0 * t_rn - 1;
    bioheat_row(t + b, t + b0m, t + b0p, t + b1m, t + b1p, g0 + g0m, g0 + gb, g1 + g1m, g1 + gb,
                g2 + gb, a + gb, p + gb, s + gb, n2, in_memory, out + ob);
}

// Steps per block (odd): the ~10 streams (T in and out, 6 coefficients, neighbours) of the
// ~depth + 2 strip-planes in flight should stay in ~1.5 MB of L2 (measured on 128 x 128 planes in
// two strips, 2 MiB L2 per core: 3 is best; 7 is 40 % slower).
static inline fus_i32 bioheat_depth(fus_i32 rows, fus_i32 n2) {
    const double plane_bytes = 4.0 * rows * n2;
    fus_i32 depth = (fus_i32)(1.5e6 / (10.0 * plane_bytes)) - 2;
    depth = depth < 3 ? 3 : (depth > 7 ? 7 : depth);
    return depth | 1;
}

// CPU. One step: the rows of the grid shared by the team (one barrier). Blocks of k = depth (odd)
// steps: temporal blocking by overlapped strips with no synchronisation inside the block. Each
// thread owns the rows [r0, r1) (axis 1) of every plane. Step 1 reads the shared input over the
// strip widened by k - 1 halo rows per side (all its result depends on) into a private buffer,
// steps 2 .. k - 1 ping-pong between two private buffers (step m is valid on the strip widened by
// k - m rows), step k writes the thread's own rows to the shared output. Planes are visited in a
// wavefront (step m of plane z right after step m - 1 of plane z + 1), so their data stays in
// cache. As k is odd the output is the other shared buffer, which no thread reads during the
// block: one barrier per block, instead of one per plane and step -- on a shared machine a
// barrier waits for the slowest thread. Halo rows are computed by both neighbours (2 (k - 1) rows
// per strip of extra work). Leftover steps (fewer than k) run as single steps.
FUS_HOST_API void bioheat_steps(float* t, float* tmp, const float* g0, const float* g1,
                                const float* g2, const float* a, const float* p, const float* s,
                                fus_i32* sync, fus_i32 n0, fus_i32 n1, fus_i32 n2, fus_i32 n,
                                fus_i32 n_steps, fus_i32 n_chunks, fus_i32 n_work) {
    (void)sync;
    (void)n;
    (void)n_chunks;
    (void)n_work;
    float* buf[2] = {t, tmp};
    const size_t row_bytes = (size_t)n2 * sizeof(float);
    FUS_PARALLEL
    {
        const fus_i32 nt = fus_team_size();
#if defined(_OPENMP)
        const fus_i32 id = (fus_i32)omp_get_thread_num();
#else
        const fus_i32 id = 0;
#endif
        const fus_i32 per = n1 / nt, extra = n1 % nt;
        const fus_i32 r0 = id * per + (id < extra ? id : extra);
        const fus_i32 r1 = r0 + per + (id < extra ? 1 : 0);
        // one depth for the whole team (strips differ by at most one row)
        const fus_i32 k = bioheat_depth(per > 0 ? per : 1, n2);
        const fus_i32 blocks = (n_steps >= k && per > 0) ? n_steps / k : 0;
        float* priv[2] = {NULL, NULL};
        fus_i32 ok = 1;
        if (blocks > 0 && r1 > r0) {
            const fus_i32 rows = ((r1 - r0) + 2 * (k - 1) < n1) ? (r1 - r0) + 2 * (k - 1) : n1;
            priv[0] = (float*)malloc((size_t)n0 * rows * row_bytes);
            priv[1] = (float*)malloc((size_t)n0 * rows * row_bytes);
            ok = priv[0] != NULL && priv[1] != NULL;
        }
        for (fus_i32 blk = 0; blk < blocks; ++blk) {
            const fus_i32 base = blk * k;
            const float* src = buf[base & 1];
            float* dst = buf[(base + k) & 1];
            const fus_i32 lo = (r0 - (k - 1) > 0) ? r0 - (k - 1) : 0;
            const fus_i32 hi = (r1 + (k - 1) < n1) ? r1 + (k - 1) : n1;
            const fus_i32 rn = hi - lo;
            if (r1 > r0 && ok) {
                for (fus_i32 w = 0; w < n0 + k - 1; ++w) {
                    for (fus_i32 m = 1; m <= k; ++m) {
                        const fus_i32 z = w - (m - 1);
                        if (z < 0 || z >= n0) continue;
                        const fus_i32 vlo = (lo > 0) ? lo + (m - 1) : 0;  // rows needed after step m
                        const fus_i32 vhi = (hi < n1) ? hi - (m - 1) : n1;
                        const fus_i32 c_lo = (m == k) ? r0 : vlo;
                        const fus_i32 c_hi = (m == k) ? r1 : vhi;
                        const float* in = (m == 1) ? src : priv[m & 1];
                        const fus_i32 in_lo = (m == 1) ? 0 : lo, in_rn = (m == 1) ? n1 : rn;
                        float* o = (m == k) ? dst : priv[(m + 1) & 1];
                        const fus_i32 o_lo = (m == k) ? 0 : lo, o_rn = (m == k) ? n1 : rn;
                        for (fus_i32 i1 = c_lo; i1 < c_hi; ++i1) {
                            bioheat_row_step(in, in_lo, in_rn, g0, g1, g2, a, p, s, n0, n1, n2, z, i1, o, o_lo, o_rn);
                        }
                    }
                }
            } else if (r1 > r0) {
                // no memory for the private strips: mark the strip unusable rather than wrong
                for (fus_i32 z = 0; z < n0; ++z)
                    for (size_t i = ((size_t)z * n1 + r0) * n2; i < ((size_t)z * n1 + r1) * n2; ++i) dst[i] = NAN;
            }
            FUS_PRAGMA(omp barrier)  // dst complete before the next block reads it
        }
        free(priv[0]);
        free(priv[1]);
        // leftover steps, one at a time on the shared buffers
        for (fus_i32 step = blocks * k + 1; step <= n_steps; ++step) {
            const float* in = buf[(step - 1) & 1];
            float* o = buf[step & 1];
            FUS_FOR_SHARED(row, n0 * n1) {
                bioheat_row_step(in, 0, n1, g0, g1, g2, a, p, s, n0, n1, n2, row / n1, row % n1, o, 0, n1);
            }
        }
    }
}

#endif

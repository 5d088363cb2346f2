// rayleigh.cu -- sum of monopole point sources (the discrete Rayleigh integral).
//
// For N field points x_n and M point sources y_m with complex weights w_m and complex wavenumber
// kappa = k - i*alpha (k [rad/m], alpha [Np/m] >= 0):
//
//     P(x_n) = sum_m  w_m * exp(-i * kappa * r_nm) / r_nm
//            = sum_m  w_m * exp(-alpha * r_nm) * (cos(k r_nm) - i sin(k r_nm)) / r_nm,
//     r_nm = |x_n - y_m|   [m],
//
// the outgoing wave of the time convention p(x, t) = Re{P(x) exp(i w t)}. Arithmetic is float32
// with float32 accumulation; the phase k*r is carried with the rounding errors of the product and
// of the square root compensated (two FMAs), so that the phase error stays ~1e-7 * k r rad.
//
// Coincident point (r == 0, i.e. |x_n - y_m|^2 underflows to 0 in float32): that source's term is
// excluded (contributes exactly 0): the self term of a discretised surface integral is singular and
// is left to the caller (the patch code integrates it). NaN in a coordinate, a weight or the
// wavenumber gives NaN in the affected outputs.
//
// Layout (the same for both backends, see fus/backend/signatures.py):
//   src   float32 [3*M]  structure of arrays: x[0..M), y[0..M), z[0..M)   [m]
//   w     float32 [2*M]  structure of arrays: Re w[0..M), Im w[0..M)
//   pts   float32 [3*N]  array of structures: x0 y0 z0 x1 y1 z1 ...       [m]
//   out   float32 [2*N]  interleaved complex64: Re P0, Im P0, Re P1, ...
#include "fus_portable.cuh"

struct fus_c32 {
    float re, im;
};

// One source's contribution at one field point. ATTEN = false skips exp(-alpha r) (alpha == 0).
template <bool ATTEN>
FUS_HD fus_c32 rayleigh_term(float px, float py, float pz, float sx, float sy, float sz, float wr,
                             float wi, float k, float alpha) {
    float dx = px - sx;
    float dy = py - sy;
    float dz = pz - sz;
    float d2 = fmaf(dx, dx, fmaf(dy, dy, dz * dz));
    float r = sqrtf(d2);
    float inv_r = 1.0f / r;
    inv_r = (d2 == 0.0f) ? 0.0f : inv_r;  // coincident source excluded; NaN keeps NaN
    // phase = k*r carried as hi + lo: lo holds the rounding error of sqrt and of the product.
    float sqrt_err = fmaf(-r, r, d2) * (0.5f * inv_r);  // d2 - r^2 (exact by FMA) / (2 r)
    float ph = k * r;
    float ph_lo = fmaf(k, r, -ph) + k * sqrt_err;
    float s, c;
    fus_sincos(ph, ph_lo, &s, &c);
    float a = inv_r;
    if (ATTEN) a *= fus_exp(-alpha * r);
    // w * a * (c - i s)
    float er = a * c;
    float ei = -a * s;
    fus_c32 t;
    t.re = wr * er - wi * ei;
    t.im = wr * ei + wi * er;
    return t;
}

#if FUS_GPU

#define RAYLEIGH_BLOCK 256

template <bool ATTEN>
__device__ __forceinline__ void rayleigh_block(const float* FUS_RESTRICT src,
                                               const float* FUS_RESTRICT w,
                                               const float* FUS_RESTRICT pts, float k,
                                               float alpha, fus_i32 n_src, fus_i32 n_pts,
                                               float* FUS_RESTRICT out, float* tile) {
    // Sources are staged through shared memory in tiles of blockDim.x (== RAYLEIGH_BLOCK);
    // every thread of the block takes part in the loads and barriers, active or not.
    float* tx = tile;
    float* ty = tile + RAYLEIGH_BLOCK;
    float* tz = tile + 2 * RAYLEIGH_BLOCK;
    float* twr = tile + 3 * RAYLEIGH_BLOCK;
    float* twi = tile + 4 * RAYLEIGH_BLOCK;
    const fus_i32 n = (fus_i32)(blockIdx.x * blockDim.x + threadIdx.x);
    const bool active = n < n_pts;
    float px = 0.0f, py = 0.0f, pz = 0.0f;
    if (active) {
        px = pts[3 * (long long)n];
        py = pts[3 * (long long)n + 1];
        pz = pts[3 * (long long)n + 2];
    }
    float acc_re = 0.0f, acc_im = 0.0f;
    for (fus_i32 base = 0; base < n_src; base += RAYLEIGH_BLOCK) {
        const fus_i32 m = base + (fus_i32)threadIdx.x;
        if (m < n_src) {
            tx[threadIdx.x] = src[m];
            ty[threadIdx.x] = src[n_src + m];
            tz[threadIdx.x] = src[2 * n_src + m];
            twr[threadIdx.x] = w[m];
            twi[threadIdx.x] = w[n_src + m];
        }
        __syncthreads();
        const fus_i32 count = min(RAYLEIGH_BLOCK, n_src - base);
        for (fus_i32 t = 0; t < count; ++t) {
            fus_c32 v = rayleigh_term<ATTEN>(px, py, pz, tx[t], ty[t], tz[t], twr[t], twi[t], k,
                                             alpha);
            acc_re += v.re;
            acc_im += v.im;
        }
        __syncthreads();
    }
    if (active) {
        out[2 * (long long)n] = acc_re;
        out[2 * (long long)n + 1] = acc_im;
    }
}

// Launch: one thread per field point, blockDim.x == RAYLEIGH_BLOCK, gridDim.x = ceil(N / block).
FUS_GLOBAL void __launch_bounds__(RAYLEIGH_BLOCK)
    rayleigh(const float* FUS_RESTRICT src, const float* FUS_RESTRICT w,
             const float* FUS_RESTRICT pts, float k, float alpha, fus_i32 n_src, fus_i32 n_pts,
             float* FUS_RESTRICT out) {
    __shared__ float tile[5 * RAYLEIGH_BLOCK];
    if (alpha != 0.0f)
        rayleigh_block<true>(src, w, pts, k, alpha, n_src, n_pts, out, tile);
    else
        rayleigh_block<false>(src, w, pts, k, alpha, n_src, n_pts, out, tile);
}

#else  // CPU

template <bool ATTEN>
static void rayleigh_cpu(const float* FUS_RESTRICT src, const float* FUS_RESTRICT w,
                         const float* FUS_RESTRICT pts, float k, float alpha, fus_i32 n_src,
                         fus_i32 n_pts, float* FUS_RESTRICT out) {
    const float* FUS_RESTRICT sx = src;
    const float* FUS_RESTRICT sy = src + n_src;
    const float* FUS_RESTRICT sz = src + 2 * (size_t)n_src;
    const float* FUS_RESTRICT wr = w;
    const float* FUS_RESTRICT wi = w + n_src;
    FUS_FOR_EACH(n, n_pts) {
        const float px = pts[3 * (size_t)n];
        const float py = pts[3 * (size_t)n + 1];
        const float pz = pts[3 * (size_t)n + 2];
        float acc_re = 0.0f, acc_im = 0.0f;
        FUS_SIMD_REDUCE2(acc_re, acc_im)
        for (fus_i32 m = 0; m < n_src; ++m) {
            fus_c32 v = rayleigh_term<ATTEN>(px, py, pz, sx[m], sy[m], sz[m], wr[m], wi[m], k, alpha);
            acc_re += v.re;
            acc_im += v.im;
        }
        out[2 * (size_t)n] = acc_re;
        out[2 * (size_t)n + 1] = acc_im;
    }
}

FUS_HOST_API void rayleigh(const float* src, const float* w, const float* pts, float k, float alpha,
                           fus_i32 n_src, fus_i32 n_pts, float* out) {
    if (alpha != 0.0f)
        rayleigh_cpu<true>(src, w, pts, k, alpha, n_src, n_pts, out);
    else
        rayleigh_cpu<false>(src, w, pts, k, alpha, n_src, n_pts, out);
}

#endif

// ------------------------------------------------------------------------------------------------
// rayleigh_layered -- the same sum through planar layers along straight rays.
//
// Every source y_m lies in layer 0 (wavenumber kappa0 = k0 - i a0) and every field point x_n in a
// layer beyond the first interface z = z1 (planes perpendicular to z). Along the straight ray from
// y_m to x_n the complex phase is the path integral of kappa, which for planar layers is
//
//     Phi_nm = (r_nm / dz_nm) * (g_m + C_n),      dz_nm = z_n - z_m > 0,   r_nm = |x_n - y_m| [m],
//     g_m = kappa0 (z1 - z_m)                      [rad + i Np]  (per source),
//     C_n = integral from z1 to z_n of kappa dz    [rad + i Np]  (per point),
//
// and the kernel returns
//
//     P(x_n) = sum_m  w_m * exp(-i * Phi_nm) / r_nm
//            = sum_m  w_m * exp(-q (ga_m + ca_n)) * (cos(q (gr_m + cr_n)) - i sin(...)) / r_nm,
//     q = r_nm / dz_nm,  gr = Re g, ga = -Im g, cr = Re C, ca = -Im C.
//
// The per-point transmission product (and any other per-point factor) is the caller's. The phase
// is carried as hi + lo with the rounding errors of the square root, of the division by dz, of the
// sum gr + cr and of the product compensated (FMAs), so its error stays ~1e-7 * |Phi| rad.
//
// dz <= 0 (a point not beyond its source, outside the model) gives NaN in that point's output,
// never inf; so does r == 0 (which dz > 0 excludes except for dz < ~1e-22 m, where dz^2
// underflows). NaN in a coordinate, weight, g or C gives NaN in the outputs it reaches.
//
// Layout (see fus/backend/signatures.py):
//   src   float32 [3*M]  structure of arrays: x[0..M), y[0..M), z[0..M)              [m]
//   w     float32 [2*M]  structure of arrays: Re w[0..M), Im w[0..M)
//   g     float32 [2*M]  structure of arrays: gr[0..M) [rad], ga[0..M) [Np]
//   pts   float32 [5*N]  array of structures: x y z cr ca per point ([m], [m], [m], [rad], [Np])
//   out   float32 [2*N]  interleaved complex64: Re P0, Im P0, Re P1, ...

FUS_HD fus_c32 rayleigh_layered_term(float px, float py, float pz, float cr, float ca, float sx,
                                     float sy, float sz, float wr, float wi, float gr, float ga) {
    const float nan = fus_as_float(0x7fc00000);
    float dx = px - sx;
    float dy = py - sy;
    float dz = pz - sz;
    float d2 = fmaf(dx, dx, fmaf(dy, dy, dz * dz));
    float r = sqrtf(d2);
    float inv_r = 1.0f / r;
    float inv_dz = 1.0f / dz;
    inv_dz = (dz > 0.0f && d2 > 0.0f) ? inv_dz : nan;  // outside the model: NaN, not inf
    float sqrt_err = fmaf(-r, r, d2) * (0.5f * inv_r);  // r_true ~ r + sqrt_err
    // q = r / dz as q + q_lo (remainder of the division exact by FMA, plus the sqrt error)
    float q = r * inv_dz;
    float q_lo = (fmaf(-q, dz, r) + sqrt_err) * inv_dz;
    // s = gr + cr as s + s_lo (two-sum, exact)
    float s = gr + cr;
    float bb = s - gr;
    float s_lo = (gr - (s - bb)) + (cr - bb);
    // phase = q * s as ph + ph_lo
    float ph = q * s;
    float ph_lo = fmaf(q, s, -ph) + fmaf(q, s_lo, q_lo * s);
    float sn, cs;
    fus_sincos(ph, ph_lo, &sn, &cs);
    float a = inv_r * fus_exp(-q * (ga + ca));
    float er = a * cs;
    float ei = -a * sn;
    fus_c32 t;
    t.re = wr * er - wi * ei;
    t.im = wr * ei + wi * er;
    return t;
}

#if FUS_GPU

// Launch: one thread per field point, blockDim.x == RAYLEIGH_BLOCK, gridDim.x = ceil(N / block).
FUS_GLOBAL void __launch_bounds__(RAYLEIGH_BLOCK)
    rayleigh_layered(const float* FUS_RESTRICT src, const float* FUS_RESTRICT w,
                     const float* FUS_RESTRICT g, const float* FUS_RESTRICT pts, fus_i32 n_src,
                     fus_i32 n_pts, float* FUS_RESTRICT out) {
    // Sources are staged through shared memory in tiles of blockDim.x (== RAYLEIGH_BLOCK);
    // every thread of the block takes part in the loads and barriers, active or not.
    __shared__ float tile[7 * RAYLEIGH_BLOCK];
    float* tx = tile;
    float* ty = tile + RAYLEIGH_BLOCK;
    float* tz = tile + 2 * RAYLEIGH_BLOCK;
    float* twr = tile + 3 * RAYLEIGH_BLOCK;
    float* twi = tile + 4 * RAYLEIGH_BLOCK;
    float* tgr = tile + 5 * RAYLEIGH_BLOCK;
    float* tga = tile + 6 * RAYLEIGH_BLOCK;
    const fus_i32 n = (fus_i32)(blockIdx.x * blockDim.x + threadIdx.x);
    const bool active = n < n_pts;
    float px = 0.0f, py = 0.0f, pz = 1.0f, cr = 0.0f, ca = 0.0f;
    if (active) {
        px = pts[5 * (long long)n];
        py = pts[5 * (long long)n + 1];
        pz = pts[5 * (long long)n + 2];
        cr = pts[5 * (long long)n + 3];
        ca = pts[5 * (long long)n + 4];
    }
    float acc_re = 0.0f, acc_im = 0.0f;
    for (fus_i32 base = 0; base < n_src; base += RAYLEIGH_BLOCK) {
        const fus_i32 m = base + (fus_i32)threadIdx.x;
        if (m < n_src) {
            tx[threadIdx.x] = src[m];
            ty[threadIdx.x] = src[n_src + m];
            tz[threadIdx.x] = src[2 * n_src + m];
            twr[threadIdx.x] = w[m];
            twi[threadIdx.x] = w[n_src + m];
            tgr[threadIdx.x] = g[m];
            tga[threadIdx.x] = g[n_src + m];
        }
        __syncthreads();
        const fus_i32 count = min(RAYLEIGH_BLOCK, n_src - base);
        for (fus_i32 t = 0; t < count; ++t) {
            fus_c32 v = rayleigh_layered_term(px, py, pz, cr, ca, tx[t], ty[t], tz[t], twr[t],
                                              twi[t], tgr[t], tga[t]);
            acc_re += v.re;
            acc_im += v.im;
        }
        __syncthreads();
    }
    if (active) {
        out[2 * (long long)n] = acc_re;
        out[2 * (long long)n + 1] = acc_im;
    }
}

#else  // CPU

FUS_HOST_API void rayleigh_layered(const float* src, const float* w, const float* g,
                                   const float* pts, fus_i32 n_src, fus_i32 n_pts, float* out) {
    const float* FUS_RESTRICT sx = src;
    const float* FUS_RESTRICT sy = src + n_src;
    const float* FUS_RESTRICT sz = src + 2 * (size_t)n_src;
    const float* FUS_RESTRICT wr = w;
    const float* FUS_RESTRICT wi = w + n_src;
    const float* FUS_RESTRICT gr = g;
    const float* FUS_RESTRICT ga = g + n_src;
    FUS_FOR_EACH(n, n_pts) {
        const float px = pts[5 * (size_t)n];
        const float py = pts[5 * (size_t)n + 1];
        const float pz = pts[5 * (size_t)n + 2];
        const float cr = pts[5 * (size_t)n + 3];
        const float ca = pts[5 * (size_t)n + 4];
        float acc_re = 0.0f, acc_im = 0.0f;
        FUS_SIMD_REDUCE2(acc_re, acc_im)
        for (fus_i32 m = 0; m < n_src; ++m) {
            fus_c32 v = rayleigh_layered_term(px, py, pz, cr, ca, sx[m], sy[m], sz[m], wr[m], wi[m],
                                              gr[m], ga[m]);
            acc_re += v.re;
            acc_im += v.im;
        }
        out[2 * (size_t)n] = acc_re;
        out[2 * (size_t)n + 1] = acc_im;
    }
}

#endif

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

// ------------------------------------------------------------------------------------------------
// The point loop of all three Rayleigh kernels, written once per backend and driven by a Model
// (one per kernel, defined after its term function, the same struct on both backends):
//   FIELDS      per-source values (structure-of-arrays rows of n_src floats each),
//   PTS         floats per field point in pts (array of structures),
//   row(f)      row f of the per-source values,
//   blank(p)    the coordinates of an inactive GPU thread (never written out),
//   term(p, s)  the contribution at point p[0..PTS) of one source, s[f] (f < FIELDS) being that
//               source's value f.
// Each loop hands term an accessor s for one source: the GPU loop reads s[f] from its
// shared-memory tile (RayleighTile), the CPU loop from the rows (RayleighRows).

// Member functions of the Models, on host and device (FUS_HD is `static` on the host compilers,
// which a non-static member function cannot be).
#if defined(FUS_GPU_EMULATION) || !defined(__CUDACC__)
#define RAYLEIGH_HD inline __attribute__((always_inline))
#else
#define RAYLEIGH_HD __host__ __device__ __forceinline__
#endif

#if FUS_GPU

#define RAYLEIGH_BLOCK 256

// The values of staged source t: tile row f holds value f of the RAYLEIGH_BLOCK staged sources.
struct RayleighTile {
    const float* tile;
    fus_i32 t;
    __device__ __forceinline__ float operator[](fus_i32 f) const {
        return tile[f * RAYLEIGH_BLOCK + t];
    }
};

// GPU: one thread per field point, the sources staged through shared memory in tiles of
// RAYLEIGH_BLOCK (== blockDim.x, checked by the kernels; tile holds FIELDS x RAYLEIGH_BLOCK
// floats); every thread of the block takes part in the loads and barriers, active or not.
template <class Model>
__device__ __forceinline__ void rayleigh_tiled(const Model& md, const float* FUS_RESTRICT pts,
                                               fus_i32 n_src, fus_i32 n_pts,
                                               float* FUS_RESTRICT out, float* tile) {
    const fus_i32 n = (fus_i32)(blockIdx.x * blockDim.x + threadIdx.x);
    const bool active = n < n_pts;
    float p[Model::PTS];
    md.blank(p);
    if (active) {
        for (fus_i32 c = 0; c < Model::PTS; ++c) p[c] = pts[Model::PTS * (long long)n + c];
    }
    float acc_re = 0.0f, acc_im = 0.0f;
    for (fus_i32 base = 0; base < n_src; base += RAYLEIGH_BLOCK) {
        const fus_i32 m = base + (fus_i32)threadIdx.x;
        if (m < n_src) {
            for (fus_i32 f = 0; f < Model::FIELDS; ++f)
                tile[f * RAYLEIGH_BLOCK + threadIdx.x] = md.row(f)[m];
        }
        __syncthreads();
        const fus_i32 count = min(RAYLEIGH_BLOCK, n_src - base);
        for (fus_i32 t = 0; t < count; ++t) {
            fus_c32 v = md.term(p, RayleighTile{tile, t});
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

// The values of source m: value f is md.row(f)[m] (f a constant once inlined, so each row
// pointer is loop-invariant and hoisted).
template <class Model>
struct RayleighRows {
    const Model& md;
    fus_i32 m;
    RAYLEIGH_HD float operator[](fus_i32 f) const { return md.row(f)[m]; }
};

// CPU: the field points split over the OpenMP threads, each point's sum over the sources one SIMD
// loop (a sum reduction). The accessor and the term inline into it (always_inline) and each row
// pointer is a loop invariant, so it vectorises. Two traps measured with GCC 12: gathering the
// values into a local array s[FIELDS] inside the loop drops the vectorised loop (scalar code, 20x
// slower), and reading the Model through the OpenMP region's shared copy instead of a private one
// reloads its members in the loop (1.8x slower); hence `local`.
template <class Model>
static void rayleigh_points(const Model md, const float* FUS_RESTRICT pts, fus_i32 n_src,
                            fus_i32 n_pts, float* FUS_RESTRICT out) {
    FUS_FOR_EACH(n, n_pts) {
        float p[Model::PTS];
        for (fus_i32 c = 0; c < Model::PTS; ++c) p[c] = pts[Model::PTS * (size_t)n + c];
        const Model local = md;  // private to the thread: its members stay in registers
        float acc_re = 0.0f, acc_im = 0.0f;
        FUS_SIMD_REDUCE2(acc_re, acc_im)
        for (fus_i32 m = 0; m < n_src; ++m) {
            fus_c32 v = local.term(p, RayleighRows<Model>{local, m});
            acc_re += v.re;
            acc_im += v.im;
        }
        out[2 * (size_t)n] = acc_re;
        out[2 * (size_t)n + 1] = acc_im;
    }
}

#endif

// ------------------------------------------------------------------------------------------------
// rayleigh -- the Model of the homogeneous sum above (ATTEN: alpha != 0).

template <bool ATTEN>
struct RayleighModel {
    static constexpr fus_i32 FIELDS = 5, PTS = 3;  // x y z, Re w, Im w | x y z
    const float* src;
    const float* w;
    fus_i32 n_src;
    float k, alpha;
    RAYLEIGH_HD const float* row(fus_i32 f) const {
        return f < 3 ? src + (size_t)f * n_src : w + (size_t)(f - 3) * n_src;
    }
    RAYLEIGH_HD void blank(float* p) const { p[0] = p[1] = p[2] = 0.0f; }
    template <class S>
    RAYLEIGH_HD fus_c32 term(const float* p, const S& s) const {
        return rayleigh_term<ATTEN>(p[0], p[1], p[2], s[0], s[1], s[2], s[3], s[4], k, alpha);
    }
};

#if FUS_GPU

// Launch: one thread per field point, blockDim.x == RAYLEIGH_BLOCK, gridDim.x = ceil(N / block).
FUS_GLOBAL void __launch_bounds__(RAYLEIGH_BLOCK)
    rayleigh(const float* FUS_RESTRICT src, const float* FUS_RESTRICT w,
             const float* FUS_RESTRICT pts, float k, float alpha, fus_i32 n_src, fus_i32 n_pts,
             float* FUS_RESTRICT out) {
    FUS_REQUIRE_BLOCK(RAYLEIGH_BLOCK);
    __shared__ float tile[5 * RAYLEIGH_BLOCK];
    if (alpha != 0.0f)
        rayleigh_tiled(RayleighModel<true>{src, w, n_src, k, alpha}, pts, n_src, n_pts, out, tile);
    else
        rayleigh_tiled(RayleighModel<false>{src, w, n_src, k, alpha}, pts, n_src, n_pts, out, tile);
}

#else  // CPU

FUS_HOST_API void rayleigh(const float* src, const float* w, const float* pts, float k, float alpha,
                           fus_i32 n_src, fus_i32 n_pts, float* out) {
    if (alpha != 0.0f)
        rayleigh_points(RayleighModel<true>{src, w, n_src, k, alpha}, pts, n_src, n_pts, out);
    else
        rayleigh_points(RayleighModel<false>{src, w, n_src, k, alpha}, pts, n_src, n_pts, out);
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

struct RayleighLayeredModel {
    static constexpr fus_i32 FIELDS = 7, PTS = 5;  // x y z, Re w, Im w, gr, ga | x y z cr ca
    const float* src;
    const float* w;
    const float* g;
    fus_i32 n_src;
    RAYLEIGH_HD const float* row(fus_i32 f) const {
        return f < 3 ? src + (size_t)f * n_src
                     : (f < 5 ? w + (size_t)(f - 3) * n_src : g + (size_t)(f - 5) * n_src);
    }
    RAYLEIGH_HD void blank(float* p) const {
        p[0] = p[1] = p[3] = p[4] = 0.0f;
        p[2] = 1.0f;
    }
    template <class S>
    RAYLEIGH_HD fus_c32 term(const float* p, const S& s) const {
        return rayleigh_layered_term(p[0], p[1], p[2], p[3], p[4], s[0], s[1], s[2], s[3], s[4],
                                     s[5], s[6]);
    }
};

#if FUS_GPU

// Launch: one thread per field point, blockDim.x == RAYLEIGH_BLOCK, gridDim.x = ceil(N / block).
FUS_GLOBAL void __launch_bounds__(RAYLEIGH_BLOCK)
    rayleigh_layered(const float* FUS_RESTRICT src, const float* FUS_RESTRICT w,
                     const float* FUS_RESTRICT g, const float* FUS_RESTRICT pts, fus_i32 n_src,
                     fus_i32 n_pts, float* FUS_RESTRICT out) {
    FUS_REQUIRE_BLOCK(RAYLEIGH_BLOCK);
    __shared__ float tile[7 * RAYLEIGH_BLOCK];
    rayleigh_tiled(RayleighLayeredModel{src, w, g, n_src}, pts, n_src, n_pts, out, tile);
}

#else  // CPU

FUS_HOST_API void rayleigh_layered(const float* src, const float* w, const float* g,
                                   const float* pts, fus_i32 n_src, fus_i32 n_pts, float* out) {
    rayleigh_points(RayleighLayeredModel{src, w, g, n_src}, pts, n_src, n_pts, out);
}

#endif

// ------------------------------------------------------------------------------------------------
// Angular functions of the far-field piston model at z = k a sin(t) >= 0 [rad]:
//     D = 2 J1(z)/z, G0 = 4 g1, G2 = 2 (g1 - g3), H = 2 J2(z)/z,  g1 = J1/z - 2 J2/z^2, g3 = J3/z
// (fus.kernels.piston_angular_functions is the float64 reference). Straight-line code, no tables:
//   z < 8:  Chebyshev series of degree 9 in x = z^2/32 - 1 (H as z times such a series),
//           evaluated by Clenshaw's recurrence (least-squares fits to the float64 functions);
//   z >= 8: the Hankel amplitude-phase form J_n(z) = A_n(u) sqrt(u) cos(z - (2n+1) pi/4 + P_n(u) u),
//           u = 1/z, n = 1, 2, with A_n, P_n cubic in u^2 (least-squares fits to the float64
//           modulus and phase of J_n + i Y_n), and J3 = 4 J2 / z - J1 (upward recurrence, stable
//           for z > 3).
// Measured absolute error in float32 against the float64 functions: see
// tests/test_rayleigh.py::test_far_directivity_over_wide_angles (~2e-7 of the on-axis value; the
// functions are <= 1). Both
// branches are evaluated and one is selected, so the code vectorises; NaN in -> NaN out.
// Clenshaw's recurrence for sum_k c[k] T_k(x), k = 0..9, written out (an inner loop would stop
// the vectoriser of the enclosing source loop).
#define FUS_CLENSHAW_STEP(k) t = fmaf(x2, b1, c[k] - b2); b2 = b1; b1 = t;
FUS_HD float fus_cheb10(const float* c, float x) {
    float b1 = c[9], b2 = 0.0f, t, x2 = 2.0f * x;
    FUS_CLENSHAW_STEP(8)
    FUS_CLENSHAW_STEP(7)
    FUS_CLENSHAW_STEP(6)
    FUS_CLENSHAW_STEP(5)
    FUS_CLENSHAW_STEP(4)
    FUS_CLENSHAW_STEP(3)
    FUS_CLENSHAW_STEP(2)
    FUS_CLENSHAW_STEP(1)
    return fmaf(x, b1, c[0] - b2);
}
#undef FUS_CLENSHAW_STEP

FUS_HD void fus_piston_angular(float z, float* d_out, float* g0_out, float* g2_out,
                               float* h_out) {
    // z < 8 (x > 1 is clamped: the other branch is taken there; NaN is kept)
    const float cd[10] = { 1.620896918e-01f, -2.979502919e-01f, 3.219985229e-01f, -1.653609854e-01f, 4.442727736e-02f, -7.293883258e-03f, 8.100653305e-04f, -6.511355814e-05f, 3.968878174e-06f, -1.941875825e-07f };
    const float cg0[10] = { 1.164393484e-01f, -1.826013737e-01f, 3.774921207e-01f, -2.394212853e-01f, 7.039110495e-02f, -1.214163959e-02f, 1.391383935e-03f, -1.143027546e-04f, 7.079987262e-06f, -3.508063739e-07f };
    const float cg2[10] = { 1.256933088e-02f, 2.404823145e-02f, 2.442396581e-01f, -1.937709425e-01f, 6.115938006e-02f, -1.091857612e-02f, 1.277010572e-03f, -1.063405737e-04f, 6.651102719e-06f, -3.320219782e-07f };
    const float ch[10] = { 5.193500877e-02f, -1.033248026e-01f, 6.662623128e-02f, -2.282517138e-02f, 4.615862445e-03f, -6.115317328e-04f, 5.718668215e-05f, -3.981091421e-06f, 2.144428229e-07f, -9.393330231e-09f };
    float x = fmaf(z * (1.0f / 32.0f), z, -1.0f);
    x = (x > 1.0f) ? 1.0f : x;
    float da = fus_cheb10(cd, x);
    float g0a = fus_cheb10(cg0, x);
    float g2a = fus_cheb10(cg2, x);
    float ha = fus_cheb10(ch, x) * z;
    // z >= 8 (z < 8 is evaluated at 8 and discarded)
    float zb = (z > 8.0f) ? z : 8.0f;
    float u = 1.0f / zb;
    float w = u * u;
    float a1 = fmaf(fmaf(fmaf(5.067883567e-01f, w, -1.531656966e-01f), w, 1.496003350e-01f), w, 7.978845621e-01f);
    float p1 = fmaf(fmaf(fmaf(-1.735786137e+00f, w, 3.658080408e-01f), w, -1.640487683e-01f), w, 3.749999941e-01f);
    float a2 = fmaf(fmaf(fmaf(-2.075797075e+00f, w, 6.281534811e-01f), w, 7.480249618e-01f), w, 7.978845573e-01f);
    float p2 = fmaf(fmaf(fmaf(6.727727213e+00f, w, -1.437229373e+00f), w, -3.515976966e-01f), w, 1.875000015e+00f);
    float su = sqrtf(u);
    float s1, c1, s2, c2;
    fus_sincos(zb + fmaf(p1, u, -2.35619449019234492f), 0.0f, &s1, &c1);  // - 3 pi / 4
    fus_sincos(zb + fmaf(p2, u, -3.92699081698724155f), 0.0f, &s2, &c2);  // - 5 pi / 4
    float j1 = a1 * su * c1;
    float j2 = a2 * su * c2;
    float j3 = fmaf(4.0f * u, j2, -j1);
    float g1 = u * fmaf(-2.0f * u, j2, j1);
    bool small = !(z >= 8.0f);  // NaN takes the series branch, which is NaN through x
    *d_out = small ? da : 2.0f * u * j1;
    *g0_out = small ? g0a : 4.0f * g1;
    *g2_out = small ? g2a : 2.0f * fmaf(-u, j3, g1);
    *h_out = small ? ha : 2.0f * u * j2;
}

// ------------------------------------------------------------------------------------------------
// rayleigh_far -- far-field element sources: one source per flat disc element (centre y_m, unit
// normal n_m, radius a_m) with the far-field piston directivity and its first Fresnel corrections
// (see fus/physics/field.py, "Far-field element sources"), in a homogeneous medium (LAYERED =
// false) or through planar layers along straight rays (LAYERED = true, the phase of
// rayleigh_layered):
//
//     P(x_n) = sum_m  w_m * exp(-i Phi_nm) / r_nm * B_nm,
//     B = D(z) F(x_e) + i E,   E = (a / r) s H(z) - x (G0(z) - s^2 G2(z) - D(z)),
//     F = exp(-i x_e) sin(x_e) / x_e,  x = k_eff a^2 / (4 r),  x_e = x (1 - (a / r)^2 / 4),
//     z = a |grad Phi projected on the element plane|,   s = z / (k_eff a)  (sin of the angle),
//
//   homogeneous: Phi = kappa0 r, k_eff = k0, grad Phi = -k0 e (e: unit vector source -> point), so
//                z = k0 a sin(t) with cos(t) = e . n_m;
//   layered:     Phi = (r / dz) (g_m + C_n) as in rayleigh_layered, k_eff = Re Phi / r, and
//                grad_y Phi = -k_eff e + beta z_hat, beta = (k_eff - k0) r / dz, so
//                |grad Phi|_plane^2 = k_eff^2 (1 - cos^2 t) - 2 k_eff beta (dz/r - cos t n_z)
//                                     + beta^2 (1 - n_z^2).
//
// D = 2 J1(z)/z, G0 = 4 g1, G2 = 2 (g1 - g3), H = 2 J2(z)/z, g1 = J1/z - 2 J2/z^2, g3 = J3/z come
// from fus_piston_angular (straight-line approximations, absolute error < 1e-6; no table: a
// per-pair table gather made the CPU loop 10x slower).
//
// The phase is carried as hi + lo (rounding of the square root, of the division and of the
// products compensated), as in rayleigh / rayleigh_layered. r == 0, and in layered media dz <= 0,
// lie outside the model: NaN in that point's output, never inf. NaN in any input gives NaN in the
// outputs it reaches.
//
// Layout (see fus/backend/signatures.py):
//   src   float32 [3*M]   structure of arrays: x, y, z                                  [m]
//   w     float32 [2*M]   structure of arrays: Re w, Im w
//   elem  float32 [6*M]   structure of arrays: n_x, n_y, n_z (unit normal), a [m],
//                         gr [rad], ga [Np] (layered: g_m as in rayleigh_layered; else unused)
//   pts   float32 [5*N]   array of structures: x y z cr ca (cr, ca unused when homogeneous)
//   k0 [rad/m], alpha0 [Np/m] (homogeneous attenuation; unused when layered), layered (0 / 1),
//   n_src, n_pts
//   out   float32 [2*N]   interleaved complex64

template <bool LAYERED>
FUS_HD fus_c32 rayleigh_far_term(float px, float py, float pz, float cr, float ca, float sx,
                                 float sy, float sz, float wr, float wi, float nx, float ny,
                                 float nz, float rad, float gr, float ga, float k0,
                                 float alpha0) {
    const float nan = fus_as_float(0x7fc00000);
    float dx = px - sx;
    float dy = py - sy;
    float dz = pz - sz;
    float d2 = fmaf(dx, dx, fmaf(dy, dy, dz * dz));
    float r = sqrtf(d2);
    float inv_r = 1.0f / r;
    inv_r = (d2 > 0.0f) ? inv_r : nan;  // r == 0: outside the model
    float sqrt_err = fmaf(-r, r, d2) * (0.5f * inv_r);
    float ph, ph_lo, att, keff, beta;
    if (LAYERED) {
        float inv_dz = 1.0f / dz;
        inv_dz = (dz > 0.0f) ? inv_dz : nan;
        float q = r * inv_dz;
        float q_lo = (fmaf(-q, dz, r) + sqrt_err) * inv_dz;
        float s = gr + cr;
        float bb = s - gr;
        float s_lo = (gr - (s - bb)) + (cr - bb);
        ph = q * s;
        ph_lo = fmaf(q, s, -ph) + fmaf(q, s_lo, q_lo * s);
        att = q * (ga + ca);
        keff = s * inv_dz;
        beta = (keff - k0) * q;
    } else {
        ph = k0 * r;
        ph_lo = fmaf(k0, r, -ph) + k0 * sqrt_err;
        att = alpha0 * r;
        keff = k0;
        beta = 0.0f;
    }
    // sin^2 t = |e x n|^2 (not 1 - cos^2 t, which loses the small angles to rounding)
    float cx = fmaf(dy, nz, -dz * ny);
    float cy = fmaf(dz, nx, -dx * nz);
    float cz = fmaf(dx, ny, -dy * nx);
    float sin2 = fmaf(cx, cx, fmaf(cy, cy, cz * cz)) * (inv_r * inv_r);
    float vp2 = keff * keff * sin2;
    if (LAYERED) {
        // dz/r - cos t n_z = (dz (n_x^2 + n_y^2) - n_z (dx n_x + dy n_y)) / r, 1 - n_z^2 = n_x^2 + n_y^2
        float nperp2 = fmaf(nx, nx, ny * ny);
        float ezc = fmaf(dz, nperp2, -nz * fmaf(dx, nx, dy * ny)) * inv_r;
        vp2 = fmaf(-2.0f * keff * beta, ezc, vp2);
        vp2 = fmaf(beta * beta, nperp2, vp2);
    }
    vp2 = (vp2 < 0.0f) ? 0.0f : vp2;  // NaN kept
    float vp = sqrtf(vp2);            // |grad Phi| in the element plane [rad/m]
    float sn_t = vp / keff;           // sin(t) (effective)
    float dd, g0, g2, hh;
    fus_piston_angular(vp * rad, &dd, &g0, &g2, &hh);
    float ar = rad * inv_r;                // a / r
    float x = 0.25f * keff * ar * rad;     // k_eff a^2 / (4 r)
    float e = sn_t * ar * hh - x * (g0 - sn_t * sn_t * g2 - dd);
    float xe = x * fmaf(-0.25f * ar, ar, 1.0f);
    float sxe, cxe;
    fus_sincos(xe, 0.0f, &sxe, &cxe);
    float sinc = sxe / ((xe == 0.0f) ? 1.0f : xe);
    sinc = (xe == 0.0f) ? 1.0f : sinc;
    float br = dd * sinc * cxe;        // Re B = D Re F
    float bi = e - dd * sinc * sxe;    // Im B = D Im F + E
    float sn, cs;
    fus_sincos(ph, ph_lo, &sn, &cs);
    float amp = inv_r * fus_exp(-att);
    // amp * B * (cs - i sn)
    float er = amp * (br * cs + bi * sn);
    float ei = amp * (bi * cs - br * sn);
    fus_c32 t;
    t.re = wr * er - wi * ei;
    t.im = wr * ei + wi * er;
    return t;
}

template <bool LAYERED>
struct RayleighFarModel {
    // x y z, Re w, Im w, n_x n_y n_z a gr ga | x y z cr ca
    static constexpr fus_i32 FIELDS = 11, PTS = 5;
    const float* src;
    const float* w;
    const float* elem;
    fus_i32 n_src;
    float k0, alpha0;
    RAYLEIGH_HD const float* row(fus_i32 f) const {
        return f < 3 ? src + (size_t)f * n_src
                     : (f < 5 ? w + (size_t)(f - 3) * n_src : elem + (size_t)(f - 5) * n_src);
    }
    RAYLEIGH_HD void blank(float* p) const {
        p[0] = p[1] = p[3] = p[4] = 0.0f;
        p[2] = 1.0f;
    }
    template <class S>
    RAYLEIGH_HD fus_c32 term(const float* p, const S& s) const {
        return rayleigh_far_term<LAYERED>(p[0], p[1], p[2], p[3], p[4], s[0], s[1], s[2], s[3],
                                          s[4], s[5], s[6], s[7], s[8], s[9], s[10], k0, alpha0);
    }
};

#if FUS_GPU

// Launch: one thread per field point, blockDim.x == RAYLEIGH_BLOCK, gridDim.x = ceil(N / block).
FUS_GLOBAL void __launch_bounds__(RAYLEIGH_BLOCK)
    rayleigh_far(const float* FUS_RESTRICT src, const float* FUS_RESTRICT w,
                 const float* FUS_RESTRICT elem, const float* FUS_RESTRICT pts, float k0,
                 float alpha0, fus_i32 layered, fus_i32 n_src, fus_i32 n_pts,
                 float* FUS_RESTRICT out) {
    FUS_REQUIRE_BLOCK(RAYLEIGH_BLOCK);
    __shared__ float tile[11 * RAYLEIGH_BLOCK];
    if (layered)
        rayleigh_tiled(RayleighFarModel<true>{src, w, elem, n_src, k0, alpha0}, pts, n_src, n_pts, out, tile);
    else
        rayleigh_tiled(RayleighFarModel<false>{src, w, elem, n_src, k0, alpha0}, pts, n_src, n_pts, out, tile);
}

#else  // CPU

FUS_HOST_API void rayleigh_far(const float* src, const float* w, const float* elem,
                               const float* pts, float k0, float alpha0, fus_i32 layered,
                               fus_i32 n_src, fus_i32 n_pts, float* out) {
    if (layered)
        rayleigh_points(RayleighFarModel<true>{src, w, elem, n_src, k0, alpha0}, pts, n_src, n_pts, out);
    else
        rayleigh_points(RayleighFarModel<false>{src, w, elem, n_src, k0, alpha0}, pts, n_src, n_pts, out);
}

#endif

// prf.cu -- proton-resonance-frequency (PRF) shift thermometry, voxel by voxel.
//
// Two passes around the drift fit (which runs between them, in numpy/cupy linear algebra):
//
// prf_phase: complex phase difference of a dynamic z against its baseline z_ref,
//     dphi = angle(z * conj(z_ref))                     [rad, in (-pi, pi]]
// (the complex difference, never a difference of wrapped phases), a mask
//     mask = |z| >= mag_min and |z_ref| >= mag_min, both non-zero, and dphi finite,
// and the inverse-variance weight of dphi from the image noise (first order, independent noise
// on both images),
//     weight = 1 / sigma_phi^2,  sigma_phi^2 = (noise / |z|)^2 + (noise_ref / |z_ref|)^2  [1/rad^2]
// (sigma_phi = sqrt(2) / SNR when both have the same magnitude and noise). Where mask = 0, dphi
// and weight are 0, so the drift fit can use the arrays without NaN checks; the mask (and NaN in
// prf_temperature) tells the voxel was not measured.
//
// prf_temperature: temperature change from the drift-corrected phase,
//     dT = scale * wrap(dphi - drift),  sigma_T = |scale| / sqrt(weight)   [C]
// with scale = phase_sign / (gamma * alpha * B0 * TE) [C/rad] (gamma = 2 pi 42.577 MHz/T,
// alpha ~ -0.01 ppm/C) and wrap to (-pi, pi]. Masked-out voxels get NaN in dT and sigma_T: no
// measurement is never reported as a number.
//
// prf_temperature_dose: prf_temperature fused with the drift evaluation and the streaming dose
// state of one dynamic (one pass over memory): the drift is the per-slice polynomial
//     drift = c0 + c1 u + c2 v + c3 u^2 + c4 u v + c5 v^2   (u, v in [-1, 1] along columns, rows)
// from 6 coefficients per slice (fus.mr.drift.poly_basis order; zeros for lower orders), so no
// drift image is ever written or read; T = body_temp + dT; unless `first`, dose += the CEM43 of
// T linear from t_prev to T over dt_min (cem43_step, dose.cuh); on the first dynamic a voxel
// with NaN T gets a NaN dose (never measured: unknown, not 0); tmax = fmax(tmax, T) (NaN maps
// leave tmax unchanged). t_prev is only read: the caller keeps the new T (output temp) as the
// next dynamic's t_prev, so the state is not written twice.
//
// prf_row_phase_sums, prf_row_poly_sums: the sums the drift estimates need, one work item per
// visited image row (see "Drift-fit sums" below); numpy/cupy add the rows up and solve.
#include "dose.cuh"
#include "fus_portable.cuh"

// Phase difference, phase noise and mask of one voxel. z = (zr, zi), z_ref = (rr, ri).
FUS_HD void prf_phase_voxel(float zr, float zi, float rr, float ri, float noise, float noise_ref,
                            float mag_min, float* dphi, float* weight, unsigned char* mask) {
    // z * conj(z_ref)
    float pr = fmaf(zr, rr, zi * ri);
    float pi = fmaf(zi, rr, -zr * ri);
    float d = fus_atan2(pi, pr);
    float m2 = fmaf(zr, zr, zi * zi);
    float r2 = fmaf(rr, rr, ri * ri);
    float mm = mag_min * mag_min;
    // (noise/|z|)^2 + (noise_ref/|z_ref|)^2; the division by 0 is guarded by the mask (NaN out)
    float var = (noise * noise) / m2 + (noise_ref * noise_ref) / r2;
    bool ok = (m2 >= mm) && (m2 > 0.0f) && (r2 >= mm) && (r2 > 0.0f) && (d == d) && (var == var);
    *dphi = ok ? d : 0.0f;
    *weight = ok ? 1.0f / var : 0.0f;
    *mask = ok ? 1 : 0;
}

// Temperature change [C] and its standard deviation from a phase difference and drift [rad].
FUS_HD void prf_temperature_voxel(float dphi, float drift, float weight, unsigned char mask,
                                  float scale, float* dT, float* sigma_T) {
    const float two_pi = 6.28318530717959f;
    const float inv_two_pi = 0.159154943091895f;
    float d = dphi - drift;
    d = fmaf(-two_pi, fus_rint(d * inv_two_pi), d);
    float abs_scale = (scale < 0.0f) ? -scale : scale;
    float nan = fus_as_float(0x7fc00000);
    *dT = mask ? scale * d : nan;
    *sigma_T = mask ? abs_scale / sqrtf(weight) : nan;
}

// The drift polynomial along one image row: drift(u) = a + u (b + c u) at row coordinate v, from
// the slice's 6 coefficients (1, u, v, u^2, u v, v^2).
FUS_HD void prf_drift_row(const float* coef, float v, float* a, float* b, float* c) {
    *a = fmaf(fmaf(coef[5], v, coef[2]), v, coef[0]);
    *b = fmaf(coef[4], v, coef[1]);
    *c = coef[3];
}

// The fused temperature + dose update of one voxel (see prf_temperature_dose above).
// tp, dose_in, tmax_in: the voxel's state before this dynamic; results through the pointers.
FUS_HD void prf_temperature_dose_voxel(float dphi, float drift, float weight, unsigned char mask,
                                       float scale, float body_temp, float dt_min, fus_i32 first,
                                       float tp, double dose_in, float tmax_in, float* dT,
                                       float* sigma_T, float* temp, double* dose, float* tmax) {
    float d, s;
    prf_temperature_voxel(dphi, drift, weight, mask, scale, &d, &s);
    const float t = body_temp + d;
    const double nan = (double)fus_as_float(0x7fc00000);
    const double acc = dose_in + (double)cem43_step(tp, t, dt_min);
    const double start = (t == t) ? dose_in : nan;
    *dT = d;
    *sigma_T = s;
    *temp = t;
    *dose = first ? start : acc;
    *tmax = (t > tmax_in) ? t : tmax_in;  // NaN t keeps the maximum
}

#if FUS_GPU

FUS_GLOBAL void prf_temperature_dose(const float* FUS_RESTRICT dphi, const float* FUS_RESTRICT weight,
                                     const unsigned char* FUS_RESTRICT mask,
                                     const float* FUS_RESTRICT coef, float du, float dv, float scale,
                                     float body_temp, float dt_min, fus_i32 first, fus_i32 ns,
                                     fus_i32 ny, fus_i32 nx, fus_i32 n, float* FUS_RESTRICT dT,
                                     float* FUS_RESTRICT sigma_T, float* FUS_RESTRICT temp,
                                     const float* FUS_RESTRICT t_prev, double* FUS_RESTRICT dose,
                                     float* FUS_RESTRICT tmax) {
    FUS_FOR_EACH(i, n) {
        const fus_i32 row = i / nx, x = i - row * nx;
        const fus_i32 s = row / ny, y = row - s * ny;
        float a, b, c;
        prf_drift_row(coef + 6 * s, fmaf((float)y, dv, -1.0f), &a, &b, &c);
        const float u = fmaf((float)x, du, -1.0f);
        prf_temperature_dose_voxel(dphi[i], fmaf(u, fmaf(c, u, b), a), weight[i], mask[i], scale,
                                   body_temp, dt_min, first, t_prev[i], dose[i], tmax[i], &dT[i],
                                   &sigma_T[i], &temp[i], &dose[i], &tmax[i]);
    }
}

FUS_GLOBAL void prf_phase(const float* FUS_RESTRICT z, const float* FUS_RESTRICT z_ref, float noise,
                          float noise_ref, float mag_min, fus_i32 n, float* FUS_RESTRICT dphi,
                          float* FUS_RESTRICT weight, unsigned char* FUS_RESTRICT mask) {
    FUS_FOR_EACH(i, n) {
        prf_phase_voxel(z[2 * i], z[2 * i + 1], z_ref[2 * i], z_ref[2 * i + 1], noise, noise_ref,
                        mag_min, &dphi[i], &weight[i], &mask[i]);
    }
}

FUS_GLOBAL void prf_temperature(const float* FUS_RESTRICT dphi, const float* FUS_RESTRICT drift,
                                const float* FUS_RESTRICT weight,
                                const unsigned char* FUS_RESTRICT mask, float scale, fus_i32 n,
                                float* FUS_RESTRICT dT, float* FUS_RESTRICT sigma_T) {
    FUS_FOR_EACH(i, n) {
        prf_temperature_voxel(dphi[i], drift[i], weight[i], mask[i], scale, &dT[i], &sigma_T[i]);
    }
}

#else

FUS_HOST_API void prf_temperature_dose(const float* FUS_RESTRICT dphi,
                                       const float* FUS_RESTRICT weight,
                                       const unsigned char* FUS_RESTRICT mask,
                                       const float* FUS_RESTRICT coef, float du, float dv,
                                       float scale, float body_temp, float dt_min, fus_i32 first,
                                       fus_i32 ns, fus_i32 ny, fus_i32 nx, fus_i32 n,
                                       float* FUS_RESTRICT dT,
                                       float* FUS_RESTRICT sigma_T, float* FUS_RESTRICT temp,
                                       const float* FUS_RESTRICT t_prev,
                                       double* FUS_RESTRICT dose, float* FUS_RESTRICT tmax) {
    // rows in parallel, the columns of a row in SIMD lanes (the drift is a quadratic along a row);
    // n = ns * ny * nx (checked by the launch table)
    FUS_FOR_EACH(row, ns * ny) {
        const fus_i32 s = row / ny, y = row - s * ny;
        const size_t o = (size_t)row * (size_t)nx;
        float a, b, c;
        prf_drift_row(coef + 6 * s, fmaf((float)y, dv, -1.0f), &a, &b, &c);
        FUS_SIMD for (fus_i32 x = 0; x < nx; ++x) {
            const size_t i = o + (size_t)x;
            const float u = fmaf((float)x, du, -1.0f);
            float t0, t1, t2, mx;
            double dd;
            prf_temperature_dose_voxel(dphi[i], fmaf(u, fmaf(c, u, b), a), weight[i], mask[i],
                                       scale, body_temp, dt_min, first, t_prev[i], dose[i],
                                       tmax[i], &t0, &t1, &t2, &dd, &mx);
            dT[i] = t0;
            sigma_T[i] = t1;
            temp[i] = t2;
            dose[i] = dd;
            tmax[i] = mx;
        }
    }
}

FUS_HOST_API void prf_phase(const float* FUS_RESTRICT z, const float* FUS_RESTRICT z_ref, float noise,
                            float noise_ref, float mag_min, fus_i32 n, float* FUS_RESTRICT dphi,
                            float* FUS_RESTRICT weight, unsigned char* FUS_RESTRICT mask) {
    FUS_FOR_EACH_SIMD(i, n) {
        float d, s;
        unsigned char m;
        prf_phase_voxel(z[2 * (size_t)i], z[2 * (size_t)i + 1], z_ref[2 * (size_t)i],
                        z_ref[2 * (size_t)i + 1], noise, noise_ref, mag_min, &d, &s, &m);
        dphi[i] = d;
        weight[i] = s;
        mask[i] = m;
    }
}

FUS_HOST_API void prf_temperature(const float* FUS_RESTRICT dphi, const float* FUS_RESTRICT drift,
                                  const float* FUS_RESTRICT weight,
                                  const unsigned char* FUS_RESTRICT mask, float scale, fus_i32 n,
                                  float* FUS_RESTRICT dT, float* FUS_RESTRICT sigma_T) {
    FUS_FOR_EACH_SIMD(i, n) {
        float t, s;
        prf_temperature_voxel(dphi[i], drift[i], weight[i], mask[i], scale, &t, &s);
        dT[i] = t;
        sigma_T[i] = s;
    }
}

#endif

// ---------------------------------------------------------------------------------------------
// Drift-fit sums. The image is ns slices of ny x nx voxels; a fit visits the rows y = 0, stride,
// 2 stride, ... of every slice (nr = ceil(ny / stride) per slice, n_rows = ns * nr work items,
// checked by the launch table together with stride >= 1, ny >= 1, nx >= 1),
// every column of each (contiguous loads, so the CPU loop vectorises; a strided column walk
// does not). A work item sums its own row only, so the result does not depend on the thread
// count or the device, and numpy/cupy add the rows up (in float64) and solve. A voxel is used
// when weight > 0, dphi is not NaN and use[(use_per_slice ? s * ny * nx : 0) + y * nx + x] != 0
// (use_per_slice = 0: one in-plane region for every slice). A row is summed in float (at most a
// few hundred terms per SIMD lane: relative error ~1e-6, far below what a drift fit needs; float
// lanes are twice as many as double ones) and stored as double for the sum over rows.
//
// prf_row_phase_sums: out[3 r + 0..2] = sum w cos(dphi), sum w sin(dphi), number of voxels used,
//     with w = weight, or 1 when unit_weight (an unweighted complex mean).
// prf_row_poly_sums: with the residual e = wrap(dphi - c0[s]) and the column coordinate
//     u = -1 + x du,  out[8 r + k] = sum w u^k (k = 0..4), out[8 r + 5 + k] = sum w e u^k
//     (k = 0..2). With the row coordinate v = -1 + y dv these give every entry of a polynomial
//     fit's normal equations up to order 2: sum over rows of v^j S_i.
// ---------------------------------------------------------------------------------------------

// Offsets of row item r: first voxel of the row in dphi/weight, and in use.
FUS_HD void prf_fit_row(fus_i32 r, fus_i32 stride, fus_i32 use_per_slice, fus_i32 ny, fus_i32 nx,
                        size_t* at, size_t* at_use) {
    const fus_i32 nr = (ny + stride - 1) / stride;
    const fus_i32 s = r / nr, y = (r - s * nr) * stride;
    const size_t plane = (size_t)ny * (size_t)nx;
    *at = (size_t)s * plane + (size_t)y * (size_t)nx;
    *at_use = (use_per_slice ? (size_t)s * plane : 0) + (size_t)y * (size_t)nx;
}

FUS_HD void prf_row_phase_sums_row(const float* dphi, const float* weight,
                                   const unsigned char* use, fus_i32 nx, fus_i32 unit_weight,
                                   double* out) {
    float sc = 0.0f, ss = 0.0f, cnt = 0.0f;
    FUS_SIMD_REDUCE(sc, ss, cnt) for (fus_i32 x = 0; x < nx; ++x) {
        const float d = dphi[x], w = weight[x];
        const bool ok = (w > 0.0f) & (d == d) & (use[x] != 0);  // & : no branch, so it vectorises
        const float wk = ok ? (unit_weight ? 1.0f : w) : 0.0f;
        float sn, cs;
        fus_sincos(ok ? d : 0.0f, 0.0f, &sn, &cs);
        sc = fmaf(wk, cs, sc);
        ss = fmaf(wk, sn, ss);
        cnt += ok ? 1.0f : 0.0f;
    }
    out[0] = sc;
    out[1] = ss;
    out[2] = cnt;
}

FUS_HD void prf_row_poly_sums_row(const float* dphi, const float* weight, const unsigned char* use,
                                  float c0, float du, fus_i32 nx, double* out) {
    const float two_pi = 6.28318530717959f;
    const float inv_two_pi = 0.159154943091895f;
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f, s4 = 0.0f, r0 = 0.0f, r1 = 0.0f, r2 = 0.0f;
    FUS_SIMD_REDUCE(s0, s1, s2, s3, s4, r0, r1, r2) for (fus_i32 x = 0; x < nx; ++x) {
        const float d = dphi[x], w = weight[x];
        const bool ok = (w > 0.0f) & (d == d) & (use[x] != 0);  // & : no branch, so it vectorises
        float e = (ok ? d : 0.0f) - c0;
        e = fmaf(-two_pi, fus_rint(e * inv_two_pi), e);
        const float wd = ok ? w : 0.0f;
        const float u = fmaf((float)x, du, -1.0f);
        const float w1 = wd * u, w2 = w1 * u, w3 = w2 * u;
        const float we = wd * e;
        s0 += wd;
        s1 += w1;
        s2 += w2;
        s3 += w3;
        s4 = fmaf(w3, u, s4);
        r0 += we;
        r1 = fmaf(we, u, r1);
        r2 = fmaf(we * u, u, r2);
    }
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
    out[4] = s4;
    out[5] = r0;
    out[6] = r1;
    out[7] = r2;
}

#if FUS_GPU
#define PRF_SUMS_API FUS_GLOBAL
#else
#define PRF_SUMS_API FUS_HOST_API
#endif

PRF_SUMS_API void prf_row_phase_sums(const float* FUS_RESTRICT dphi, const float* FUS_RESTRICT weight,
                                     const unsigned char* FUS_RESTRICT use, fus_i32 use_per_slice,
                                     fus_i32 unit_weight, fus_i32 stride, fus_i32 ns, fus_i32 ny,
                                     fus_i32 nx, fus_i32 n_rows, double* FUS_RESTRICT out) {
    FUS_FOR_EACH(r, n_rows) {
        size_t at, at_use;
        prf_fit_row(r, stride, use_per_slice, ny, nx, &at, &at_use);
        prf_row_phase_sums_row(dphi + at, weight + at, use + at_use, nx, unit_weight,
                               out + 3 * (size_t)r);
    }
}

PRF_SUMS_API void prf_row_poly_sums(const float* FUS_RESTRICT dphi, const float* FUS_RESTRICT weight,
                                    const unsigned char* FUS_RESTRICT use, fus_i32 use_per_slice,
                                    const float* FUS_RESTRICT c0, float du, fus_i32 stride,
                                    fus_i32 ns, fus_i32 ny, fus_i32 nx, fus_i32 n_rows,
                                    double* FUS_RESTRICT out) {
    FUS_FOR_EACH(r, n_rows) {
        size_t at, at_use;
        prf_fit_row(r, stride, use_per_slice, ny, nx, &at, &at_use);
        const fus_i32 s = r / ((ny + stride - 1) / stride);
        prf_row_poly_sums_row(dphi + at, weight + at, use + at_use, c0[s], du, nx,
                              out + 8 * (size_t)r);
    }
}

#undef PRF_SUMS_API

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
// prf_temperature_dose: prf_temperature fused with the streaming dose state of one dynamic (one
// pass over memory instead of four): T = body_temp + dT; unless `first`, dose += the CEM43 of
// T linear from t_prev to T over dt_min (cem43_step, dose.cuh); on the first dynamic a voxel
// with NaN T gets a NaN dose (never measured: unknown, not 0); then t_prev = T and
// tmax = fmax(tmax, T) (NaN maps leave tmax unchanged).
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

FUS_GLOBAL void prf_temperature_dose(const float* FUS_RESTRICT dphi, const float* FUS_RESTRICT drift,
                                     const float* FUS_RESTRICT weight,
                                     const unsigned char* FUS_RESTRICT mask, float scale,
                                     float body_temp, float dt_min, fus_i32 first, fus_i32 n,
                                     float* FUS_RESTRICT dT, float* FUS_RESTRICT sigma_T,
                                     float* FUS_RESTRICT temp, float* FUS_RESTRICT t_prev,
                                     double* FUS_RESTRICT dose, float* FUS_RESTRICT tmax) {
    FUS_FOR_EACH(i, n) {
        float t;
        prf_temperature_dose_voxel(dphi[i], drift[i], weight[i], mask[i], scale, body_temp, dt_min,
                                   first, t_prev[i], dose[i], tmax[i], &dT[i], &sigma_T[i], &t,
                                   &dose[i], &tmax[i]);
        temp[i] = t;
        t_prev[i] = t;
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
                                       const float* FUS_RESTRICT drift,
                                       const float* FUS_RESTRICT weight,
                                       const unsigned char* FUS_RESTRICT mask, float scale,
                                       float body_temp, float dt_min, fus_i32 first, fus_i32 n,
                                       float* FUS_RESTRICT dT, float* FUS_RESTRICT sigma_T,
                                       float* FUS_RESTRICT temp, float* FUS_RESTRICT t_prev,
                                       double* FUS_RESTRICT dose, float* FUS_RESTRICT tmax) {
    FUS_FOR_EACH_SIMD(i, n) {
        float a, b, c, mx;
        double dd;
        prf_temperature_dose_voxel(dphi[i], drift[i], weight[i], mask[i], scale, body_temp, dt_min,
                                   first, t_prev[i], dose[i], tmax[i], &a, &b, &c, &dd, &mx);
        dT[i] = a;
        sigma_T[i] = b;
        temp[i] = c;
        t_prev[i] = c;
        dose[i] = dd;
        tmax[i] = mx;
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

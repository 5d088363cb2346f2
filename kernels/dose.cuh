// dose.cuh -- per-voxel CEM43 increment, shared by the dose kernel (dose.cu) and the fused
// thermometry kernel (prf.cu). See dose.cu for the formula and its references.
#ifndef FUS_DOSE_CUH
#define FUS_DOSE_CUH
#include "fus_portable.cuh"

// CEM43 minutes accrued by one voxel during a step of dt_min minutes, T linear from t0 to t1 [C].
FUS_HD float cem43_step(float t0, float t1, float dt_min) {
    const float ln_hi = -0.693147180559945f;  // ln 0.5  (T >= 43)
    const float ln_lo = -1.386294361119891f;  // ln 0.25 (T <  43)
    const bool hot0 = t0 >= 43.0f;
    const bool hot1 = t1 >= 43.0f;
    const float dT = t1 - t0;
    // Fraction of the step spent before reaching 43 C (1 when both ends are on one side).
    const bool crosses = hot0 != hot1;
    float frac = crosses ? (43.0f - t0) / dT : 1.0f;
    // first segment: t0 -> (crosses ? 43 : t1), rate of side of t0
    const float lnA = hot0 ? ln_hi : ln_lo;
    const float endA = crosses ? 43.0f : t1;
    const float a = dt_min * frac * fus_exp((43.0f - t0) * lnA) * fus_expm1_over_x(-(endA - t0) * lnA);
    // second segment (only when crossing): 43 -> t1, rate of side of t1; R^(43-43) = 1
    const float lnB = hot1 ? ln_hi : ln_lo;
    const float b = dt_min * (1.0f - frac) * fus_expm1_over_x(-(t1 - 43.0f) * lnB);
    return crosses ? a + b : a;
}

#endif  // FUS_DOSE_CUH

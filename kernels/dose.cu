// dose.cu -- CEM43 thermal dose accumulated over one time step (Sapareto & Dewey 1984).
//
//     CEM43 = integral R(T)^(43 - T(t)) dt   [equivalent minutes at 43 C],
//     R = 0.5 for T >= 43 C, 0.25 for T < 43 C,
//
// integrated EXACTLY for a temperature that is linear in time within the step, from T0 at the
// start to T1 at the end (a step that crosses 43 C is split at the crossing). For a segment from
// Ta to Tb over dt with one R:
//     integral = dt * R^(43 - Ta) * (exp(x) - 1) / x,   x = -(Tb - Ta) ln R,
// which reduces to dt * R^(43 - T) for a constant temperature.
// The increment is computed in float32 and added to a float64 dose (the sum of many small
// increments must not stall). A NaN temperature makes the dose NaN (an unknown dose stays visibly
// unknown); a temperature above ~170 C overflows the increment to +inf.
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

#if FUS_GPU

// One thread per voxel (grid-stride).
FUS_GLOBAL void cem43(double* FUS_RESTRICT dose, const float* FUS_RESTRICT t0,
                      const float* FUS_RESTRICT t1, float dt_min, fus_i32 n) {
    FUS_FOR_EACH(i, n) { dose[i] += (double)cem43_step(t0[i], t1[i], dt_min); }
}

#else

FUS_HOST_API void cem43(double* FUS_RESTRICT dose, const float* FUS_RESTRICT t0,
                        const float* FUS_RESTRICT t1, float dt_min, fus_i32 n) {
    FUS_FOR_EACH_SIMD(i, n) { dose[i] += (double)cem43_step(t0[i], t1[i], dt_min); }
}

#endif

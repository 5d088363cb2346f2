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
#include "dose.cuh"

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

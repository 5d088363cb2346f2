// fus_portable.cuh -- the one portability header shared by every kernel in kernels/.
//
// Each kernel source in this folder is compiled twice from the same text:
//   * by NVRTC (through CuPy RawModule) for the GPU: __CUDACC__ and __CUDACC_RTC__ are defined,
//     no host header may be included;
//   * by the host C++ compiler (g++/clang++ -x c++ -O3 -fopenmp) into the CPU shared library.
// The per-element math is written once as FUS_HD functions; thin wrappers map GPU threads or
// OpenMP iterations onto elements.
//
// Never build the CPU side with -ffast-math / -ffinite-math-only: NaN must survive, because a
// NaN voxel is how bad thermometry reaches the safety logic. The helpers below are written so
// that NaN inputs propagate (comparisons are arranged so that NaN takes the "keep x" branch).
#ifndef FUS_PORTABLE_CUH
#define FUS_PORTABLE_CUH

#if defined(__CUDACC__)
#define FUS_GPU 1
#define FUS_HD __host__ __device__ __forceinline__
#define FUS_GLOBAL extern "C" __global__
#define FUS_RESTRICT __restrict__
#else
#define FUS_GPU 0
#define FUS_HD static inline __attribute__((always_inline))
#define FUS_RESTRICT __restrict__
#define FUS_HOST_API extern "C" __attribute__((visibility("default")))
#endif

#ifndef __CUDACC_RTC__
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(_OPENMP)
#include <omp.h>
#endif
#endif

#if FUS_GPU
typedef int fus_i32;
typedef unsigned int fus_u32;
#else
typedef int32_t fus_i32;
typedef uint32_t fus_u32;
#endif

// ---------------------------------------------------------------------------------------------
// Thread-to-element mapping.
//   FUS_FOR_EACH(i, n) { body }  runs body for i = 0 .. n-1:
//     GPU: a grid-stride loop over the launch grid;  CPU: an OpenMP parallel for.
// ---------------------------------------------------------------------------------------------
#if FUS_GPU
#define FUS_FOR_EACH(i, n)                                                                  \
    for (fus_i32 i = (fus_i32)(blockIdx.x * blockDim.x + threadIdx.x); i < (n);             \
         i += (fus_i32)(blockDim.x * gridDim.x))
#else
#define FUS_PRAGMA(x) _Pragma(#x)
#define FUS_FOR_EACH(i, n) FUS_PRAGMA(omp parallel for schedule(static)) for (fus_i32 i = 0; i < (n); ++i)
#endif

// OpenMP SIMD hint for the innermost CPU loops (a no-op on the GPU). -fopenmp-simd enables it even
// when the OpenMP runtime is unavailable.
#if FUS_GPU
#define FUS_SIMD_REDUCE2(a, b)
#else
#define FUS_SIMD_REDUCE2(a, b) FUS_PRAGMA(omp simd reduction(+ : a, b))
#endif

// ---------------------------------------------------------------------------------------------
// Scalar helpers that compile to straight-line, vectorisable code on both compilers.
// ---------------------------------------------------------------------------------------------

// Bit casts between float and 32-bit integers. (__CUDA_ARCH__ rather than FUS_GPU: nvcc also
// compiles FUS_HD functions for the host, where the device intrinsics do not exist.)
FUS_HD float fus_as_float(fus_i32 i) {
#if defined(__CUDA_ARCH__)
    return __int_as_float(i);
#else
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
#endif
}

FUS_HD fus_i32 fus_as_int(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_int(f);
#else
    fus_i32 i;
    memcpy(&i, &f, sizeof i);
    return i;
#endif
}

// Round to nearest integer value (ties to even), returned as float. The 1.5*2^23 trick is exact
// for |x| < 2^22 and vectorises everywhere; rintf on the GPU is one instruction.
FUS_HD float fus_rint(float x) {
#if defined(__CUDA_ARCH__)
    return rintf(x);
#else
    const float magic = 12582912.0f;  // 1.5 * 2^23
    return (x + magic) - magic;
#endif
}

// sin and cos of x + x_lo [rad], computed together (x_lo: a small correction, |x_lo| << 1, e.g. the
// rounding error of the product that produced x; pass 0 when there is none).
//
// Range reduction: j = rint(x * 2/pi), y = x - j * pi/2 with pi/2 split in three float32 parts
// (Cody-Waite, each product exact with FMA), valid to ~1 ulp of the reduced argument for
// |x| < ~1e5 rad; beyond that the reduction loses accuracy gracefully (no NaN, |s|,|c| <= ~1).
// Then minimax polynomials on [-pi/4, pi/4] (Cephes sinf/cosf coefficients, |error| < 1.2e-7)
// and a quadrant swap by selects. No branches and no table lookups, so g++ vectorises it with
// `omp simd` (libm sinf/cosf do not vectorise without -ffast-math) and the GPU build runs the same
// arithmetic as the CPU build. NaN in -> NaN out; +-inf -> NaN.
FUS_HD void fus_sincos(float x, float x_lo, float* s_out, float* c_out) {
    const float two_over_pi = 0.636619772367581343f;
    const float pio2_1 = 1.5703125f;                 // 8 significant bits: j*pio2_1 exact
    const float pio2_2 = 4.83751296997070312500e-04f; // next bits
    const float pio2_3 = 7.54978995489188216e-08f;   // remainder
    float j = fus_rint(x * two_over_pi);
    float y = fmaf(-j, pio2_1, x);
    y = fmaf(-j, pio2_2, y);
    y = fmaf(-j, pio2_3, y) + x_lo;
    float z = y * y;
    // sin(y) ~ y + y^3 (s1 + z (s2 + z s3))
    float ps = fmaf(fmaf(-1.9515295891e-4f, z, 8.3321608736e-3f), z, -1.6666654611e-1f);
    float sn = fmaf(ps * z, y, y);
    // cos(y) ~ 1 - z/2 + z^2 (c1 + z (c2 + z c3))
    float pc = fmaf(fmaf(2.443315711809948e-5f, z, -1.388731625493765e-3f), z, 4.166664568298827e-2f);
    float cs = fmaf(pc * z, z, fmaf(-0.5f, z, 1.0f));
    // Quadrant q = j mod 4 (two's complement & 3 handles negative j).
    fus_i32 q = (fus_i32)j & 3;
    float s = (q & 1) ? cs : sn;
    float c = (q & 1) ? sn : cs;
    s = (q & 2) ? -s : s;
    c = ((q + 1) & 2) ? -c : c;
    *s_out = s;
    *c_out = c;
}

// exp(x) for x <= 0 [dimensionless], vectorisable. Relative error < 2e-7 for x in [-87, 0];
// returns 0 for x < -87.3 (the float32 normal range ends there); NaN in -> NaN out.
FUS_HD float fus_exp_neg(float x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f;
    const float ln2_lo = -2.12194440e-4f;
    float xc = (x < -87.0f) ? -87.0f : x;  // NaN compares false: NaN is kept
    float n = fus_rint(xc * log2e);
    float f = fmaf(-n, ln2_hi, xc);
    f = fmaf(-n, ln2_lo, f);
    // exp(f) on [-ln2/2, ln2/2]: Cephes expf polynomial
    float p = 1.9875691500e-4f;
    p = fmaf(p, f, 1.3981999507e-3f);
    p = fmaf(p, f, 8.3334519073e-3f);
    p = fmaf(p, f, 4.1665795894e-2f);
    p = fmaf(p, f, 1.6666665459e-1f);
    p = fmaf(p, f, 5.0000001201e-1f);
    p = fmaf(p * f, f, f) + 1.0f;
    float scale = fus_as_float(((fus_i32)n + 127) << 23);
    float r = p * scale;
    return (x < -87.3f) ? 0.0f : r;
}

#endif  // FUS_PORTABLE_CUH

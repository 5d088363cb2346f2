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

#if defined(FUS_GPU_EMULATION)
// The GPU branch compiled by the host compiler for the emulated device (host/gpu_emulation.hpp,
// force-included): kernels get internal linkage, the emulation library exports launchers.
#define FUS_GPU 1
#define FUS_HD static inline __attribute__((always_inline))
#define FUS_GLOBAL static
#define FUS_RESTRICT __restrict__
#elif defined(__CUDACC__)
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

#if FUS_GPU && !defined(FUS_GPU_EMULATION)
typedef int fus_i32;
typedef unsigned int fus_u32;
typedef long long fus_i64;
#else
typedef int32_t fus_i32;
typedef uint32_t fus_u32;
typedef int64_t fus_i64;
#endif

// ---------------------------------------------------------------------------------------------
// Thread-to-element mapping.
//   FUS_FOR_EACH(i, n) { body }  runs body for i = 0 .. n-1:
//     GPU: a grid-stride loop over the launch grid;  CPU: an OpenMP parallel for.
// ---------------------------------------------------------------------------------------------
// The GPU index is 64-bit: i + blockDim.x * gridDim.x must not wrap for n close to 2^31 (the
// launch table refuses arrays of 2^31 or more 32-bit values, so n itself fits an fus_i32).
#if FUS_GPU
#define FUS_FOR_EACH(i, n)                                                                  \
    for (fus_i64 i = (fus_i64)blockIdx.x * blockDim.x + threadIdx.x; i < (fus_i64)(n);      \
         i += (fus_i64)blockDim.x * gridDim.x)
#else
#define FUS_PRAGMA(x) _Pragma(#x)
#define FUS_FOR_EACH(i, n) FUS_PRAGMA(omp parallel for schedule(static)) for (fus_i32 i = 0; i < (n); ++i)
#endif

// OpenMP SIMD hint for the innermost CPU loops (a no-op on the GPU). -fopenmp-simd enables it even
// when the OpenMP runtime is unavailable.
// FUS_SIMD_REDUCE(a, b, ...): the same with a sum reduction over any number of scalars.
#if FUS_GPU
#define FUS_SIMD_REDUCE2(a, b)
#define FUS_SIMD_REDUCE(...)
#else
#define FUS_SIMD_REDUCE2(a, b) FUS_PRAGMA(omp simd reduction(+ : a, b))
#define FUS_SIMD_REDUCE(...) FUS_PRAGMA(omp simd reduction(+ : __VA_ARGS__))
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

// exp(x) [dimensionless], vectorisable, both compilers. Relative error < 2e-7 for |x| < 86;
// 0 for x < -86.5 (the float32 normal range ends near -87.3), +inf for x > 88.72; NaN in -> NaN out.
// Range reduction x = n ln2 + f (two-part ln2), Cephes expf polynomial on [-ln2/2, ln2/2], and
// 2^n built in the exponent bits (in two factors, so n = 128 still rounds to +inf correctly).
FUS_HD float fus_exp(float x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f;
    const float ln2_lo = -2.12194440e-4f;
    float xc = (x > 88.72f) ? 88.72f : x;  // NaN compares false: NaN is kept
    xc = (xc < -86.5f) ? -86.5f : xc;
    float n = fus_rint(xc * log2e);  // -125 .. 128
    float f = fmaf(-n, ln2_hi, xc);
    f = fmaf(-n, ln2_lo, f);
    float p = 1.9875691500e-4f;
    p = fmaf(p, f, 1.3981999507e-3f);
    p = fmaf(p, f, 8.3334519073e-3f);
    p = fmaf(p, f, 4.1665795894e-2f);
    p = fmaf(p, f, 1.6666665459e-1f);
    p = fmaf(p, f, 5.0000001201e-1f);
    p = fmaf(p * f, f, f) + 1.0f;
    float r = (p * fus_as_float(((fus_i32)n + 126) << 23)) * 2.0f;
    r = (x > 88.72f) ? fus_as_float(0x7f800000) : r;
    return (x < -86.5f) ? 0.0f : r;
}

// (exp(x) - 1) / x, the mean of exp over [0, x]; 1 at x = 0, accurate to ~2e-7 relative
// (Taylor series below |x| = 0.5, where exp(x) - 1 would cancel). NaN in -> NaN out.
FUS_HD float fus_expm1_over_x(float x) {
    float t = 1.0f / 5040.0f;
    t = fmaf(t, x, 1.0f / 720.0f);
    t = fmaf(t, x, 1.0f / 120.0f);
    t = fmaf(t, x, 1.0f / 24.0f);
    t = fmaf(t, x, 1.0f / 6.0f);
    t = fmaf(t, x, 0.5f);
    t = fmaf(t, x, 1.0f);
    float ax = (x < 0.0f) ? -x : x;
    float xs = (ax < 0.5f) ? 1.0f : x;  // keep the division harmless where the series is used
    float d = (fus_exp(x) - 1.0f) / xs;
    return (ax < 0.5f) ? t : d;
}

// atan2(y, x) [rad] in [-pi, pi], vectorisable, both compilers; |error| < 2e-7 rad.
// Octant reduction to a = min(|x|,|y|) / max(|x|,|y|) in [0, 1], then to [0, tan(pi/8)] by
// atan(a) = pi/4 + atan((a - 1) / (a + 1)), and the Cephes atanf polynomial. atan2(0, 0) = 0
// (signs of zero ignored); NaN in -> NaN out.
FUS_HD float fus_atan2(float y, float x) {
    const float pi = 3.14159265358979f;
    const float pi_2 = 1.57079632679490f;
    const float pi_4 = 0.78539816339745f;
    float ax = (x < 0.0f) ? -x : x;
    float ay = (y < 0.0f) ? -y : y;
    bool swap = ay > ax;
    float num = swap ? ax : ay;
    float den = swap ? ay : ax;
    float a = num / ((den == 0.0f) ? 1.0f : den);
    a = (den != den) ? den : a;  // NaN denominators stay NaN
    bool big = a > 0.41421356237f;
    float t = big ? (a - 1.0f) / (a + 1.0f) : a;
    float z = t * t;
    float p = fmaf(fmaf(fmaf(8.05374449538e-2f, z, -1.38776856032e-1f), z, 1.99777106478e-1f), z,
                   -3.33329491539e-1f);
    float r = fmaf(p * z, t, t) + (big ? pi_4 : 0.0f);
    r = swap ? pi_2 - r : r;
    r = (x < 0.0f) ? pi - r : r;
    return (y < 0.0f) ? -r : r;
}

// Like FUS_FOR_EACH, for element-wise kernels whose body vectorises: `omp parallel for simd`.
#if FUS_GPU
#define FUS_FOR_EACH_SIMD(i, n) FUS_FOR_EACH(i, n)
#else
#define FUS_FOR_EACH_SIMD(i, n) \
    FUS_PRAGMA(omp parallel for simd schedule(static)) for (fus_i32 i = 0; i < (n); ++i)
#endif

// OpenMP SIMD hint for one innermost CPU loop with no reduction (a no-op on the GPU).
#if FUS_GPU
#define FUS_SIMD
#else
#define FUS_SIMD FUS_PRAGMA(omp simd)
#endif

// CPU wrappers that need one parallel region around several work-sharing loops (e.g. a time loop
// with a barrier per step): FUS_PARALLEL opens the region, FUS_FOR_SHARED(i, n) splits a loop
// over the team (static schedule, implicit barrier at its end), fus_team_size() is the number of
// threads of the enclosing region (1 outside one or without OpenMP). CPU only.
#if !FUS_GPU
#define FUS_PARALLEL FUS_PRAGMA(omp parallel)
#define FUS_FOR_SHARED(i, n) FUS_PRAGMA(omp for schedule(static)) for (fus_i32 i = 0; i < (n); ++i)
static inline fus_i32 fus_team_size(void) {
#if defined(_OPENMP)
    return (fus_i32)omp_get_num_threads();
#else
    return 1;
#endif
}
#endif

// ---------------------------------------------------------------------------------------------
// GPU-only helpers for kernels whose blocks cooperate (shared-memory tiles, waits on other blocks).
// ---------------------------------------------------------------------------------------------
#if FUS_GPU
// A kernel whose shared-memory tiles are sized for `block` threads refuses any other launch: a
// trap (a launch error on the GPU, a clear error on the emulated device), never a read of
// uninitialised shared memory. The launch table (fus/backend/signatures.py) reads `block` from
// the kernel source, so fus itself never launches it otherwise.
#define FUS_REQUIRE_BLOCK(block)                                                       \
    do {                                                                               \
        if (blockDim.x != (block) || blockDim.y != 1 || blockDim.z != 1) __trap();      \
    } while (0)

// Read a counter that other blocks of the running launch update with atomicAdd: a volatile load
// on the GPU (no stale L1 copy); an acquire load on the emulated device (the same order, stated so
// that ThreadSanitizer can check it).
__device__ __forceinline__ fus_i32 fus_poll(fus_i32* p) {
#if defined(FUS_GPU_EMULATION)
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
#else
    return *(volatile fus_i32*)p;
#endif
}
#endif

#endif  // FUS_PORTABLE_CUH

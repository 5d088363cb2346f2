// host_info.cpp -- facts about the CPU build of the kernel library, for `fus info`.
// Host-only glue (not a kernel): compiled into the CPU library only, never by NVRTC.
#include <stdint.h>
#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__has_include)
#if __has_include("fus_build_flags.h")
#include "fus_build_flags.h"
#endif
#endif
#ifndef FUS_BUILD_FLAGS
#define FUS_BUILD_FLAGS "unknown"
#endif
#ifndef FUS_SOURCE_HASH
#define FUS_SOURCE_HASH "unknown"
#endif

#define FUS_EXPORT extern "C" __attribute__((visibility("default")))

// The compiler command-line flags the library was built with.
FUS_EXPORT const char* fus_build_flags(void) { return FUS_BUILD_FLAGS; }

// sha256 of the kernel sources (*.cu, *.cuh) the library was compiled from.
FUS_EXPORT const char* fus_source_hash(void) { return FUS_SOURCE_HASH; }

// 1 when built with the OpenMP runtime (multi-threaded), 0 when single-threaded.
FUS_EXPORT int32_t fus_openmp(void) {
#if defined(_OPENMP)
    return 1;
#else
    return 0;
#endif
}

// Threads an OpenMP parallel region will use now (1 without OpenMP).
FUS_EXPORT int32_t fus_max_threads(void) {
#if defined(_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// Set the number of threads for later calls (ignored without OpenMP). n <= 0 is ignored.
FUS_EXPORT void fus_set_threads(int32_t n) {
#if defined(_OPENMP)
    if (n > 0) omp_set_num_threads(n);
#else
    (void)n;
#endif
}

// Widest float32 SIMD vector the compiler was allowed to use, in lanes.
FUS_EXPORT int32_t fus_simd_lanes(void) {
#if defined(__AVX512F__)
    return 16;
#elif defined(__AVX__)
    return 8;
#elif defined(__SSE2__) || defined(__ARM_NEON) || defined(__aarch64__)
    return 4;
#else
    return 1;
#endif
}

// The instruction-set name matching fus_simd_lanes.
FUS_EXPORT const char* fus_simd_isa(void) {
#if defined(__AVX512F__)
    return "AVX-512";
#elif defined(__AVX2__)
    return "AVX2";
#elif defined(__AVX__)
    return "AVX";
#elif defined(__SSE2__)
    return "SSE2";
#elif defined(__ARM_NEON) || defined(__aarch64__)
    return "NEON";
#else
    return "scalar";
#endif
}

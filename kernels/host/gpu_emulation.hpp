// gpu_emulation.hpp -- an emulated CUDA device for the FUS_GPU branches of kernels/*.cu.
//
// Force-included (g++ -include) before a kernel source when the build makes the emulation library
// fus/_gpu_emulation*.so. The kernel text is unchanged: fus_portable.cuh sees FUS_GPU_EMULATION and
// takes its GPU branch, and this header supplies what NVRTC would: threadIdx / blockIdx / blockDim /
// gridDim, __shared__ storage per block, __syncthreads, integer atomics, fences, __ldcg,
// __nanosleep, __trap, min / max and the qualifiers.
//
// Execution model (gpu_emulation_runtime.cpp): every GPU thread of a block is a fiber (its own
// stack, ucontext switches); a block runs on one host thread until all its fibers have finished,
// switching fibers only at __syncthreads. Several blocks run at once on several host threads
// (FUS_GPU_EMULATION_BLOCKS, default 2), so blocks that wait for other blocks (the bioheat
// wavefront) really wait. __shared__ variables are `static thread_local`: one copy per host
// thread, i.e. per block in flight, shared by that block's fibers, and -- as on a GPU -- holding
// whatever the previous block left there. A __syncthreads that not every thread of the block
// reaches, or two threads waiting at different __syncthreads, ends the launch with an error naming
// the line; so do __trap and a wait on another block that lasts longer than the watchdog
// (FUS_GPU_EMULATION_WATCHDOG_S, default 60 s).
//
// Built with -fsanitize=thread, fibers are announced to ThreadSanitizer (switches without
// implied synchronisation) and each __syncthreads is a release by every arriving thread and an
// acquire by every leaving one: a shared-memory access that no barrier orders is reported.
#ifndef FUS_GPU_EMULATION_HPP
#define FUS_GPU_EMULATION_HPP

#define FUS_GPU_EMULATION 1

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <atomic>
#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

#include "signature.hpp"

struct fus_emu_dim3 {
    unsigned int x, y, z;
};

namespace fus_emu {

struct Coords {
    fus_emu_dim3 thread, block, block_dim, grid_dim;
};

// Coordinates of the fiber running now (set by the scheduler before every switch to a fiber).
extern thread_local std::atomic<Coords*> tl_coords;

void syncthreads(int line);
void nanosleep_ns(unsigned int ns);
[[noreturn]] void trap(const char* file, int line);

// One launch: the kernel called once per GPU thread (from that thread's fiber).
struct Launch {
    void (*call)(void* closure);
    void* closure;
};

// Runs `launch` on grid x block; returns 0, or nonzero with a message in err.
int run(const Launch& launch, const unsigned int* grid, const unsigned int* block, char* err,
        int err_len);

// The arguments as cuLaunchKernel takes them: argv[i] points to the value of parameter i.
template <typename... A>
struct Bound {
    void (*fn)(A...);
    std::tuple<typename std::decay<A>::type...> args;
    static void call(void* self) {
        Bound* b = static_cast<Bound*>(self);
        std::apply(b->fn, b->args);
    }
};

template <typename... A, size_t... I>
Bound<A...> bind(void (*fn)(A...), void** argv, std::index_sequence<I...>) {
    return Bound<A...>{fn, std::tuple<typename std::decay<A>::type...>(
                               *static_cast<typename std::decay<A>::type*>(argv[I])...)};
}

template <typename... A>
int launch(void (*fn)(A...), const unsigned int* grid, const unsigned int* block, void** argv,
           char* err, int err_len) {
    Bound<A...> b = bind(fn, argv, std::index_sequence_for<A...>{});
    Launch l{&Bound<A...>::call, &b};
    return run(l, grid, block, err, err_len);
}

}  // namespace fus_emu

// ---- what NVRTC provides ----------------------------------------------------------------------
#define threadIdx (fus_emu::tl_coords.load(std::memory_order_relaxed)->thread)
#define blockIdx (fus_emu::tl_coords.load(std::memory_order_relaxed)->block)
#define blockDim (fus_emu::tl_coords.load(std::memory_order_relaxed)->block_dim)
#define gridDim (fus_emu::tl_coords.load(std::memory_order_relaxed)->grid_dim)

#define __host__
#define __device__
#define __global__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __shared__ static thread_local
#define __syncthreads() fus_emu::syncthreads(__LINE__)
#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer does not model fences; the order the kernels rely on is carried by their
// atomics (seq_cst atomicAdd, the acquire load of fus_poll), which it does model.
#define __threadfence() ((void)0)
#else
#define __threadfence() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif
#define __nanosleep(ns) fus_emu::nanosleep_ns(ns)
#define __trap() fus_emu::trap(__FILE__, __LINE__)

static inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned int atomicAdd(unsigned int* p, unsigned int v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline int atomicExch(int* p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
static inline int atomicCAS(int* p, int expected, int desired) {
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return expected;
}
template <typename T>
static inline T __ldcg(const T* p) {
    return *p;
}
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

// Appended after a kernel source: the launcher and the parameter-type list of kernel `name`.
#define FUS_EMU_EXPORT(name, source)                                                             \
    extern "C" __attribute__((visibility("default"))) int fus_emu_launch_##name(                \
        const unsigned int* grid, const unsigned int* block, void** argv, char* err,             \
        int err_len) {                                                                           \
        return fus_emu::launch(&name, grid, block, argv, err, err_len);                          \
    }                                                                                            \
    extern "C" __attribute__((visibility("default"))) const char* fus_emu_signature_##name() {  \
        return fus_sig::signature_of(&name);                                                     \
    }                                                                                            \
    extern "C" __attribute__((visibility("default"))) const char* fus_emu_source_##name() {     \
        return source;                                                                           \
    }

#endif  // FUS_GPU_EMULATION_HPP

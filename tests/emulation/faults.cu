// faults.cu -- test-only kernels with the mistakes the emulated device must catch (and one
// correct twin), compiled by tests/test_gpu_emulation.py with kernels/host/gpu_emulation.hpp.
#include "fus_portable.cuh"

// Correct: every thread writes its slot, barrier, then reads its neighbour's.
FUS_GLOBAL void neighbour_with_barrier(float* out, fus_i32 n) {
    __shared__ float s[1024];
    s[threadIdx.x] = (float)(blockIdx.x * 1000 + threadIdx.x);
    __syncthreads();
    const fus_i64 i = (fus_i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = s[(threadIdx.x + 1) % blockDim.x];
}

// The same without the barrier: a race on shared memory.
FUS_GLOBAL void neighbour_missing_barrier(float* out, fus_i32 n) {
    __shared__ float s[1024];
    s[threadIdx.x] = (float)(blockIdx.x * 1000 + threadIdx.x);
    const fus_i64 i = (fus_i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = s[(threadIdx.x + 1) % blockDim.x];
}

// Thread 0 returns before the barrier the others wait at.
FUS_GLOBAL void divergent_barrier(float* out, fus_i32 n) {
    if (threadIdx.x == 0) return;
    __syncthreads();
    const fus_i64 i = (fus_i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = 1.0f;
}

// Odd and even threads wait at two different barriers.
FUS_GLOBAL void split_barrier(float* out, fus_i32 n) {
    if (threadIdx.x & 1) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    const fus_i64 i = (fus_i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = 1.0f;
}

// Thread 0 waits for a flag nobody sets.
FUS_GLOBAL void waits_forever(fus_i32* flag, fus_i32 n) {
    if (threadIdx.x == 0)
        while (fus_poll(flag) < n) __nanosleep(1000);
    __syncthreads();
}

// Tiles sized for 128 threads.
FUS_GLOBAL void needs_block_128(float* out, fus_i32 n) {
    FUS_REQUIRE_BLOCK(128);
    const fus_i64 i = (fus_i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = 1.0f;
}

FUS_EMU_EXPORT(neighbour_with_barrier, "faults.cu")
FUS_EMU_EXPORT(neighbour_missing_barrier, "faults.cu")
FUS_EMU_EXPORT(divergent_barrier, "faults.cu")
FUS_EMU_EXPORT(split_barrier, "faults.cu")
FUS_EMU_EXPORT(waits_forever, "faults.cu")
FUS_EMU_EXPORT(needs_block_128, "faults.cu")

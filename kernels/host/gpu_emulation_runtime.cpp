// gpu_emulation_runtime.cpp -- the scheduler of the emulated CUDA device (see gpu_emulation.hpp).
//
// A launch of grid G x block B runs the G blocks on W host threads ("runners", W =
// FUS_GPU_EMULATION_BLOCKS, default 2, at most G), each taking the next block index from a shared
// counter. A runner executes a block as B fibers: it resumes each fiber in turn; a fiber runs
// until it finishes or reaches __syncthreads. When every fiber has stopped, either all have
// finished (the block is done), or all wait at the same __syncthreads (they are released
// together), or the barrier is broken: some finished or wait elsewhere -- an error naming the line,
// where a GPU would hang or read garbage.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <ucontext.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gpu_emulation.hpp"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define FUS_EMU_TSAN 1
#else
#define FUS_EMU_TSAN 0
#endif

namespace fus_emu {

thread_local std::atomic<Coords*> tl_coords{nullptr};

namespace {

enum class State { Ready, Barrier, Done, Failed };

// state and line are written by the fiber and read by the scheduler: relaxed atomics, so that
// ThreadSanitizer sees no race in the bookkeeping and no synchronisation between the fibers
// either (which would hide their races).
struct Fiber {
    ucontext_t ctx;
    Coords coords;
    std::atomic<State> state{State::Ready};
    std::atomic<int> line{0};  // the __syncthreads line it waits at
    double slept = 0.0;  // seconds spent in __nanosleep since the last barrier
    bool started = false;
    void* tsan = nullptr;
};
constexpr std::memory_order kRelaxed = std::memory_order_relaxed;

struct Shared {
    const Launch* launch;
    fus_emu_dim3 grid, block;
    unsigned long long n_blocks;
    std::atomic<unsigned long long> next{0};
    std::atomic<bool> failed{false};
    double watchdog_s;
    std::string error;  // first error (guarded by `failed` exchange)
    std::atomic<bool> error_set{false};

    void fail(const std::string& msg) {
        bool expected = false;
        if (error_set.compare_exchange_strong(expected, true)) error = msg;
        failed.store(true);
    }
};

struct Runner;
thread_local Runner* tl_runner = nullptr;

constexpr size_t kStack = FUS_EMU_TSAN ? (512u << 10) : (128u << 10);

struct Runner {
    Shared* sh;
    std::unique_ptr<Fiber[]> fibers;
    size_t n_fibers = 0;
    std::vector<char> stacks;
    ucontext_t home;
    void* home_tsan = nullptr;
    std::atomic<Fiber*> current{nullptr};
#if FUS_EMU_TSAN
    char barrier_token = 0;  // address used for the barrier's release / acquire
    char done_token = 0;     // ... and for the end of a block
#endif

    // ThreadSanitizer: the first switch into a fiber carries the scheduler's history (the launch
    // arguments and the host's writes of the inputs); later switches carry nothing, so only
    // __syncthreads and the atomics order the threads of a block.
    void switch_to(Fiber& f) {
        current.store(&f, kRelaxed);
        tl_coords.store(&f.coords, kRelaxed);
        const bool first = !f.started;
        f.started = true;
#if FUS_EMU_TSAN
        __tsan_switch_to_fiber(f.tsan, first ? 0 : __tsan_switch_to_fiber_no_sync);
#else
        (void)first;
#endif
        swapcontext(&home, &f.ctx);
    }

    // No switch back carries a fiber's history to the scheduler (else the next fiber's first
    // switch would pass it on). A finished fiber releases it on `done_token`, which the scheduler
    // acquires once the whole block has finished: the host (and the runner's next block) see the
    // block's writes, its threads stay unordered among themselves.
    void back_home(bool finished) {
        Fiber* f = current.load(kRelaxed);
#if FUS_EMU_TSAN
        if (finished) __tsan_release(&done_token);
        __tsan_switch_to_fiber(home_tsan, __tsan_switch_to_fiber_no_sync);
#else
        (void)finished;
#endif
        swapcontext(&f->ctx, &home);
    }

    static void entry() {
        Runner* r = tl_runner;
        r->sh->launch->call(r->sh->launch->closure);
        r->current.load(kRelaxed)->state.store(State::Done, kRelaxed);
        r->back_home(true);
        abort();  // a finished fiber is never resumed
    }

    [[noreturn]] void fail_here(const std::string& msg) {
        sh->fail(msg);
        current.load(kRelaxed)->state.store(State::Failed, kRelaxed);
        back_home(true);
        abort();  // a failed fiber is never resumed
    }

    std::string where(const Fiber& f) const {
        char buf[96];
        snprintf(buf, sizeof buf, "block (%u,%u,%u)", f.coords.block.x, f.coords.block.y,
                 f.coords.block.z);
        return buf;
    }

    bool run_block(unsigned long long b) {
        const unsigned bx = (unsigned)(b % sh->grid.x);
        const unsigned by = (unsigned)((b / sh->grid.x) % sh->grid.y);
        const unsigned bz = (unsigned)(b / ((unsigned long long)sh->grid.x * sh->grid.y));
        const size_t n = n_fibers;
        for (size_t t = 0; t < n; ++t) {
            Fiber& f = fibers[t];
            f.coords.thread = {(unsigned)(t % sh->block.x), (unsigned)((t / sh->block.x) % sh->block.y),
                               (unsigned)(t / ((size_t)sh->block.x * sh->block.y))};
            f.coords.block = {bx, by, bz};
            f.coords.block_dim = sh->block;
            f.coords.grid_dim = sh->grid;
            f.state.store(State::Ready, kRelaxed);
            f.slept = 0.0;
            f.started = false;
            getcontext(&f.ctx);
            f.ctx.uc_stack.ss_sp = stacks.data() + t * kStack;
            f.ctx.uc_stack.ss_size = kStack;
            f.ctx.uc_link = nullptr;
            makecontext(&f.ctx, &Runner::entry, 0);
#if FUS_EMU_TSAN
            if (!f.tsan) f.tsan = __tsan_create_fiber(0);  // one per thread slot, reused by later blocks
#endif
        }
        for (;;) {
            for (size_t t = 0; t < n; ++t) {
                if (fibers[t].state.load(kRelaxed) != State::Ready) continue;
                switch_to(fibers[t]);
                if (sh->failed.load()) return false;
            }
            size_t done = 0, waiting = 0;
            int line = -1, other = -1;
            for (size_t t = 0; t < n; ++t) {
                const State st = fibers[t].state.load(kRelaxed);
                const int at = fibers[t].line.load(kRelaxed);
                if (st == State::Done) ++done;
                if (st == State::Barrier) {
                    ++waiting;
                    if (line < 0) line = at;
                    else if (at != line) other = at;
                }
            }
            if (done == n) {
#if FUS_EMU_TSAN
                __tsan_acquire(&done_token);
#endif
                return true;
            }
            char msg[320];
            if (done > 0) {
                snprintf(msg, sizeof msg,
                         "emulated GPU: __syncthreads at line %d of the kernel source reached by %zu of "
                         "the %zu threads of %s; %zu had already returned (a barrier in divergent "
                         "code: a GPU would hang or read unsynchronised shared memory)",
                         line, waiting, n, where(fibers[0]).c_str(), done);
                sh->fail(msg);
                return false;
            }
            if (other >= 0) {
                snprintf(msg, sizeof msg,
                         "emulated GPU: the threads of %s wait at different __syncthreads (lines %d "
                         "and %d of the kernel source)",
                         where(fibers[0]).c_str(), line, other);
                sh->fail(msg);
                return false;
            }
            for (size_t t = 0; t < n; ++t) fibers[t].state.store(State::Ready, kRelaxed);  // release
        }
    }

    void work() {
        tl_runner = this;
#if FUS_EMU_TSAN
        home_tsan = __tsan_get_current_fiber();
#endif
        const size_t n = (size_t)sh->block.x * sh->block.y * sh->block.z;
        fibers.reset(new Fiber[n]);
        n_fibers = n;
        stacks.resize(n * kStack);
        for (;;) {
            if (sh->failed.load()) break;
            unsigned long long b = sh->next.fetch_add(1);
            if (b >= sh->n_blocks) break;
            if (!run_block(b)) break;
        }
#if FUS_EMU_TSAN
        for (size_t t = 0; t < n; ++t)
            if (fibers[t].tsan) __tsan_destroy_fiber(fibers[t].tsan);
#endif
        tl_runner = nullptr;
        tl_coords.store(nullptr, kRelaxed);
    }
};

int env_int(const char* name, int fallback, int lo, int hi) {
    const char* v = getenv(name);
    if (!v || !*v) return fallback;
    char* end = nullptr;
    long x = strtol(v, &end, 10);
    if (*end || x < lo || x > hi) return fallback;
    return (int)x;
}

}  // namespace

void syncthreads(int line) {
    Runner* r = tl_runner;
    Fiber* f = r->current.load(kRelaxed);
#if FUS_EMU_TSAN
    __tsan_release(&r->barrier_token);
#endif
    f->line.store(line, kRelaxed);
    f->slept = 0.0;
    f->state.store(State::Barrier, kRelaxed);
    r->back_home(false);
#if FUS_EMU_TSAN
    __tsan_acquire(&r->barrier_token);
#endif
}

void nanosleep_ns(unsigned int ns) {
    Runner* r = tl_runner;
    Fiber* f = r->current.load(kRelaxed);
    if (r->sh->failed.load()) r->fail_here("emulated GPU: launch aborted");
    // at least 50 us: the block being waited for runs on another host thread
    const double s = (ns < 50000u ? 50000u : ns) * 1e-9;
    struct timespec ts = {0, (long)(s * 1e9)};
    ::nanosleep(&ts, nullptr);
    f->slept += s;
    if (f->slept > r->sh->watchdog_s) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "emulated GPU: thread %u of %s waited %.0f s for other blocks "
                 "(FUS_GPU_EMULATION_WATCHDOG_S): the launch would hang on a GPU",
                 f->coords.thread.x, r->where(*f).c_str(), f->slept);
        r->fail_here(msg);
    }
}

void trap(const char* file, int line) {
    Runner* r = tl_runner;
    char msg[320];
    snprintf(msg, sizeof msg, "emulated GPU: __trap() at %s:%d in thread %u of %s", file, line,
             r->current.load(kRelaxed)->coords.thread.x, r->where(*r->current.load(kRelaxed)).c_str());
    r->fail_here(msg);
}

int run(const Launch& launch, const unsigned int* grid, const unsigned int* block, char* err,
        int err_len) {
    auto say = [&](const std::string& m) {
        if (err && err_len > 0) snprintf(err, (size_t)err_len, "%s", m.c_str());
    };
    const unsigned long long threads = (unsigned long long)block[0] * block[1] * block[2];
    if (threads == 0 || threads > 1024 || block[2] > 64 || grid[0] == 0 || grid[1] == 0 ||
        grid[2] == 0 || grid[1] > 65535 || grid[2] > 65535) {
        char msg[200];
        snprintf(msg, sizeof msg, "emulated GPU: invalid launch configuration grid (%u,%u,%u) block (%u,%u,%u)",
                 grid[0], grid[1], grid[2], block[0], block[1], block[2]);
        say(msg);
        return 1;
    }
    Shared sh;
    sh.launch = &launch;
    sh.grid = {grid[0], grid[1], grid[2]};
    sh.block = {block[0], block[1], block[2]};
    sh.n_blocks = (unsigned long long)grid[0] * grid[1] * grid[2];
    sh.watchdog_s = env_int("FUS_GPU_EMULATION_WATCHDOG_S", 60, 1, 86400);
    unsigned long long w = (unsigned long long)env_int("FUS_GPU_EMULATION_BLOCKS", 2, 1, 64);
    if (w > sh.n_blocks) w = sh.n_blocks;
    std::vector<Runner> runners(w);
    std::vector<std::thread> pool;
    for (auto& r : runners) r.sh = &sh;
    for (size_t i = 1; i < runners.size(); ++i) pool.emplace_back([&runners, i] { runners[i].work(); });
    runners[0].work();
    for (auto& t : pool) t.join();
    if (sh.failed.load()) {
        say(sh.error);
        return 2;
    }
    return 0;
}

}  // namespace fus_emu

extern "C" __attribute__((visibility("default"))) const char* fus_emu_build() {
#if FUS_EMU_TSAN
    return "fibers, ThreadSanitizer";
#else
    return "fibers";
#endif
}

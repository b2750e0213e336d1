// The block scheduler of libemu_rt.so: a grid runs on a pool of OS threads (workers), each worker
// runs one block at a time, and each CUDA thread of a block is a fiber on that worker.
// Design: cuda-on-cpu.md section 5.3-5.6.  In short:
//
//  * Direct mode.  A block starts on the worker's extra "direct" stack, calling the kernel for its
//    threads one after another in schedule order.  A barrier-free kernel never switches.
//  * Promotion.  The first barrier or warp operation turns the block into fibers: the threads that
//    already returned are DONE, the current one keeps the direct stack, the rest start lazily on
//    their own guarded stacks when first scheduled.
//  * Barriers count arrivals against the number of live threads; a thread that returns leaves all
//    barriers (so early-exit kernels work), and re-checks the barrier and its warp's pending ops.
//  * Warp ops are barriers among the lanes of one warp named by the mask; the last lane to arrive
//    computes every lane's result.
//  * Nothing runnable while threads still wait = deadlock: the block is abandoned (its fibers are
//    simply never resumed) and the launch fails with a report of who waits where.  Divergent
//    barriers (two source sites) and inconsistent warp ops are reported the same way.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include "rt/fiber.h"
#include "rt/runtime.h"

// Fiber stacks are registered with Valgrind only when the build asks for it (cmake -DEMU_VALGRIND=ON, which needs
// Debian's valgrind package): the same sources must build the same library on every machine, whatever is installed.
#ifdef EMU_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#endif

// The built-ins block read by every kernel (emu_abi.h).
extern "C" {
__attribute__((visibility("default"))) __thread emu_builtins emu_builtins_tls
    __attribute__((tls_model("initial-exec"))) = {};
}

namespace emu::rt {
namespace {

constexpr unsigned kNone = ~0u;
constexpr size_t kGuardBytes = 4096;
constexpr unsigned kMaxWarps = kMaxThreadsPerBlock / 32;

enum ThreadState : uint8_t { kNotStarted, kRunnable, kRunning, kAtBarrier, kAtWarp, kDone };

// One lane's side of a pending warp operation.
struct LaneOp {
    uint64_t value;
    uint64_t result;
    unsigned mask;
    int kind;
    unsigned src; // source lane for shuffles (the lane itself when out of the segment)
    const char* file;
    int line;
};

// Lanes waiting at one warp operation.  Groups of a warp have equal or disjoint masks (checked at
// every arrival), so a warp may have several groups only when it diverged into disjoint halves.
struct WarpGroup {
    unsigned mask;
    int kind;
    unsigned arrived;
};

struct Warp {
    unsigned live;    // lanes that exist and have not returned
    unsigned ngroups; // pending groups
    WarpGroup groups[32];
    LaneOp lane[32];
};

// Shared by all workers of one launch.
struct Launch {
    const KernelInfo* kernel = nullptr;
    void** args = nullptr;
    emu_uint3 grid{}, block{};
    unsigned nthreads = 0; // per block
    unsigned dyn_smem = 0;
    uint64_t nblocks = 0;
    Schedule sched;
    const emu_uint3* tidx = nullptr; // thread index of each linear thread id
    std::atomic<uint64_t> next_block{0};
    std::atomic<bool> failed{false};
    std::mutex mu;
    int code = kSuccess;
    std::string message;

    void fail(int c, const std::string& m) {
        std::lock_guard<std::mutex> lock(mu);
        if (code == kSuccess) {
            code = c;
            message = m;
        }
        failed.store(true);
    }
};

// Per-OS-thread state.  Reused across blocks and launches; only touched by its own thread during a
// launch.
struct Worker {
    // Fiber stacks: slot i belongs to thread i, the last slot is the direct-mode stack.
    char* stacks = nullptr;
    size_t slot_bytes = 0;
    unsigned nslots = 0;
#ifdef EMU_HAVE_VALGRIND
    std::vector<unsigned> vg_stack_ids;
#endif
    unsigned char* smem = nullptr; // dynamic shared memory
    size_t smem_cap = 0;
    void* sched_sp = nullptr; // the worker's own (OS thread) context while a block runs

    Launch* L = nullptr;
    uint64_t block_linear = 0;
    unsigned nthreads = 0, live = 0, cur = 0, direct_pos = 0;
    bool direct = false;
    uint64_t rng = 0;

    // The block barrier: at most one is pending at a time (a second site is a divergence error).
    unsigned bar_arrived = 0;
    int bar_kind = 0;
    const char* bar_file = nullptr;
    int bar_line = 0;
    unsigned bar_first = 0;
    int bar_accum = 0, bar_result = 0;

    uint8_t state[kMaxThreadsPerBlock];
    void* sp[kMaxThreadsPerBlock];
    uint16_t order[kMaxThreadsPerBlock]; // direct-mode order under the random policy
    Warp warps[kMaxWarps];
};

// ---- small helpers --------------------------------------------------------------------------------
uint64_t splitmix64(uint64_t& s) {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t s = a ^ (b * 0xd1b54a32d192ed03ull);
    return splitmix64(s);
}

// A bijection of [0, n) chosen by `seed`: an affine map and a xorshift on the next power of two
// (both bijective there), cycle-walked back into range.  Random block order without a table.
uint64_t permute(uint64_t i, uint64_t n, uint64_t seed) {
    if (n <= 1) return i;
    const unsigned bits = 64u - static_cast<unsigned>(__builtin_clzll(n - 1));
    const uint64_t mask = bits >= 64 ? ~0ull : (1ull << bits) - 1;
    const uint64_t a = mix(seed, 1) | 1u, c = mix(seed, 2);
    const unsigned shift = bits / 2 + 1;
    do {
        i = (i * a + c) & mask;
        i ^= i >> shift;
    } while (i >= n);
    return i;
}

emu_uint3 unlinearize(uint64_t i, const emu_uint3& dims) {
    emu_uint3 r;
    r.x = static_cast<unsigned>(i % dims.x);
    i /= dims.x;
    r.y = static_cast<unsigned>(i % dims.y);
    r.z = static_cast<unsigned>(i / dims.y);
    return r;
}

const char* barrier_name(int kind) {
    switch (kind) {
    case EMU_BAR_COUNT: return "__syncthreads_count";
    case EMU_BAR_AND: return "__syncthreads_and";
    case EMU_BAR_OR: return "__syncthreads_or";
    default: return "__syncthreads";
    }
}

const char* warp_op_name(int kind) {
    switch (kind) {
    case EMU_SHFL_IDX: return "__shfl_sync";
    case EMU_SHFL_UP: return "__shfl_up_sync";
    case EMU_SHFL_DOWN: return "__shfl_down_sync";
    case EMU_SHFL_XOR: return "__shfl_xor_sync";
    case EMU_BALLOT: return "__ballot_sync";
    case EMU_ANY: return "__any_sync";
    case EMU_ALL: return "__all_sync";
    case EMU_SYNCWARP: return "__syncwarp";
    default: return "warp operation";
    }
}

bool same_site(const char* f1, int l1, const char* f2, int l2) {
    return l1 == l2 && (f1 == f2 || strcmp(f1, f2) == 0);
}

Worker& current_worker(const char* what) {
    void* w = emu_builtins_tls.worker;
    if (w == nullptr) {
        fprintf(stderr, "emu: %s called outside an emulated kernel launch\n", what);
        abort();
    }
    return *static_cast<Worker*>(w);
}

std::string where(const Worker& w) {
    const emu_uint3 b = emu_builtins_tls.block_idx;
    return format("block (%u,%u,%u) of kernel '%s'", b.x, b.y, b.z, w.L->kernel->name.c_str());
}

std::string thread_name(const Worker& w, unsigned t) {
    const emu_uint3& i = w.L->tidx[t];
    return format("thread (%u,%u,%u)", i.x, i.y, i.z);
}

char* stack_top(Worker& w, unsigned slot) {
    // Staggered by 64 bytes per slot so that the hot top frames of neighbouring fibers do not all map
    // to the same L1 sets.
    return w.stacks + static_cast<size_t>(slot + 1) * w.slot_bytes - (slot % 64) * 64;
}

unsigned direct_thread(const Worker& w, unsigned k) {
    switch (w.L->sched.policy) {
    case Policy::Reverse: return w.nthreads - 1 - k;
    case Policy::Random: return w.order[k];
    default: return k;
    }
}

// ---- context switching ----------------------------------------------------------------------------
[[noreturn]] void fiber_main(void* arg);
[[noreturn]] void thread_exit(Worker& w);

// Leaves the block for good: back to the worker's own context.  The fibers of the block are never
// resumed; their stacks are reused by the next block.
[[noreturn]] void to_scheduler(Worker& w) {
    void* discard;
    emu_fiber_switch(&discard, w.sched_sp);
    __builtin_unreachable();
}

void enter(Worker& w, unsigned next) {
    w.cur = next;
    emu_builtins_tls.thread_idx = w.L->tidx[next];
    if (w.state[next] == kNotStarted) w.sp[next] = make_fiber_frame(stack_top(w, next), fiber_main, &w);
    w.state[next] = kRunning;
}

[[noreturn]] void switch_for_good(Worker& w, unsigned next) {
    enter(w, next);
    void* discard;
    emu_fiber_switch(&discard, w.sp[next]);
    __builtin_unreachable();
}

unsigned pick_runnable(Worker& w) {
    const unsigned n = w.nthreads;
    auto ready = [&](unsigned i) { return w.state[i] == kRunnable || w.state[i] == kNotStarted; };
    switch (w.L->sched.policy) {
    case Policy::Forward:
        for (unsigned k = 1, i = w.cur; k <= n; ++k) {
            if (++i == n) i = 0;
            if (ready(i)) return i;
        }
        break;
    case Policy::Reverse:
        for (unsigned k = 1, i = w.cur; k <= n; ++k) {
            i = (i == 0 ? n : i) - 1;
            if (ready(i)) return i;
        }
        break;
    case Policy::Random: {
        unsigned i = static_cast<unsigned>(splitmix64(w.rng) % n);
        for (unsigned k = 0; k < n; ++k) {
            if (ready(i)) return i;
            if (++i == n) i = 0;
        }
        break;
    }
    }
    return kNone;
}

// ---- error reports (each records the failure; the caller then calls abandon_block) ----------------
[[noreturn]] void abandon_block(Worker& w) { to_scheduler(w); }

void report(Worker& w, int code, const std::string& message) { w.L->fail(code, message); }

std::string describe_group(const Worker& w, unsigned wi, const WarpGroup& g) {
    const Warp& W = w.warps[wi];
    const LaneOp& first = W.lane[__builtin_ctz(g.arrived)];
    const unsigned missing = g.mask & W.live & ~g.arrived;
    std::string s = format("%d lane(s) of warp %u wait at %s (%s:%d) with mask 0x%08x", __builtin_popcount(g.arrived),
                           wi, warp_op_name(g.kind), first.file, first.line, g.mask);
    if (missing != 0) {
        s += format(" for lane(s) 0x%08x", missing);
        // Where are the missing lanes?
        const unsigned lane = static_cast<unsigned>(__builtin_ctz(missing));
        const unsigned t = wi * 32 + lane;
        if (w.state[t] == kAtBarrier)
            s += format(", which wait at %s (%s:%d)", barrier_name(w.bar_kind), w.bar_file, w.bar_line);
        else if (w.state[t] == kAtWarp)
            s += format(", which wait at %s (%s:%d)", warp_op_name(W.lane[lane].kind), W.lane[lane].file,
                        W.lane[lane].line);
    }
    return s;
}

void report_deadlock(Worker& w) {
    std::string m = format("deadlock in %s (%u threads): ", where(w).c_str(), w.nthreads);
    std::string parts;
    if (w.bar_arrived != 0)
        parts += format("%u thread(s) wait at %s (%s:%d)", w.bar_arrived, barrier_name(w.bar_kind), w.bar_file,
                        w.bar_line);
    unsigned shown = 0, hidden = 0;
    for (unsigned wi = 0; wi * 32 < w.nthreads; ++wi) {
        for (unsigned g = 0; g < w.warps[wi].ngroups; ++g) {
            if (shown == 8) {
                ++hidden;
                continue;
            }
            if (!parts.empty()) parts += "; ";
            parts += describe_group(w, wi, w.warps[wi].groups[g]);
            ++shown;
        }
    }
    if (hidden != 0) parts += format("; and %u more warp group(s)", hidden);
    m += parts;
    m += format("; %u exited", w.nthreads - w.live);
    report(w, kLaunchFailed, m);
}

// The failure paths, out of line: keeping std::string work out of emu_barrier/emu_warp_op keeps their
// frames small, and every byte of frame is fiber-stack cache footprint on the hot path.
#define EMU_COLD [[noreturn]] __attribute__((noinline, cold))

EMU_COLD void fail_deadlock(Worker& w) {
    report_deadlock(w);
    abandon_block(w);
}

EMU_COLD void fail_divergent_barrier(Worker& w, int kind, const char* file, int line) {
    report(w, kLaunchFailed,
           format("divergent %s in %s: %s reached %s (%s:%d) while %s waits at %s (%s:%d)", barrier_name(kind),
                  where(w).c_str(), thread_name(w, w.cur).c_str(), barrier_name(kind), file, line,
                  thread_name(w, w.bar_first).c_str(), barrier_name(w.bar_kind), w.bar_file, w.bar_line));
    abandon_block(w);
}

EMU_COLD void fail_lane_not_in_mask(Worker& w, int kind, unsigned mask, const char* file, int line) {
    report(w, kLaunchFailed,
           format("%s at %s:%d in %s: %s (lane %u) is not in its own mask 0x%08x", warp_op_name(kind), file, line,
                  where(w).c_str(), thread_name(w, w.cur).c_str(), w.cur & 31u, mask));
    abandon_block(w);
}

EMU_COLD void fail_bad_width(Worker& w, int kind, int width, const char* file, int line) {
    report(w, kLaunchFailed,
           format("%s at %s:%d in %s: width %d is not a power of two in 1..32", warp_op_name(kind), file, line,
                  where(w).c_str(), width));
    abandon_block(w);
}

EMU_COLD void fail_divergent_warp_op(Worker& w, const WarpGroup& g, int kind, unsigned mask, const char* file,
                                     int line) {
    const unsigned wi = w.cur >> 5;
    const LaneOp& other = w.warps[wi].lane[__builtin_ctz(g.arrived)];
    report(w, kLaunchFailed,
           format("divergent warp operations in %s, warp %u: %s calls %s with mask 0x%08x at %s:%d while lane %d "
                  "waits at %s with mask 0x%08x at %s:%d",
                  where(w).c_str(), wi, thread_name(w, w.cur).c_str(), warp_op_name(kind), mask, file, line,
                  __builtin_ctz(g.arrived), warp_op_name(g.kind), g.mask, other.file, other.line));
    abandon_block(w);
}

// ---- direct mode and promotion --------------------------------------------------------------------
void promote(Worker& w) {
    w.direct = false;
    const unsigned n = w.nthreads, k = w.direct_pos;
    for (unsigned j = 0; j < n; ++j)
        w.state[direct_thread(w, j)] = j < k ? kDone : (j == k ? kRunning : kNotStarted);
    w.live = n - k;
    for (unsigned wi = 0; wi * 32 < n; ++wi) {
        Warp& W = w.warps[wi];
        W.live = 0;
        W.ngroups = 0;
        for (unsigned l = 0; l < 32 && wi * 32 + l < n; ++l)
            if (w.state[wi * 32 + l] != kDone) W.live |= 1u << l;
    }
    w.bar_arrived = 0;
}

[[noreturn]] void direct_main(void* arg) {
    Worker& w = *static_cast<Worker*>(arg);
    const emu_thunk_fn thunk = w.L->kernel->thunk;
    void** const args = w.L->args;
    const emu_uint3* const tidx = w.L->tidx;
    const unsigned n = w.nthreads;
    for (unsigned k = 0; k < n; ++k) {
        const unsigned t = direct_thread(w, k);
        w.cur = t;
        w.direct_pos = k;
        emu_builtins_tls.thread_idx = tidx[t];
        thunk(args);
        if (!w.direct) thread_exit(w); // this thread promoted the block: it is a fiber now
    }
    w.live = 0;
    to_scheduler(w);
}

[[noreturn]] void fiber_main(void* arg) {
    Worker& w = *static_cast<Worker*>(arg);
    w.L->kernel->thunk(w.L->args);
    thread_exit(w);
}

// ---- barriers and warp operations -----------------------------------------------------------------
void release_barrier(Worker& w) {
    for (unsigned i = 0; i < w.nthreads; ++i)
        if (w.state[i] == kAtBarrier) w.state[i] = kRunnable;
    w.bar_arrived = 0;
    w.bar_result = w.bar_accum;
}

unsigned source_lane(int kind, unsigned lane, int arg, int width) {
    // PTX shfl.sync semantics with c = ((32 - width) << 8) | (up ? 0 : 31): the segment is
    // [base, base + width); idx wraps inside it, up/down/xor that leave it return the caller's value,
    // except that xor may read lower segments.
    const unsigned w = static_cast<unsigned>(width);
    const int base = static_cast<int>(lane & ~(w - 1));
    const int last = base + width - 1;
    const int l = static_cast<int>(lane);
    const int d = arg & 31;
    int j = l;
    switch (kind) {
    case EMU_SHFL_IDX: j = base + (arg & (width - 1)); break;
    case EMU_SHFL_UP: j = l - d >= base ? l - d : l; break;
    case EMU_SHFL_DOWN: j = l + d <= last ? l + d : l; break;
    case EMU_SHFL_XOR: j = (l ^ d) <= last ? (l ^ d) : l; break;
    default: break;
    }
    return static_cast<unsigned>(j);
}

// The last lane arrived (or the last missing lane exited): compute every lane's result, release them.
void complete_group(Worker& w, unsigned wi, unsigned gi) {
    Warp& W = w.warps[wi];
    const WarpGroup g = W.groups[gi];
    W.groups[gi] = W.groups[--W.ngroups];
    unsigned votes = 0;
    for (unsigned m = g.arrived; m != 0; m &= m - 1) {
        const unsigned l = static_cast<unsigned>(__builtin_ctz(m));
        if (W.lane[l].value != 0) votes |= 1u << l;
    }
    for (unsigned m = g.arrived; m != 0; m &= m - 1) {
        const unsigned l = static_cast<unsigned>(__builtin_ctz(m));
        LaneOp& op = W.lane[l];
        switch (g.kind) {
        case EMU_SHFL_IDX:
        case EMU_SHFL_UP:
        case EMU_SHFL_DOWN:
        case EMU_SHFL_XOR:
            // A source lane outside the group (exited or not in the mask) yields the caller's value.
            op.result = ((g.arrived >> op.src) & 1u) ? W.lane[op.src].value : op.value;
            break;
        case EMU_BALLOT: op.result = votes; break;
        case EMU_ANY: op.result = votes != 0; break;
        case EMU_ALL: op.result = votes == g.arrived; break;
        default: op.result = 0; break;
        }
        w.state[wi * 32 + l] = kRunnable;
    }
}

[[noreturn]] void thread_exit(Worker& w) {
    const unsigned t = w.cur;
    w.state[t] = kDone;
    --w.live;
    Warp& W = w.warps[t >> 5];
    W.live &= ~(1u << (t & 31));
    if (w.live == 0) to_scheduler(w); // the block is complete
    // Exited threads leave every barrier: the rest may now be complete.
    if (w.bar_arrived != 0 && w.bar_arrived == w.live) release_barrier(w);
    for (unsigned gi = 0; gi < W.ngroups;) {
        const WarpGroup& g = W.groups[gi];
        if (g.arrived == (g.mask & W.live))
            complete_group(w, t >> 5, gi); // removes group gi
        else
            ++gi;
    }
    const unsigned next = pick_runnable(w);
    if (next == kNone) fail_deadlock(w);
    switch_for_good(w, next);
}

// ---- block and launch driving ---------------------------------------------------------------------
void run_block(Worker& w, uint64_t linear) {
    Launch& L = *w.L;
    w.block_linear = linear;
    emu_builtins_tls.block_idx = unlinearize(linear, L.grid);
    // Poison dynamic shared memory (0xff bytes read as NaN floats and -1 integers) so that a kernel
    // reading it before writing cannot pass by luck.
    if (L.dyn_smem != 0) memset(w.smem, 0xff, L.dyn_smem);
    w.direct = true;
    w.live = w.nthreads;
    w.bar_arrived = 0;
    if (L.sched.policy == Policy::Random) {
        w.rng = mix(L.sched.seed, linear);
        for (unsigned i = 0; i < w.nthreads; ++i) w.order[i] = static_cast<uint16_t>(i);
        for (unsigned i = w.nthreads; i > 1; --i) {
            const unsigned j = static_cast<unsigned>(splitmix64(w.rng) % i);
            std::swap(w.order[i - 1], w.order[j]);
        }
    }
    void* frame = make_fiber_frame(stack_top(w, w.nslots - 1), direct_main, &w);
    emu_fiber_switch(&w.sched_sp, frame);
}

void release_stacks(Worker& w) {
    if (w.stacks == nullptr) return;
#ifdef EMU_HAVE_VALGRIND
    for (unsigned id : w.vg_stack_ids) VALGRIND_STACK_DEREGISTER(id);
    w.vg_stack_ids.clear();
#endif
    munmap(w.stacks, w.slot_bytes * w.nslots);
    w.stacks = nullptr;
    w.nslots = 0;
}

// One mapping per worker holds every fiber stack with a PROT_NONE guard page below each, reserved
// lazily (MAP_NORESERVE) and kept across launches: mprotect is too slow to do per block.
bool prepare_worker(Worker& w, const Launch& L, std::string* error) {
    const unsigned need = L.nthreads + 1;
    const size_t slot = fiber_stack_bytes() + kGuardBytes;
    if (w.stacks == nullptr || w.nslots < need || w.slot_bytes != slot) {
        release_stacks(w);
        void* p = mmap(nullptr, slot * need, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (p == MAP_FAILED) {
            *error = format("cannot map %u fiber stacks of %zu bytes", need, slot);
            return false;
        }
        w.stacks = static_cast<char*>(p);
        w.slot_bytes = slot;
        w.nslots = need;
        for (unsigned i = 0; i < need; ++i) {
            if (mprotect(w.stacks + i * slot, kGuardBytes, PROT_NONE) != 0) {
                *error = "cannot install fiber stack guard pages (vm.max_map_count?)";
                release_stacks(w);
                return false;
            }
#ifdef EMU_HAVE_VALGRIND
            w.vg_stack_ids.push_back(VALGRIND_STACK_REGISTER(w.stacks + i * slot + kGuardBytes, w.stacks + (i + 1) * slot));
#endif
        }
    }
    const size_t smem_need = std::max<size_t>(L.dyn_smem, 256);
    if (w.smem_cap < smem_need) {
        free(w.smem);
        const size_t cap = (smem_need + 4095) & ~size_t(4095);
        w.smem = static_cast<unsigned char*>(aligned_alloc(128, cap));
        w.smem_cap = w.smem != nullptr ? cap : 0;
        if (w.smem == nullptr) {
            *error = format("cannot allocate %zu bytes of dynamic shared memory", cap);
            return false;
        }
    }
    return true;
}

void run_blocks(Worker& w, Launch& L) {
    std::string error;
    if (!prepare_worker(w, L, &error)) {
        L.fail(kOutOfMemory, error);
        return;
    }
    w.L = &L;
    w.nthreads = L.nthreads;
    emu_builtins_tls.block_dim = L.block;
    emu_builtins_tls.grid_dim = L.grid;
    emu_builtins_tls.dyn_smem = w.smem;
    emu_builtins_tls.worker = &w;
    while (!L.failed.load(std::memory_order_relaxed)) {
        const uint64_t i = L.next_block.fetch_add(1, std::memory_order_relaxed);
        if (i >= L.nblocks) break;
        uint64_t b = i;
        if (L.sched.policy == Policy::Reverse) b = L.nblocks - 1 - i;
        else if (L.sched.policy == Policy::Random) b = permute(i, L.nblocks, L.sched.seed);
        run_block(w, b);
    }
    emu_builtins_tls = emu_builtins{};
    w.L = nullptr;
}

// The pool: the launching thread is worker 0, helpers 1..n-1 are started on demand and park on a
// condition variable between launches.  Launches are serialised.  Never destroyed (helpers may still
// be parked when the process exits).
class Pool {
public:
    static Pool& get() {
        static Pool* p = new Pool;
        return *p;
    }

    void run(Launch& L, unsigned nthreads) {
        std::lock_guard<std::mutex> launch_lock(launch_mu_);
        // Thread index table for this block shape.
        if (tidx_dims_.x != L.block.x || tidx_dims_.y != L.block.y || tidx_dims_.z != L.block.z) {
            for (unsigned t = 0; t < L.nthreads; ++t) tidx_[t] = unlinearize(t, L.block);
            tidx_dims_ = L.block;
        }
        L.tidx = tidx_.data();
        unsigned parts = static_cast<unsigned>(std::min<uint64_t>(std::max(nthreads, 1u), L.nblocks));
        for (unsigned i = 0; i < parts; ++i)
            if (!workers_[i]) workers_[i] = std::make_unique<Worker>();
        while (helpers_ + 1 < parts) {
            try {
                const unsigned idx = helpers_ + 1;
                std::thread([this, idx] { helper_loop(idx); }).detach();
                helpers_ = idx;
            } catch (const std::system_error&) {
                parts = helpers_ + 1; // cannot start more OS threads: run with those we have
            }
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            current_ = &L;
            participants_ = parts;
            remaining_ = parts - 1;
            ++generation_;
        }
        if (parts > 1) cv_.notify_all();
        run_blocks(*workers_[0], L);
        std::unique_lock<std::mutex> lock(mu_);
        done_cv_.wait(lock, [this] { return remaining_ == 0; });
        current_ = nullptr;
    }

private:
    void helper_loop(unsigned idx) {
        uint64_t seen = 0;
        for (;;) {
            Launch* L = nullptr;
            {
                std::unique_lock<std::mutex> lock(mu_);
                cv_.wait(lock, [&] { return generation_ != seen; });
                seen = generation_;
                if (idx >= participants_) continue;
                L = current_;
            }
            run_blocks(*workers_[idx], *L);
            std::lock_guard<std::mutex> lock(mu_);
            if (--remaining_ == 0) done_cv_.notify_one();
        }
    }

    std::mutex launch_mu_;
    std::array<emu_uint3, kMaxThreadsPerBlock> tidx_{};
    emu_uint3 tidx_dims_{0, 0, 0};
    std::array<std::unique_ptr<Worker>, kMaxPoolThreads> workers_;
    unsigned helpers_ = 0;

    std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    uint64_t generation_ = 0;
    Launch* current_ = nullptr;
    unsigned participants_ = 0, remaining_ = 0;
};

} // namespace

int launch(const KernelInfo& kernel, const LaunchConfig& cfg, void** args, std::string* error) {
    const uint64_t nthreads = uint64_t(cfg.block.x) * cfg.block.y * cfg.block.z;
    const uint64_t nblocks = uint64_t(cfg.grid.x) * cfg.grid.y * cfg.grid.z;
    if (nthreads == 0 || nthreads > kMaxThreadsPerBlock || nblocks == 0) {
        *error = format("cannot run a block of %llu threads in a grid of %llu blocks", (unsigned long long)nthreads,
                        (unsigned long long)nblocks);
        return kInvalidValue;
    }
    if (emu_builtins_tls.worker != nullptr) {
        *error = "kernel launch from inside a kernel (dynamic parallelism) is not supported";
        return kInvalidValue;
    }
    Launch L;
    L.kernel = &kernel;
    L.args = args;
    L.grid = cfg.grid;
    L.block = cfg.block;
    L.nthreads = static_cast<unsigned>(nthreads);
    L.dyn_smem = cfg.dyn_smem_bytes;
    L.nblocks = nblocks;
    L.sched = schedule();
    counters().launches.fetch_add(1);
    kernel.launches.fetch_add(1);
    Pool::get().run(L, threads());
    if (L.code != kSuccess) *error = L.message;
    return L.code;
}

} // namespace emu::rt

// ---- C entry points called by kernels -------------------------------------------------------------
using namespace emu::rt;

// Each entry point is split in two: the bookkeeping (noinline) decides where to go and returns the
// context to switch to, or nullptr to carry on; the exported function keeps only the worker across the
// switch.  The frame that stays on a waiting fiber's stack is then a few words, which matters because
// every barrier touches every fiber's stack top (cache footprint = the cost of a barrier).
namespace emu::rt {
namespace {

// Picks the next thread and prepares the switch; `save` receives where to store the current context.
void* prepare_switch(Worker& w, unsigned next, void*** save) {
    const unsigned prev = w.cur;
    enter(w, next);
    if (next == prev) return nullptr;
    *save = &w.sp[prev];
    return w.sp[next];
}

__attribute__((noinline)) void* barrier_arrive(Worker& w, int kind, int pred, const char* file, int line,
                                               void*** save) {
    if (w.direct) promote(w);
    const unsigned t = w.cur;
    if (w.bar_arrived == 0) {
        w.bar_kind = kind;
        w.bar_file = file;
        w.bar_line = line;
        w.bar_first = t;
        w.bar_accum = kind == EMU_BAR_AND ? 1 : 0;
    } else if (kind != w.bar_kind || !same_site(file, line, w.bar_file, w.bar_line)) {
        fail_divergent_barrier(w, kind, file, line);
    }
    switch (kind) {
    case EMU_BAR_COUNT: w.bar_accum += pred; break;
    case EMU_BAR_AND: w.bar_accum &= pred; break;
    case EMU_BAR_OR: w.bar_accum |= pred; break;
    default: break;
    }
    w.state[t] = kAtBarrier;
    if (++w.bar_arrived == w.live) {
        release_barrier(w);
        w.state[t] = kRunning;
        if (w.L->sched.policy != Policy::Random) return nullptr;
        w.state[t] = kRunnable; // let a random thread go first after the release
    }
    const unsigned next = pick_runnable(w);
    if (next == kNone) fail_deadlock(w);
    return prepare_switch(w, next, save);
}

__attribute__((noinline)) void* warp_arrive(Worker& w, int kind, unsigned mask, uint64_t value, int arg, int width,
                                            const char* file, int line, void*** save) {
    if (w.direct) promote(w);
    const unsigned t = w.cur, lane = t & 31, wi = t >> 5, bit = 1u << lane;
    Warp& W = w.warps[wi];
    if ((mask & bit) == 0) fail_lane_not_in_mask(w, kind, mask, file, line);
    if (kind <= EMU_SHFL_XOR && (width <= 0 || width > 32 || (width & (width - 1)) != 0))
        fail_bad_width(w, kind, width, file, line);
    WarpGroup* group = nullptr;
    for (unsigned i = 0; i < W.ngroups; ++i) {
        WarpGroup& g = W.groups[i];
        if ((g.mask & mask) == 0) continue;
        if (g.mask != mask || g.kind != kind) fail_divergent_warp_op(w, g, kind, mask, file, line);
        group = &g;
        break;
    }
    if (group == nullptr) {
        group = &W.groups[W.ngroups++];
        *group = WarpGroup{mask, kind, 0};
    }
    LaneOp& op = W.lane[lane];
    op.value = value;
    op.result = 0;
    op.mask = mask;
    op.kind = kind;
    op.src = kind <= EMU_SHFL_XOR ? source_lane(kind, lane, arg, width) : lane;
    op.file = file;
    op.line = line;
    group->arrived |= bit;
    w.state[t] = kAtWarp;
    if (group->arrived == (mask & W.live)) {
        complete_group(w, wi, static_cast<unsigned>(group - W.groups));
        w.state[t] = kRunning;
        return nullptr;
    }
    const unsigned next = pick_runnable(w);
    if (next == kNone) fail_deadlock(w);
    return prepare_switch(w, next, save);
}

} // namespace
} // namespace emu::rt

extern "C" __attribute__((visibility("default"))) int emu_barrier(int kind, int pred, const char* file, int line) {
    Worker& w = current_worker("__syncthreads");
    void** save = nullptr;
    if (void* next = barrier_arrive(w, kind, pred, file, line, &save)) emu_fiber_switch(save, next);
    return w.bar_result;
}

extern "C" __attribute__((visibility("default"))) uint64_t emu_warp_op(int kind, unsigned mask, uint64_t value, int arg,
                                                                       int width, const char* file, int line) {
    Worker& w = current_worker("a warp operation");
    const unsigned t = w.cur;
    void** save = nullptr;
    if (void* next = warp_arrive(w, kind, mask, value, arg, width, file, line, &save)) emu_fiber_switch(save, next);
    return w.warps[t >> 5].lane[t & 31].result;
}

extern "C" __attribute__((visibility("default"))) void emu_trap(const char* file, int line) {
    Worker& w = current_worker("__trap");
    report(w, kLaunchFailed,
           format("__trap() at %s:%d in %s, %s", file, line, where(w).c_str(), thread_name(w, w.cur).c_str()));
    abandon_block(w);
}

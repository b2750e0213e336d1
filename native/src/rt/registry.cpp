// Kernel registry, counters, settings and the per-thread last error of libemu_rt.so.
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "rt/runtime.h"

namespace emu::rt {

std::string format(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    const int n = vsnprintf(nullptr, 0, fmt, ap);
    va_end(ap);
    std::string s(n > 0 ? static_cast<size_t>(n) : 0, '\0');
    if (n > 0) vsnprintf(s.data(), s.size() + 1, fmt, ap2);
    va_end(ap2);
    return s;
}

// ---- registry -------------------------------------------------------------------------------------
namespace {
struct Registry {
    std::mutex mu;
    std::map<std::string, std::unique_ptr<KernelInfo>> kernels;
};
// Never destroyed: kernel libraries register from their static initialisers, and lookups may happen
// during process teardown.
Registry& registry() {
    static Registry* r = new Registry;
    return *r;
}
} // namespace

const KernelInfo* find_kernel(const std::string& name) {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.kernels.find(name);
    return it == r.kernels.end() ? nullptr : it->second.get();
}

std::vector<const KernelInfo*> all_kernels() {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    std::vector<const KernelInfo*> out;
    for (auto& [name, k] : r.kernels) out.push_back(k.get());
    return out;
}

// ---- counters -------------------------------------------------------------------------------------
Counters& counters() {
    static Counters* c = new Counters;
    return *c;
}

void reset_counters() {
    Counters& c = counters();
    for (auto* a : {&c.htod_copies, &c.htod_bytes, &c.dtoh_copies, &c.dtoh_bytes, &c.dtod_copies, &c.dtod_bytes,
                    &c.launches, &c.gemm_calls, &c.memsets})
        a->store(0);
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    for (auto& [name, k] : r.kernels) k->launches.store(0);
}

// ---- settings -------------------------------------------------------------------------------------
namespace {
struct Settings {
    std::mutex mu;
    unsigned threads = 0; // 0 = default_threads()
    Schedule schedule;
    size_t stack_bytes = 64 * 1024;
    std::string env_error;
};

bool parse_uint(const char* s, unsigned long long* out) {
    if (s == nullptr || *s == '\0') return false;
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = strtoull(s, &end, 0);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-') return false;
    *out = v;
    return true;
}

// The environment sets the defaults once, at first use.  A bad value is kept as an error that cuInit
// returns (CUDA_ERROR_INVALID_VALUE) instead of being silently ignored.
Settings& settings() {
    static Settings* s = [] {
        auto* st = new Settings;
        if (const char* v = getenv("BLOCKDANCE_EMU_THREADS")) {
            unsigned long long n = 0;
            if (!parse_uint(v, &n) || n == 0 || n > kMaxPoolThreads)
                st->env_error += format("BLOCKDANCE_EMU_THREADS='%s' is not an integer in 1..%u. ", v, kMaxPoolThreads);
            else
                st->threads = static_cast<unsigned>(n);
        }
        if (const char* v = getenv("BLOCKDANCE_EMU_SCHEDULE")) {
            if (!parse_schedule(v, &st->schedule))
                st->env_error += format("BLOCKDANCE_EMU_SCHEDULE='%s' is not forward, reverse or random:<seed>. ", v);
        }
        if (const char* v = getenv("BLOCKDANCE_EMU_STACK_KIB")) {
            unsigned long long n = 0;
            if (!parse_uint(v, &n) || n < 32 || n > 16384)
                st->env_error += format("BLOCKDANCE_EMU_STACK_KIB='%s' is not an integer in 32..16384. ", v);
            else
                st->stack_bytes = static_cast<size_t>(n) * 1024;
        }
        if (!st->env_error.empty()) st->env_error.pop_back();
        return st;
    }();
    return *s;
}
} // namespace

bool parse_schedule(const char* spec, Schedule* out) {
    if (spec == nullptr) return false;
    if (strcmp(spec, "forward") == 0) {
        *out = Schedule{Policy::Forward, 0};
        return true;
    }
    if (strcmp(spec, "reverse") == 0) {
        *out = Schedule{Policy::Reverse, 0};
        return true;
    }
    if (strncmp(spec, "random:", 7) == 0) {
        unsigned long long seed = 0;
        if (!parse_uint(spec + 7, &seed)) return false;
        *out = Schedule{Policy::Random, seed};
        return true;
    }
    return false;
}

std::string schedule_spec(const Schedule& s) {
    switch (s.policy) {
    case Policy::Forward: return "forward";
    case Policy::Reverse: return "reverse";
    case Policy::Random: return format("random:%llu", static_cast<unsigned long long>(s.seed));
    }
    return "forward";
}

Schedule schedule() {
    Settings& s = settings();
    std::lock_guard<std::mutex> lock(s.mu);
    return s.schedule;
}

void set_schedule(const Schedule& sched) {
    Settings& s = settings();
    std::lock_guard<std::mutex> lock(s.mu);
    s.schedule = sched;
}

unsigned default_threads() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n > 0) return std::min<unsigned>(static_cast<unsigned>(n), kMaxPoolThreads);
    }
    return 1;
}

unsigned threads() {
    Settings& s = settings();
    std::lock_guard<std::mutex> lock(s.mu);
    return s.threads != 0 ? s.threads : default_threads();
}

bool set_threads(unsigned n) {
    if (n > kMaxPoolThreads) return false;
    Settings& s = settings();
    std::lock_guard<std::mutex> lock(s.mu);
    s.threads = n;
    return true;
}

size_t fiber_stack_bytes() {
    Settings& s = settings();
    std::lock_guard<std::mutex> lock(s.mu);
    return s.stack_bytes;
}

std::string env_error() {
    Settings& s = settings();
    std::lock_guard<std::mutex> lock(s.mu);
    return s.env_error;
}

// ---- last error -----------------------------------------------------------------------------------
// A plain pointer keeps libemu_rt.so's TLS segment tiny (it must live in the static TLS surplus,
// see emu_abi.h).  One string per OS thread that ever failed; never freed.
namespace {
__thread std::string* tl_last_error = nullptr;
}

void set_last_error(const std::string& message) {
    if (tl_last_error == nullptr) tl_last_error = new std::string;
    *tl_last_error = message;
}

const char* last_error() { return tl_last_error != nullptr ? tl_last_error->c_str() : ""; }

} // namespace emu::rt

// ---- C entry point used by the generated manifests ------------------------------------------------
extern "C" __attribute__((visibility("default"))) int emu_register_kernel(const emu_kernel_desc* d) {
    using namespace emu::rt;
    auto k = std::make_unique<KernelInfo>();
    k->name = d->name;
    k->signature = d->signature;
    k->source = d->source != nullptr ? d->source : "";
    k->thunk = d->thunk;
    k->param_sizes.assign(d->param_sizes, d->param_sizes + d->num_params);
    k->param_aligns.assign(d->param_aligns, d->param_aligns + d->num_params);
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.kernels.find(k->name);
    if (it != r.kernels.end()) {
        fprintf(stderr, "emu: kernel '%s' is defined twice (%s and %s); keeping the first\n", d->name,
                it->second->source.c_str(), k->source.c_str());
        return -1;
    }
    r.kernels.emplace(k->name, std::move(k));
    return 0;
}

// Fiber primitives of libemu_rt.so (implemented in fiber_switch_x86_64.S).
#pragma once

#include <cstdint>

extern "C" {
void emu_fiber_switch(void** save_sp, void* next_sp);
void emu_fiber_trampoline();
}

namespace emu::rt {

// Builds a context on a fresh stack that, when switched to, calls entry(arg) with a correctly
// aligned stack (rsp % 16 == 8 at entry).  `entry` must never return.
inline void* make_fiber_frame(char* top, void (*entry)(void*), void* arg) {
    const uintptr_t aligned = reinterpret_cast<uintptr_t>(top) & ~uintptr_t(15);
    // 7 slots popped by emu_fiber_switch (r15 r14 r13 r12 rbx rbp, then the resume address) plus two
    // slots of padding so that the trampoline starts with rsp % 16 == 0.
    void** sp = reinterpret_cast<void**>(aligned - 9 * sizeof(void*));
    sp[0] = nullptr;                                           // r15
    sp[1] = nullptr;                                           // r14
    sp[2] = arg;                                               // r13: argument
    sp[3] = reinterpret_cast<void*>(entry);                    // r12: entry point
    sp[4] = nullptr;                                           // rbx
    sp[5] = nullptr;                                           // rbp
    sp[6] = reinterpret_cast<void*>(&emu_fiber_trampoline);    // resume address
    sp[7] = nullptr;
    sp[8] = nullptr;
    return sp;
}

} // namespace emu::rt

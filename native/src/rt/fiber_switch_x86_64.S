/*
 * Fiber context switch for x86-64 System V (see cuda-on-cpu.md section 2.1: the `pop; jmp` resume
 * measured 3 ns per switch against 10-12 ns for a `ret`-based one, which mispredicts the return
 * stack buffer when it returns into a different context).
 *
 * void emu_fiber_switch(void** save_sp, void* next_sp)
 *   Saves the callee-saved registers on the current stack, stores the stack pointer in *save_sp,
 *   loads next_sp and resumes the context saved there.  MXCSR and the x87 control word are not
 *   saved: their control bits are callee-saved by the ABI and no kernel changes rounding modes.
 *
 * A fresh context (built by make_fiber_frame in fiber.h) is six zero/argument registers followed
 * by the address of emu_fiber_trampoline, with the entry point in r12 and its argument in r13.
 */
    .text

    .globl  emu_fiber_switch
    .hidden emu_fiber_switch
    .type   emu_fiber_switch, @function
    .p2align 4
emu_fiber_switch:
    .cfi_startproc
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    popq    %r8
    jmpq    *%r8
    .cfi_endproc
    .size   emu_fiber_switch, .-emu_fiber_switch

/* First code a new fiber runs.  `.cfi_undefined rip` ends unwinding here, so gdb backtraces taken
 * inside a kernel stop cleanly at the fiber's base. The entry point never returns. */
    .globl  emu_fiber_trampoline
    .hidden emu_fiber_trampoline
    .type   emu_fiber_trampoline, @function
    .p2align 4
emu_fiber_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq    %r13, %rdi
    andq    $-16, %rsp
    callq   *%r12
    ud2
    .cfi_endproc
    .size   emu_fiber_trampoline, .-emu_fiber_trampoline

    .section .note.GNU-stack, "", @progbits

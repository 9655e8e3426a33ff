@ Branches whose targets lie far away when the module is placed in SRAM and the firmware
@ in flash: a call, a tail call and a conditional branch, each through a veneer.
        .syntax unified
        .cpu cortex-m3
        .thumb
        .text
        .globl  far_call
        .type   far_call, %function
far_call:
        push    {r4, lr}
        bl      ext_fn                  @ R_ARM_THM_CALL
        pop     {r4, pc}
        .globl  far_tail
        .type   far_tail, %function
far_tail:
        b.w     ext_fn                  @ R_ARM_THM_JUMP24
        .globl  far_if_zero
        .type   far_if_zero, %function
far_if_zero:
        cmp     r1, #0
        beq.w   ext_fn                  @ R_ARM_THM_JUMP19
        movs    r0, #0
        bx      lr

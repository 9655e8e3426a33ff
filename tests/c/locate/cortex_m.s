@ Cortex-M start-up for board.c, linked before it: the vector table (the initial stack pointer,
@ the reset handler) and a reset handler in sections of their own (.vectors, .boot), and a few
@ instructions at the start of .text. The reset handler calls start() and returns its result;
@ on the way, it reads a variable of .data through a movw/movt pair and every branch crosses
@ between .boot and .text, so that when .text moves apart from .boot (the second layout aligns
@ it differently) each of these fields is one the locator must rewrite:
@
@   vector table      R_ARM_ABS32 (stack_top in .bss, reset in .boot)
@   movw/movt         R_ARM_THM_MOVW_ABS_NC, R_ARM_THM_MOVT_ABS (how_many in .data)
@   beq.n  .boot->.text   R_ARM_THM_JUMP8      beq.w  .text->.boot   R_ARM_THM_JUMP19
@   bl     .boot->.text   R_ARM_THM_CALL       b.w    .boot->.text   R_ARM_THM_JUMP24
@   b.n    .text->.boot   R_ARM_THM_JUMP11
@
@ The 16-bit branches reach +-256 bytes and +-2 KiB: .boot and .text stay next to each other.
@ The boot table, not this code, copies .data and zeroes .bss (a linker script's _sidata would
@ not follow a located .data).

        .syntax unified
        .thumb

        .section .vectors, "a", %progbits
        .balign 4
        .global vectors
vectors:
        .word   stack_top               @ 0: the initial stack pointer
        .word   reset                   @ 1: the reset handler (odd: Thumb code)

        .bss
        .balign 8
        .space  1024                    @ the stack
        .global stack_top
stack_top:

        .section .boot, "ax", %progbits
        .global reset, back_in_boot, done
        .type   reset, %function
        .thumb_func
reset:
        movw    r0, #:lower16:how_many
        movt    r0, #:upper16:how_many
        ldr     r0, [r0]                @ 3
        cmp     r0, #3
        beq.n   in_text
        udf     #1

        .type   back_in_boot, %function
        .thumb_func
back_in_boot:
        push    {r4, lr}
        bl      start
        pop     {r4, lr}
        b.w     leave

        .type   done, %function
        .thumb_func
done:
        bx      lr                      @ start()'s result, to whoever reset

        .text
        .global in_text, leave
        .type   in_text, %function
        .thumb_func
in_text:
        cmp     r0, #3
        beq.w   back_in_boot
        udf     #2

        .type   leave, %function
        .thumb_func
leave:
        b.n     done

@ GOT-relative relocation kinds (what -fpic code uses), each in a function the tests call:
@ tests/test_arm.py links this by linkload and by arm-none-eabi-ld with the GOT at the same
@ address and compares the bytes, then runs it.
        .syntax unified
        .cpu cortex-m3
        .thumb

        .text
        .align  2
        .globl  got_base                @ R_ARM_BASE_PREL: the GOT's address, PC-relatively
        .type   got_base, %function
got_base:
        ldr     r0, 1f
2:      add     r0, pc
        bx      lr
        .align  2
1:      .word   _GLOBAL_OFFSET_TABLE_ - (2b + 4)

        .globl  through_got             @ R_ARM_GOT_BREL: ext_data's GOT entry, from the GOT
        .type   through_got, %function
through_got:
        push    {r4, lr}
        bl      got_base
        ldr     r1, 1f
        ldr     r0, [r0, r1]
        pop     {r4, pc}
        .align  2
1:      .word   ext_data(GOT)

        .globl  through_got_pc          @ R_ARM_GOT_PREL: the same entry, PC-relatively
        .type   through_got_pc, %function
through_got_pc:
        ldr     r0, 1f
2:      add     r0, pc
        ldr     r0, [r0]
        bx      lr
        .align  2
1:      .word   ext_data(GOT_PREL) + ((. - (2b + 4)))

        .globl  local_offset            @ R_ARM_GOTOFF32: this module's data, from the GOT
        .type   local_offset, %function
local_offset:
        push    {r4, lr}
        bl      got_base
        ldr     r1, 1f
        add     r0, r1
        pop     {r4, pc}
        .align  2
1:      .word   local_data(GOTOFF)

        .data
        .align  2
local_data:
        .word   0x600d

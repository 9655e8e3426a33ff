@ Every Thumb-2 relocation kind linkload links, in small functions the tests call
@ (tests/test_arm.py): each is linked by linkload and by arm-none-eabi-ld at the same
@ addresses and the bytes compared, then run on the emulated Cortex-M3.
        .syntax unified
        .cpu cortex-m3
        .thumb

        .text
        .align  2
        .globl  call_ext                @ R_ARM_THM_CALL to a Thumb function elsewhere
        .type   call_ext, %function
call_ext:
        push    {r4, lr}
        bl      ext_fn
        pop     {r4, pc}

        .globl  tail_ext                @ R_ARM_THM_JUMP24: a tail call
        .type   tail_ext, %function
tail_ext:
        b.w     ext_fn

        .globl  call_local              @ R_ARM_THM_CALL to this module's other section
        .type   call_local, %function
call_local:
        push    {r4, lr}
        bl      forty_one
        adds    r0, r0, #1
        pop     {r4, pc}

        .globl  is_zero                 @ R_ARM_THM_JUMP19, R_ARM_THM_JUMP8, R_ARM_THM_JUMP11
        .type   is_zero, %function
is_zero:
        cmp     r0, #0
        beq.w   yes
        cmp     r0, #1
        beq.n   no
        b.n     no

        .globl  data_address            @ R_ARM_THM_MOVW_ABS_NC, R_ARM_THM_MOVT_ABS
        .type   data_address, %function
data_address:
        movw    r0, #:lower16:data_word
        movt    r0, #:upper16:data_word
        bx      lr

        .globl  data_address_pc         @ R_ARM_THM_MOVW_PREL_NC, R_ARM_THM_MOVT_PREL
        .type   data_address_pc, %function
data_address_pc:
        movw    r0, #:lower16:data_word - (1f + 4)
        movt    r0, #:upper16:data_word - (1f + 4)
1:      add     r0, pc
        bx      lr

        .globl  function_address        @ movw/movt of a Thumb function: odd
        .type   function_address, %function
function_address:
        movw    r0, #:lower16:forty_one
        movt    r0, #:upper16:forty_one
        bx      lr

        .globl  literal_word            @ R_ARM_THM_PC12 (ldr.w r0, [pc, #...])
        .type   literal_word, %function
literal_word:
        .reloc  ., R_ARM_THM_PC12, lit_word
        .inst.w 0xf85f0004              @ ldr.w r0, [pc, #-4]
        bx      lr

        .globl  literal_byte            @ R_ARM_THM_PC12 with a byte target
        .type   literal_byte, %function
literal_byte:
        .reloc  ., R_ARM_THM_PC12, lit_byte3
        .inst.w 0xf81f0004              @ ldrb.w r0, [pc, #-4]
        bx      lr

        .globl  literal_short           @ R_ARM_THM_PC8 (ldr r0, [pc, #...])
        .type   literal_short, %function
literal_short:
        nop
        .reloc  ., R_ARM_THM_PC8, lit_near
        .inst.n 0x48ff                  @ ldr r0, [pc, #1020]: addend -4
        bx      lr
        .align  2
lit_near:
        .word   0x5eed1234

        .section .text.b, "ax", %progbits
        .align  2
        .type   forty_one, %function
forty_one:
        movs    r0, #41
        bx      lr
        .type   yes, %function
yes:
        movs    r0, #1
        bx      lr
        .type   no, %function
no:
        movs    r0, #0
        bx      lr
        .align  2
lit_word:
        .word   0xc0ffee42
lit_bytes:
        .byte   1, 2, 3
lit_byte3:                              @ an odd address
        .byte   0x99

        .data
        .align  2
        .globl  data_word
        .type   data_word, %object
        .size   data_word, 28
data_word:
        .word   data_word                       @ R_ARM_ABS32: 0
        .word   forty_one                       @ R_ARM_ABS32 of a Thumb function: odd, 4
        .word   ext_fn - .                      @ R_ARM_REL32: 8
        .word   data_word(target1)              @ R_ARM_TARGET1: 12
        .word   ext_data(target2)               @ R_ARM_TARGET2: 16
        .reloc  ., R_ARM_PREL31, forty_one      @ R_ARM_PREL31: 20, bit 31 kept
        .word   0x80000000
        .globl  marked                          @ (ld wants a global symbol at a VTINHERIT)
marked:
        .reloc  ., R_ARM_NONE, nobody_defines_this      @ markers patch nothing: 24
        .reloc  ., R_ARM_V4BX, ext_data
        .reloc  ., R_ARM_GNU_VTENTRY, ext_data
        .reloc  ., R_ARM_GNU_VTINHERIT, data_word
        .word   0x01020304

@ The A32 relocation kinds linkload links (ARM objects; they do not run on a Cortex-M):
@ tests/test_arm.py links this by linkload and by arm-none-eabi-ld at the same addresses
@ and compares the bytes.
        .syntax unified
        .arch   armv7-a
        .arm

        .text
        .align  2
        .globl  a32_calls
        .type   a32_calls, %function
a32_calls:
        push    {r4, lr}
        bl      ext_fn                  @ R_ARM_CALL to a Thumb function: becomes BLX
        bl      a32_local               @ R_ARM_CALL to A32 code: stays BL
        blx     a32_local               @ R_ARM_CALL written as BLX, to A32 code: becomes BL
        blx     thumb_local             @ R_ARM_CALL to a Thumb function at a halfword
        bleq    a32_local               @ R_ARM_JUMP24 (a conditional call)
        b       a32_local               @ R_ARM_JUMP24
        movw    r0, #:lower16:ext_data  @ R_ARM_MOVW_ABS_NC
        movt    r0, #:upper16:ext_data  @ R_ARM_MOVT_ABS
        movw    r1, #:lower16:thumb_local       @ of a Thumb function: odd
        movt    r1, #:upper16:thumb_local
        movw    r2, #:lower16:ext_data - .      @ R_ARM_MOVW_PREL_NC
        movt    r2, #:upper16:ext_data - .      @ R_ARM_MOVT_PREL
        .reloc  ., R_ARM_V4BX, ext_data
        bx      r0
        .reloc  ., R_ARM_PLT32, a32_local       @ the old ABI's `bl f(PLT)`
        .inst   0xebfffffe
        .reloc  ., R_ARM_PC24, a32_local        @ the old ABI's branches
        .inst   0xeafffffe
        pop     {r4, pc}

        .section .text.b, "ax", %progbits
        .align  2
        .type   a32_local, %function
a32_local:
        bx      lr
        .thumb
        .type   thumb_local, %function
        .thumb_func
        nop
thumb_local:
        bx      lr

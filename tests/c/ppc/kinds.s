# Every relocation kind linkload supports for PowerPC, in one object.
#
# tests/test_emulated.py links it with linkload and with powerpc-linux-gnu-ld at the same
# addresses and compares the bytes, then runs the functions. External names: ext_fn (a host
# function), abs_low (a small absolute address), small_abs (a 16-bit constant).
# `.reloc` gives the kinds gas does not choose by itself (the branch-prediction variants,
# the unaligned words, the markers); the instruction under it encodes a zero field.

	.text
	.globl	data_address
data_address:				# R_PPC_ADDR16_HA + R_PPC_ADDR16_LO
	lis	3, data_word@ha
	addi	3, 3, data_word@l
	blr

	.globl	data_address_hi
data_address_hi:			# R_PPC_ADDR16_HI + R_PPC_ADDR16_LO (lis/ori)
	lis	3, data_word@h
	ori	3, 3, data_word@l
	blr

	.globl	pc_relative
pc_relative:				# R_PPC_REL16_HA + R_PPC_REL16_LO
	mflr	0
	bcl	20, 31, 1f
1:	mflr	3
	mtlr	0
	addis	3, 3, data_word-1b@ha
	addi	3, 3, data_word-1b@l
	blr

	.globl	pc_relative_hi
pc_relative_hi:				# R_PPC_REL16_HI, R_PPC_REL16 (encodings only)
	lis	3, data_word-2f@h
2:	li	4, back_target-2b
	blr

	.globl	small_constant
small_constant:				# R_PPC_ADDR16
	li	3, small_abs
	blr

	.globl	call_ext
call_ext:				# R_PPC_REL24 to a host function
	mflr	0
	stwu	1, -16(1)
	stw	0, 20(1)
	bl	ext_fn
	lwz	0, 20(1)
	addi	1, 1, 16
	mtlr	0
	blr

	.globl	call_local
call_local:				# R_PPC_LOCAL24PC into another section
	mflr	0
	stwu	1, -16(1)
	stw	0, 20(1)
	bl	other_fn@local
	lwz	0, 20(1)
	addi	1, 1, 16
	mtlr	0
	blr

	.globl	is_zero
is_zero:				# R_PPC_REL14 forward into another section
	cmpwi	3, 0
	beq	0, answer_one
	li	3, 0
	blr

	.globl	branches
branches:				# encodings only: every conditional-branch kind
	.reloc	., R_PPC_REL14_BRTAKEN, back_target
	beq	0, .
	.reloc	., R_PPC_REL14_BRNTAKEN, back_target
	beq	0, .
	.reloc	., R_PPC_REL14_BRNTAKEN, back_target
	bc	13, 2, .		# y already set: cleared
	.reloc	., R_PPC_REL14_BRTAKEN, back_target
	bdnz	.
	.reloc	., R_PPC_ADDR14, abs_low
	bca	12, 2, 0
	.reloc	., R_PPC_ADDR14_BRTAKEN, abs_low
	bca	12, 2, 0
	.reloc	., R_PPC_ADDR14_BRNTAKEN, abs_low
	bca	13, 2, 0
	.reloc	., R_PPC_ADDR24, abs_low + 8
	ba	0
	.reloc	., R_PPC_NONE, data_word
	nop
	blr

	.globl	backward
backward:
	blr

	.section .text.b, "ax", @progbits
back_target:
	.reloc	., R_PPC_REL14_BRTAKEN, backward
	beq	0, .
	.reloc	., R_PPC_REL14_BRNTAKEN, backward
	beq	0, .
	.reloc	., R_PPC_REL14, backward
	bne	0, .
	blr
other_fn:
	li	3, 42
	blr
answer_one:
	li	3, 1
	blr

	.data
	.globl	data_word
	.p2align 2
data_word:
	.long	0x12345678
	.long	data_word + 4		# R_PPC_ADDR32
	.long	ext_fn - .		# R_PPC_REL32
	.long	backward - .		# R_PPC_REL32 into text
	.byte	0x55
	.reloc	., R_PPC_UADDR32, data_word + 8
	.long	0			# unaligned
	.reloc	., R_PPC_UADDR16, small_abs
	.short	0			# unaligned
	.byte	0xaa
	.globl	vtable			# ld wants a symbol where a VTINHERIT marker is
vtable:
	.reloc	., R_PPC_GNU_VTINHERIT, data_word
	.long	0x01020304		# markers leave their place alone
	.reloc	., R_PPC_GNU_VTENTRY, data_word
	.long	0x05060708

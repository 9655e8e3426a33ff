# Golden module one: references to the static module, to module two, to itself (branches
# resolved in the file, data through relocation entries), a call to nowhere (-> _unresolved),
# a 32-byte aligned bss, a .rodata table.
	.text
	.globl one_func
	.type one_func, @function
one_func:
	mflr 0
	stw 0, 4(1)
	stwu 1, -16(1)
	lis 3, dol_value@ha
	lwz 3, dol_value@l(3)
	bl dol_func
	bl two_func
	bl local_helper
	bl nowhere
	lis 4, one_data@ha
	addi 4, 4, one_data@l
	lis 5, two_data@ha
	addi 5, 5, two_data@l
	lis 6, one_bss@ha
	stw 3, one_bss@l(6)
	addi 1, 1, 16
	lwz 0, 4(1)
	mtlr 0
	blr
	.size one_func, .-one_func
local_helper:
	li 3, 1
	blr
	.globl _prolog
_prolog:
	blr
	.globl _epilog
_epilog:
	blr
	.globl _unresolved
_unresolved:
	blr

	.data
	.align 3
	.globl one_data
one_data:
	.long one_func
	.long dol_table+8
	.long two_func
	.long one_bss+4

	.section .rodata
	.align 2
one_const:
	.long 0x12345678, one_data

	.bss
	.align 5
	.globl one_bss
one_bss:
	.space 64

# The static module of the golden RELs: linked at 0x80004000 with ld, written as a DOL too.
	.text
	.globl _start
_start:
	bl dol_func
	b _start
	.globl dol_func
	.type dol_func, @function
dol_func:
	lis 9, dol_value@ha
	lwz 9, dol_value@l(9)
	add 3, 3, 9
	blr
	.size dol_func, .-dol_func

	.data
	.align 2
	.globl dol_value
dol_value:
	.long 7
	.globl dol_table
dol_table:
	.long 1, 2, 3, 4
